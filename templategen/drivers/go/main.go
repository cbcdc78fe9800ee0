// Command driver is the Go driver of templategen's behaviour suite.
//
// It speaks the JSON-lines protocol of docs/conformance.md on stdin and stdout: one
// request per line in, exactly one response per line out, in order; anything else goes
// to stderr. The suite builds one binary per rendered Go package: this file and its
// siblings, the rendered package, and the pattern's adapter (rendered from
// adapters/<pattern>/go.go.j2 with the same options), which registers itself with
// register in an init function.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"time"

	"github.com/redis/go-redis/v9"
)

const protocolVersion = 1

// waitLimit bounds every wait the driver does on the runner's behalf (a gate, an
// await), so that a broken scenario fails with a message instead of hanging.
const waitLimit = 30 * time.Second

// An adapter maps one pattern's scenario operations onto the rendered package's API.
type adapter interface {
	// call performs op; load is nil when the step carries no loader.
	call(ctx context.Context, op string, args arguments, load loaderFunc) (any, error)
	// close stops whatever the adapter started (background goroutines); the client
	// belongs to the driver.
	close()
}

// loaderSharer is implemented by an adapter whose pattern has no loader of its own but
// whose calls count and wait like loaders (write-through's store reads): reset hands it
// the driver's loaders, whose count is every response's loader_calls and whose gates
// "release" opens (see loaders.park).
type loaderSharer interface {
	useLoaders(l *loaders)
}

// errorKind maps a sentinel error of the rendered package onto a protocol error kind.
type errorKind struct {
	sentinel error
	kind     string
}

// registration is what a rendered adapter file registers.
type registration struct {
	pattern string
	// kinds are checked in order with errors.Is; put the more specific first.
	kinds []errorKind
	// open builds fresh pattern objects; called on every reset.
	open func(client *redis.Client, options map[string]any) (adapter, error)
}

var registered *registration

// register is called by the adapter file's init function.
func register(r registration) {
	if registered != nil {
		panic("two adapters registered: " + registered.pattern + " and " + r.pattern)
	}
	registered = &r
}

// request is one line from the runner. Fields are those of every op; each op reads
// the ones it needs.
type request struct {
	ID       json.RawMessage `json:"id"`
	Op       string          `json:"op"`
	Args     arguments       `json:"args"`
	Loader   json.RawMessage `json:"loader"`
	Async    json.RawMessage `json:"async"`
	Callers  int             `json:"callers"`
	Step     *request        `json:"step"`
	Pattern  string          `json:"pattern"`
	Options  map[string]any  `json:"options"`
	RedisURL string          `json:"redis_url"`
}

type errorReply struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

type response struct {
	ID          json.RawMessage `json:"id"`
	OK          bool            `json:"ok"`
	Value       any             `json:"value"`
	Error       *errorReply     `json:"error,omitempty"`
	LoaderCalls int64           `json:"loader_calls"`
}

// outcome is the result of an operation run in the background (async, concurrent).
type outcome struct {
	value any
	err   error
}

type driver struct {
	loaders *loaders
	client  *redis.Client
	options map[string]any
	adapter adapter
	pending map[string]chan outcome
}

func newDriver() *driver {
	return &driver{loaders: newLoaders(), pending: map[string]chan outcome{}}
}

// internalError is an error of the driver itself (a malformed request): kind internal.
func internalError(format string, args ...any) error {
	return fmt.Errorf("driver: "+format, args...)
}

func (d *driver) handle(ctx context.Context, req *request) (any, error) {
	switch req.Op {
	case "hello":
		return map[string]any{"language": "go", "protocol": protocolVersion}, nil
	case "configure":
		return nil, d.configure(req)
	case "reset":
		return nil, d.reset()
	case "release":
		gate, err := req.Args.str("gate")
		if err != nil {
			return nil, err
		}
		d.loaders.release(gate)
		return nil, nil
	case "await":
		return d.await(req)
	case "concurrent":
		return d.concurrent(ctx, req)
	case "bye":
		return nil, nil
	}
	if len(req.Async) > 0 {
		return nil, d.async(ctx, req)
	}
	return d.run(ctx, req)
}

func (d *driver) configure(req *request) error {
	if registered == nil {
		return internalError("this binary was built without an adapter")
	}
	if req.Pattern != registered.pattern {
		return internalError("this binary drives %s, not %s", registered.pattern, req.Pattern)
	}
	opts, err := redis.ParseURL(req.RedisURL)
	if err != nil {
		return internalError("redis_url: %v", err)
	}
	if d.client != nil {
		_ = d.client.Close()
	}
	d.client = redis.NewClient(opts)
	d.options = req.Options
	return nil
}

func (d *driver) reset() error {
	if d.client == nil {
		return internalError("reset before configure")
	}
	if d.adapter != nil {
		d.adapter.close()
		d.adapter = nil
	}
	d.loaders.reset()
	d.pending = map[string]chan outcome{}
	a, err := registered.open(d.client, d.options)
	if err != nil {
		return err
	}
	if sharer, ok := a.(loaderSharer); ok {
		sharer.useLoaders(d.loaders)
	}
	d.adapter = a
	return nil
}

// run performs one pattern operation in the calling goroutine.
func (d *driver) run(ctx context.Context, req *request) (value any, err error) {
	if d.adapter == nil {
		return nil, internalError("%s before reset", req.Op)
	}
	var load loaderFunc
	if len(req.Loader) > 0 {
		spec, err := parseLoaderSpec(req.Loader)
		if err != nil {
			return nil, err
		}
		load = d.loaders.make(spec)
	}
	defer func() {
		// A panic in the code under test is an answer too, never a dead driver.
		if p := recover(); p != nil {
			value, err = nil, internalError("panic in %s: %v\n%s", req.Op, p, debug.Stack())
		}
	}()
	args := req.Args
	if args == nil {
		args = arguments{}
	}
	return d.adapter.call(ctx, req.Op, args, load)
}

// background runs req in a new goroutine and returns where its outcome will arrive.
func (d *driver) background(ctx context.Context, req *request, start <-chan struct{}) chan outcome {
	done := make(chan outcome, 1)
	go func() {
		if start != nil {
			<-start
		}
		value, err := d.run(ctx, req)
		done <- outcome{value, err}
	}()
	return done
}

func (d *driver) async(ctx context.Context, req *request) error {
	var handle string
	if err := json.Unmarshal(req.Async, &handle); err != nil {
		handle = string(req.Async)
	}
	entered := d.loaders.watchEntered()
	done := d.background(ctx, req, nil)
	// Answer once the operation finished or its loader is parked at a gate, so the
	// runner's next step is known to happen during the load.
	select {
	case result := <-done:
		done <- result
	case <-entered:
	}
	d.pending[handle] = done
	return nil
}

func (d *driver) await(req *request) (any, error) {
	handle, err := req.Args.str("handle")
	if err != nil {
		return nil, err
	}
	done, ok := d.pending[handle]
	if !ok {
		return nil, internalError("no operation was started with async %q", handle)
	}
	delete(d.pending, handle)
	select {
	case result := <-done:
		return result.value, result.err
	case <-time.After(waitLimit):
		return nil, internalError("operation %q did not finish within %s", handle, waitLimit)
	}
}

func (d *driver) concurrent(ctx context.Context, req *request) (any, error) {
	if req.Step == nil || req.Callers < 1 {
		return nil, internalError("concurrent needs a step and callers >= 1")
	}
	// Every caller waits on start; closing it releases them together.
	start := make(chan struct{})
	results := make([]chan outcome, req.Callers)
	for i := range results {
		results[i] = d.background(ctx, req.Step, start)
	}
	close(start)
	values := make([]any, req.Callers)
	var first error
	for i, done := range results {
		result := <-done
		values[i] = result.value
		if result.err != nil && first == nil {
			first = result.err
		}
	}
	if first != nil {
		return nil, first
	}
	return values, nil
}

// kindOf maps err onto the protocol's error kinds.
func kindOf(err error) string {
	var failure *loaderFailure
	if errors.As(err, &failure) {
		return "loader"
	}
	if registered != nil {
		for _, k := range registered.kinds {
			if errors.Is(err, k.sentinel) {
				return k.kind
			}
		}
	}
	return "internal"
}

func main() {
	d := newDriver()
	in := bufio.NewReader(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	for {
		line, err := in.ReadBytes('\n')
		if len(line) == 0 && err != nil {
			if err != io.EOF {
				fmt.Fprintln(os.Stderr, "driver: reading stdin:", err)
			}
			break
		}
		var req request
		resp := response{}
		var value any
		if perr := json.Unmarshal(line, &req); perr != nil {
			err = internalError("request is not valid JSON: %v", perr)
		} else {
			resp.ID = req.ID
			value, err = d.handle(context.Background(), &req)
		}
		resp.LoaderCalls = d.loaders.count()
		if err == nil {
			resp.OK, resp.Value = true, value
		} else {
			resp.Error = &errorReply{Kind: kindOf(err), Message: err.Error()}
		}
		encoded, merr := json.Marshal(resp)
		if merr != nil {
			resp.OK, resp.Value = false, nil
			resp.Error = &errorReply{Kind: "internal", Message: "driver: encoding the answer: " + merr.Error()}
			encoded, _ = json.Marshal(resp)
		}
		out.Write(encoded)
		out.WriteByte('\n')
		out.Flush()
		if req.Op == "bye" {
			break
		}
	}
	if d.adapter != nil {
		d.adapter.close()
	}
	if d.client != nil {
		_ = d.client.Close()
	}
}
