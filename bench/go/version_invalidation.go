package main

import (
	"context"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"templategen.local/gohits/versioninvalidation"
)

func init() { register("version-invalidation", openVersionInvalidation) }

// openVersionInvalidation stores the entry under the entity's current version; the hit
// is GetOrLoad, as in bench/patterns.py: the version and the entry in one script call.
func openVersionInvalidation(ctx context.Context, client *redis.Client, key string, value user, loads *atomic.Int64) (hitFunc, error) {
	cache, err := versioninvalidation.New[user](client, versioninvalidation.DefaultConfig())
	if err != nil {
		return nil, err
	}
	if err := cache.Set(ctx, "user", key, value); err != nil {
		return nil, err
	}
	loader := countedLoader(value, loads)
	return func(ctx context.Context) (user, error) {
		return cache.GetOrLoad(ctx, "user", key, loader)
	}, nil
}
