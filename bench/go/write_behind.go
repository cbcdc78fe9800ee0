package main

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"templategen.local/gohits/writebehind"
)

func init() { register("write-behind", openWriteBehind) }

// mapStore is the user's database as write-behind needs it, in memory, with its reads
// counted. No flusher is started, so UpsertMany is never called; it is here because
// the Store interface has it.
type mapStore struct {
	mu    sync.Mutex
	rows  map[string]writebehind.Row[user]
	loads *atomic.Int64
}

func (s *mapStore) Get(_ context.Context, id string) (writebehind.Row[user], bool, error) {
	s.loads.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	row, ok := s.rows[id]
	return row, ok, nil
}

func (s *mapStore) UpsertMany(_ context.Context, rows []writebehind.Row[user]) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, row := range rows {
		if stored, ok := s.rows[row.ID]; !ok || row.Version > stored.Version {
			s.rows[row.ID] = row
		}
	}
	return nil
}

// openWriteBehind writes with Set (cached and queued in one script); the hit is Get,
// which reads the value and its version with one MGET.
func openWriteBehind(ctx context.Context, client *redis.Client, key string, value user, loads *atomic.Int64) (hitFunc, error) {
	store := &mapStore{rows: map[string]writebehind.Row[user]{}, loads: loads}
	cache, err := writebehind.New[user](client, store, writebehind.DefaultConfig())
	if err != nil {
		return nil, err
	}
	data := func(row writebehind.Row[user]) user { return row.Data }
	return filledBySet(ctx, "write-behind", cache, data, key, value)
}
