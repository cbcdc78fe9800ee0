package main

import (
	"context"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"templategen.local/gohits/stampedelock"
)

func init() { register("stampede-lock", openStampedeLock) }

// openStampedeLock fills the key through a miss (the lock, the loader, the write), as
// bench/patterns.py does; the hit is Get, a plain GET with no lock.
func openStampedeLock(ctx context.Context, client *redis.Client, key string, value user, loads *atomic.Int64) (hitFunc, error) {
	cache, err := stampedelock.New[user](client, stampedelock.DefaultConfig())
	if err != nil {
		return nil, err
	}
	return filledByMiss(ctx, cache.Get, key, value, loads)
}
