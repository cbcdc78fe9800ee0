package main

// What the adapters (<pattern>.go) share: built into every program, whichever patterns
// rendered, so nothing here names a rendered package.

import (
	"context"
	"fmt"
	"sync/atomic"
)

// loader is the loader a rendered cache's Get takes.
type loader = func(context.Context) (user, error)

// countedLoader is a loader that returns value and counts its calls into loads.
func countedLoader(value user, loads *atomic.Int64) loader {
	return func(context.Context) (user, error) {
		loads.Add(1)
		return value, nil
	}
}

// loadingGet is a rendered cache's read through a loader, Get(ctx, key, loader): a
// method value, or a closure where Get takes options besides.
type loadingGet func(ctx context.Context, key string, load loader) (user, error)

// filledByMiss fills key through one miss of get, as bench/patterns.py does for the
// patterns whose only way in is their loader, and returns get as the hit: with the
// same loader, so that a hit that loads shows as a load.
func filledByMiss(ctx context.Context, get loadingGet, key string, value user, loads *atomic.Int64) (hitFunc, error) {
	load := countedLoader(value, loads)
	if _, err := get(ctx, key, load); err != nil {
		return nil, err
	}
	return func(ctx context.Context) (user, error) {
		return get(ctx, key, load)
	}, nil
}

// rowCache is a rendered write-through or write-behind cache of R, the package's
// Row[user]: Set writes a row, Get reads it back with whether it was there.
type rowCache[R any] interface {
	Set(ctx context.Context, id string, data user) (R, error)
	Get(ctx context.Context, id string) (R, bool, error)
}

// filledBySet writes value at key with the cache's Set and returns its Get as the hit,
// the row's data out of the row (data, since Go cannot name a field of R). A row not
// found is an error: the setup wrote it, so the hit read something else.
func filledBySet[R any](ctx context.Context, pattern string, cache rowCache[R], data func(R) user, key string, value user) (hitFunc, error) {
	if _, err := cache.Set(ctx, key, value); err != nil {
		return nil, err
	}
	return func(ctx context.Context) (user, error) {
		row, found, err := cache.Get(ctx, key)
		if err == nil && !found {
			err = fmt.Errorf("%s: the row written is not found", pattern)
		}
		return data(row), err
	}, nil
}
