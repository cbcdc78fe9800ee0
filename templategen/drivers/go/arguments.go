package main

import (
	"encoding/json"
	"math"
	"time"
)

// arguments are a step's "args", decoded field by field by the adapter that knows
// their types.
type arguments map[string]json.RawMessage

func (a arguments) has(name string) bool {
	_, ok := a[name]
	return ok
}

func (a arguments) decode(name string, into any) error {
	raw, ok := a[name]
	if !ok {
		return internalError("missing argument %q", name)
	}
	if err := json.Unmarshal(raw, into); err != nil {
		return internalError("argument %q: %v", name, err)
	}
	return nil
}

func (a arguments) str(name string) (string, error) {
	var s string
	err := a.decode(name, &s)
	return s, err
}

func (a arguments) value(name string) (value, error) {
	var v value
	err := a.decode(name, &v)
	return v, err
}

func (a arguments) values(name string) ([]value, error) {
	var vs []value
	err := a.decode(name, &vs)
	return vs, err
}

// seconds reads a duration given in seconds, as the scenarios write them. Zero and
// negative durations pass through: refusing them is the code under test's job.
func (a arguments) seconds(name string) (time.Duration, error) {
	var s float64
	if err := a.decode(name, &s); err != nil {
		return 0, err
	}
	if math.IsNaN(s) || math.Abs(s) > math.MaxInt64/float64(time.Second) {
		return 0, internalError("argument %q: %v seconds is out of range", name, s)
	}
	return time.Duration(math.Round(s * float64(time.Second))), nil
}
