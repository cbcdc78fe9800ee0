package main

import (
	"context"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"templategen.local/gohits/cacheaside"
)

func init() { register("cache-aside", openCacheAside) }

// openCacheAside stores the value with Set, as bench/patterns.py primes the Python hit;
// the hit is Get with a loader, which a hit never calls.
func openCacheAside(ctx context.Context, client *redis.Client, key string, value user, loads *atomic.Int64) (hitFunc, error) {
	cache, err := cacheaside.New[user](client, cacheaside.DefaultConfig())
	if err != nil {
		return nil, err
	}
	if err := cache.Set(ctx, key, value); err != nil {
		return nil, err
	}
	loader := countedLoader(value, loads)
	return func(ctx context.Context) (user, error) {
		return cache.Get(ctx, key, loader)
	}, nil
}
