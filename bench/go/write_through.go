package main

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"templategen.local/gohits/writethrough"
)

func init() { register("write-through", openWriteThrough) }

// countedStore is the rendered MemoryStore (the user's database, which a double may
// stand in for) with its reads counted: a hit reads Redis only.
type countedStore struct {
	*writethrough.MemoryStore[user]
	loads *atomic.Int64
}

func (s countedStore) Get(ctx context.Context, id string) (writethrough.Row[user], bool, error) {
	s.loads.Add(1)
	return s.MemoryStore.Get(ctx, id)
}

// openWriteThrough writes the row with Set (the database, then the cache); the hit is
// Get, which returns the row with its version.
func openWriteThrough(ctx context.Context, client *redis.Client, key string, value user, loads *atomic.Int64) (hitFunc, error) {
	store := countedStore{&writethrough.MemoryStore[user]{}, loads}
	cache, err := writethrough.New[user](client, store, writethrough.DefaultConfig())
	if err != nil {
		return nil, err
	}
	if _, err := cache.Set(ctx, key, value); err != nil {
		return nil, err
	}
	return func(ctx context.Context) (user, error) {
		row, found, err := cache.Get(ctx, key)
		if err == nil && !found {
			err = errors.New("write-through: the row written is not found")
		}
		return row.Data, err
	}, nil
}
