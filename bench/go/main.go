// Command gohits times the hit path of the rendered Go patterns against their floor,
// for bench/go_hits.py (section 9 of the benchmarks).
//
// bench/go_hits.py renders every pattern with its default options, puts each rendered
// package next to these files in one module (go.mod and go.sum are the Go driver's, so
// go-redis is the version the suite pins) and builds this program once. It then runs
// it as one long-lived process and drives it over stdin and stdout (with
// bench/_hit_programs.py, as it drives section 8's node program), one JSON object per
// line each way:
//
//	{"op":"hello"}                    -> {"ok":{"go":"go1.26.8","gomaxprocs":2,"patterns":[...]}}
//	{"op":"setup","pattern":"cache-aside","key":"k","floor_key":"f","value":{...}}
//	                                  -> {"ok":{}}
//	{"op":"hits","n":20}              -> {"ok":{"loads":0}}
//	{"op":"paired","rounds":40,"chunk":50}
//	                                  -> {"ok":{"floor":[s,...],"hit":[s,...],"loads":0}}
//	{"op":"bye"}                      -> {"ok":{}}, then exit
//
// Any failure is {"error":"..."}. A process of its own, not one per call, because the
// Python side opens a MONITOR window around exactly the hits of one "hits" request:
// nothing else may reach the server inside it, not even a connection's handshake. The
// timing is done here and only the chunk times cross the pipe, so the pipe's cost is in
// no figure.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// user is the Go type of bench/patterns.py's json_value(): the T of every pattern and
// what the floor decodes into, so both sides decode the same 1 KB into the same type.
type user struct {
	ID     int      `json:"id"`
	Name   string   `json:"name"`
	Email  string   `json:"email"`
	Roles  []string `json:"roles"`
	Active bool     `json:"active"`
	Score  float64  `json:"score"`
	Bio    string   `json:"bio"`
}

// hitFunc makes one read through a rendered package and returns the value it read.
type hitFunc func(ctx context.Context) (user, error)

// opener builds a pattern's cache on client with the rendered DefaultConfig() (the
// options a user gets), stores value at key through the pattern's own API, and
// returns its hit. Loader calls and store reads count into loads: a hit makes none,
// so a count above zero says the "hits" were misses.
type opener func(ctx context.Context, client *redis.Client, key string, value user, loads *atomic.Int64) (hitFunc, error)

// openers holds the adapters compiled in; bench/go_hits.py copies the adapter of a
// pattern only when its rendered package is there to build against.
var openers = map[string]opener{}

func register(pattern string, open opener) {
	openers[pattern] = open
}

type request struct {
	Op       string          `json:"op"`
	Pattern  string          `json:"pattern"`
	Key      string          `json:"key"`
	FloorKey string          `json:"floor_key"`
	Value    json.RawMessage `json:"value"`
	N        int             `json:"n"`
	Rounds   int             `json:"rounds"`
	Chunk    int             `json:"chunk"`
}

type reply map[string]any

// session is the state between requests: the client every pattern and the floor
// share, and the pattern set up last.
type session struct {
	client *redis.Client
	hit    hitFunc
	floor  hitFunc
	loads  atomic.Int64
}

func (s *session) handle(ctx context.Context, req request) (reply, error) {
	switch req.Op {
	case "hello":
		names := make([]string, 0, len(openers))
		for name := range openers {
			names = append(names, name)
		}
		slices.Sort(names)
		return reply{"go": runtime.Version(), "gomaxprocs": runtime.GOMAXPROCS(0), "patterns": names}, nil
	case "setup":
		return reply{}, s.setup(ctx, req)
	case "hits":
		if s.hit == nil {
			return nil, errors.New("hits before setup")
		}
		before := s.loads.Load()
		if _, err := timeCalls(ctx, s.hit, req.N); err != nil {
			return nil, err
		}
		return reply{"loads": s.loads.Load() - before}, nil
	case "paired":
		if s.hit == nil {
			return nil, errors.New("paired before setup")
		}
		before := s.loads.Load()
		floor, hit, err := s.paired(ctx, req.Rounds, req.Chunk)
		if err != nil {
			return nil, err
		}
		return reply{"floor": floor, "hit": hit, "loads": s.loads.Load() - before}, nil
	case "bye":
		return reply{}, nil
	}
	return nil, fmt.Errorf("unknown op %q", req.Op)
}

func (s *session) setup(ctx context.Context, req request) error {
	open, ok := openers[req.Pattern]
	if !ok {
		return fmt.Errorf("no adapter for %q in this build", req.Pattern)
	}
	value, err := decodeUser(req.Value)
	if err != nil {
		return err
	}
	// The floor's bytes are exactly the ones Python sent: the same 1 KB as section 2's.
	payload := new(bytes.Buffer)
	if err := json.Compact(payload, req.Value); err != nil {
		return err
	}
	if err := s.client.Set(ctx, req.FloorKey, payload.Bytes(), 0).Err(); err != nil {
		return fmt.Errorf("setting the floor's key: %w", err)
	}
	s.floor = func(ctx context.Context) (user, error) {
		var u user
		data, err := s.client.Get(ctx, req.FloorKey).Bytes()
		if err != nil {
			return u, err
		}
		err = json.Unmarshal(data, &u)
		return u, err
	}
	s.hit = nil
	hit, err := open(ctx, s.client, req.Key, value, &s.loads)
	if err != nil {
		return fmt.Errorf("%s: setting up: %w", req.Pattern, err)
	}
	// One call of each before anything is counted or timed: it loads the pattern's
	// scripts (the first EVALSHA of a script is answered NOSCRIPT and go-redis sends
	// EVAL) and checks that both sides read back the value that was stored.
	for _, side := range []struct {
		name string
		fn   hitFunc
	}{{"hit", hit}, {"floor", s.floor}} {
		got, err := side.fn(ctx)
		if err != nil {
			return fmt.Errorf("%s: first %s: %w", req.Pattern, side.name, err)
		}
		if !reflect.DeepEqual(got, value) {
			return fmt.Errorf("%s: the %s read back %+v, not the value stored", req.Pattern, side.name, got)
		}
	}
	s.hit = hit
	return nil
}

// decodeUser decodes the value Python sent into a user, refusing any field user lacks
// and any value that user does not encode back to the same bytes: then both sides
// really handle the 1 KB that section 2 handles.
func decodeUser(raw json.RawMessage) (user, error) {
	var value user
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&value); err != nil {
		return value, fmt.Errorf("the value does not decode into user: %w", err)
	}
	compact := new(bytes.Buffer)
	if err := json.Compact(compact, raw); err != nil {
		return value, err
	}
	encoded, err := json.Marshal(value)
	if err != nil {
		return value, err
	}
	if !bytes.Equal(encoded, compact.Bytes()) {
		return value, errors.New("the value does not encode back to the bytes sent: user is not its type")
	}
	return value, nil
}

// paired is one repetition of bench/throughput.py's method: rounds pairs of chunks of
// the floor and of the hit, alternating which side goes first, so that a burst of load
// from elsewhere falls on both sides alike. It returns every chunk's seconds; the
// ratios and their median are taken in Python, as for the other sections.
func (s *session) paired(ctx context.Context, rounds, chunk int) (floor, hit []float64, err error) {
	if rounds < 1 || chunk < 1 {
		return nil, nil, fmt.Errorf("rounds and chunk must be >= 1, got %d and %d", rounds, chunk)
	}
	// As gc.collect() there: garbage left by the setup is not collected inside a chunk.
	runtime.GC()
	floor, hit = make([]float64, rounds), make([]float64, rounds)
	for i := range rounds {
		first, second := s.floor, s.hit
		if i%2 == 1 {
			first, second = s.hit, s.floor
		}
		a, err := timeCalls(ctx, first, chunk)
		if err != nil {
			return nil, nil, err
		}
		b, err := timeCalls(ctx, second, chunk)
		if err != nil {
			return nil, nil, err
		}
		if i%2 == 1 {
			a, b = b, a
		}
		floor[i], hit[i] = a.Seconds(), b.Seconds()
	}
	return floor, hit, nil
}

// timeCalls makes n back-to-back calls of fn; any error stops it, since a failed call
// is not the hit that is measured.
func timeCalls(ctx context.Context, fn hitFunc, n int) (time.Duration, error) {
	started := time.Now()
	for range n {
		if _, err := fn(ctx); err != nil {
			return 0, err
		}
	}
	return time.Since(started), nil
}

func main() {
	url := flag.String("url", "", "the redis:// URL of the server to measure against")
	flag.Parse()
	opts, err := redis.ParseURL(*url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gohits:", err)
		os.Exit(2)
	}
	client := redis.NewClient(opts)
	defer client.Close()
	s := &session{client: client}
	ctx := context.Background()

	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 0, 64<<10), 1<<20) // a setup line holds the 1 KB value
	out := json.NewEncoder(os.Stdout)         // one Encode, one line, one write
	for in.Scan() {
		var req request
		var result reply
		if err = json.Unmarshal(in.Bytes(), &req); err == nil {
			result, err = s.handle(ctx, req)
		}
		answer := reply{"ok": result}
		if err != nil {
			answer = reply{"error": err.Error()}
		}
		if err := out.Encode(answer); err != nil {
			fmt.Fprintln(os.Stderr, "gohits:", err)
			os.Exit(1)
		}
		if req.Op == "bye" {
			return
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "gohits:", err)
		os.Exit(1)
	}
}
