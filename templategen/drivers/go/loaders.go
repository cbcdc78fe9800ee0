package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// loaderFunc is what adapters pass to the rendered code as its loader.
type loaderFunc func(ctx context.Context) (value, error)

// loaderFailure is the error of a loader whose spec says "error": the scenario's own
// failure, reported as kind "loader" wherever it surfaces (errors.As).
type loaderFailure struct{ message string }

func (f *loaderFailure) Error() string { return "loader failed: " + f.message }

// loaderSpec is a step's "loader": {"value", "delay_ms", "block", "error"}, all optional.
type loaderSpec struct {
	value    value
	delay    time.Duration
	gate     string
	hasGate  bool
	failWith string
	fails    bool
}

func parseLoaderSpec(raw json.RawMessage) (loaderSpec, error) {
	var fields struct {
		Value   value           `json:"value"`
		DelayMS float64         `json:"delay_ms"`
		Block   json.RawMessage `json:"block"`
		Error   json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(raw, &fields); err != nil {
		return loaderSpec{}, internalError("loader: %v", err)
	}
	spec := loaderSpec{value: fields.Value, delay: time.Duration(fields.DelayMS * float64(time.Millisecond))}
	if len(fields.Block) > 0 && string(fields.Block) != "null" {
		spec.gate, spec.hasGate = text(fields.Block), true
	}
	if len(fields.Error) > 0 {
		spec.failWith, spec.fails = text(fields.Error), true
	}
	return spec, nil
}

// text is a JSON string's value, or the JSON text of anything else.
func text(raw json.RawMessage) string {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s
	}
	return string(raw)
}

// loaders makes loaders, counts their calls since the last reset, and holds the
// named gates that blocked loaders wait at.
type loaders struct {
	calls atomic.Int64

	mu      sync.Mutex
	gates   map[string]chan struct{}
	entered chan struct{}
}

func newLoaders() *loaders {
	return &loaders{gates: map[string]chan struct{}{}, entered: make(chan struct{}, 1)}
}

func (l *loaders) count() int64 { return l.calls.Load() }

// reset opens every gate (no goroutine of the last scenario stays stuck) and zeroes
// the count.
func (l *loaders) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, gate := range l.gates {
		closeOnce(gate)
	}
	l.gates = map[string]chan struct{}{}
	l.calls.Store(0)
	l.drainEntered()
}

func (l *loaders) gate(name string) chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	gate, ok := l.gates[name]
	if !ok {
		gate = make(chan struct{})
		l.gates[name] = gate
	}
	return gate
}

func (l *loaders) release(name string) {
	gate := l.gate(name)
	l.mu.Lock()
	defer l.mu.Unlock()
	closeOnce(gate)
}

// closeOnce closes an open gate; the caller holds l.mu.
func closeOnce(gate chan struct{}) {
	select {
	case <-gate:
	default:
		close(gate)
	}
}

func (l *loaders) drainEntered() {
	select {
	case <-l.entered:
	default:
	}
}

// watchEntered forgets earlier signals and returns the channel that hears of the next
// loader to park at a gate.
func (l *loaders) watchEntered() <-chan struct{} {
	l.drainEntered()
	return l.entered
}

// park waits at the named gate until "release" opens it (waitLimit at most), after
// telling an async step that its operation is now parked.
func (l *loaders) park(ctx context.Context, name string) error {
	gate := l.gate(name)
	select {
	case l.entered <- struct{}{}:
	default:
	}
	select {
	case <-gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(waitLimit):
		return &loaderFailure{fmt.Sprintf("gate %q was never released", name)}
	}
}

func (l *loaders) make(spec loaderSpec) loaderFunc {
	return func(ctx context.Context) (value, error) {
		l.calls.Add(1)
		if spec.hasGate {
			if err := l.park(ctx, spec.gate); err != nil {
				return value{}, err
			}
		}
		if spec.delay > 0 {
			time.Sleep(spec.delay)
		}
		if spec.fails {
			return value{}, &loaderFailure{spec.failWith}
		}
		return spec.value, nil
	}
}
