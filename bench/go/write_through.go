package main

import (
	"context"
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
	data := func(row writethrough.Row[user]) user { return row.Data }
	return filledBySet(ctx, "write-through", cache, data, key, value)
}
