package main

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"templategen.local/gohits/taginvalidation"
)

func init() { register("tag-invalidation", openTagInvalidation) }

// openTagInvalidation stores the entry with two tags for an hour, as bench/patterns.py
// does; the hit is Get, which has no loader (a miss is ErrCacheMiss, an error here).
func openTagInvalidation(ctx context.Context, client *redis.Client, key string, value user, _ *atomic.Int64) (hitFunc, error) {
	cache, err := taginvalidation.New[user](client, taginvalidation.DefaultConfig())
	if err != nil {
		return nil, err
	}
	if err := cache.SetWithTags(ctx, key, value, time.Hour, "products", "item:"+key); err != nil {
		return nil, err
	}
	return func(ctx context.Context) (user, error) {
		return cache.Get(ctx, key)
	}, nil
}
