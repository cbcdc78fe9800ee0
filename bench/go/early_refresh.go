package main

import (
	"context"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"templategen.local/gohits/earlyrefresh"
)

func init() { register("early-refresh", openEarlyRefresh) }

// openEarlyRefresh fills the key through a miss. The entry then lives for the default
// TTL (an hour) and its loader took microseconds, so XFetch refreshes none of the hits:
// each is a GET and a decode, and a refresh would show as a load.
func openEarlyRefresh(ctx context.Context, client *redis.Client, key string, value user, loads *atomic.Int64) (hitFunc, error) {
	cache, err := earlyrefresh.New[user](client, earlyrefresh.DefaultConfig())
	if err != nil {
		return nil, err
	}
	loader := countedLoader(value, loads)
	if _, err := cache.Get(ctx, key, loader); err != nil {
		return nil, err
	}
	return func(ctx context.Context) (user, error) {
		return cache.Get(ctx, key, loader)
	}, nil
}
