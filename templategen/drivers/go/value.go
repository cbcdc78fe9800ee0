package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// value is any JSON value, kept as canonical bytes: compact, object members in the
// order they came, strings as Go writes them without HTML escaping (raw UTF-8), numbers
// exactly as written. The rendered code stores what value.MarshalJSON returns, so a
// value the runner sends is stored byte for byte as the Python reference stores it
// (a map[string]any would sort the members; float64 would change big integers).
//
// The zero value is JSON null.
type value struct{ raw []byte }

// MarshalJSON implements json.Marshaler.
func (v value) MarshalJSON() ([]byte, error) {
	if v.raw == nil {
		return []byte("null"), nil
	}
	return v.raw, nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (v *value) UnmarshalJSON(data []byte) error {
	canon, err := canonical(data)
	if err != nil {
		return err
	}
	v.raw = canon
	return nil
}

// canonical rewrites one JSON text in the canonical form described on value.
func canonical(data []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var out bytes.Buffer
	// For each open object or array: whether it is an object, and how many tokens
	// (keys and values) it has had, to place ':' and ','.
	type frame struct {
		object bool
		n      int
	}
	var stack []frame
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			out.WriteByte(byte(d))
			stack = stack[:len(stack)-1]
			continue
		}
		if len(stack) > 0 {
			top := &stack[len(stack)-1]
			switch {
			case top.n == 0:
			case top.object && top.n%2 == 1:
				out.WriteByte(':')
			default:
				out.WriteByte(',')
			}
			top.n++
		}
		switch t := tok.(type) {
		case json.Delim:
			out.WriteByte(byte(t))
			stack = append(stack, frame{object: t == '{'})
		case string:
			enc := json.NewEncoder(&out)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(t); err != nil {
				return nil, err
			}
			out.Truncate(out.Len() - 1) // Encode's newline
		case json.Number:
			out.WriteString(string(t))
		case bool:
			if t {
				out.WriteString("true")
			} else {
				out.WriteString("false")
			}
		case nil:
			out.WriteString("null")
		}
	}
	return out.Bytes(), nil
}
