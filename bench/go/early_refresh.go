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
	// Get takes options besides the loader: a closure gives it loadingGet's shape.
	get := func(ctx context.Context, key string, load loader) (user, error) {
		return cache.Get(ctx, key, load)
	}
	return filledByMiss(ctx, get, key, value, loads)
}
