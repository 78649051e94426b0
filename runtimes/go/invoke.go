// The decoding of an invoke header, by hand for the shape the front writes (crates/kelp-runtime's
// event.rs): encoding/json's reflection took more of a small function's call than the function.
// Any header it does not expect (or a string with escapes) is left to encoding/json.

package main

import (
	"encoding/json"
	"strings"
)

// decodeInvoke decodes an invoke frame's header into m.
func decodeInvoke(header []byte, m *invoke) error {
	r := jsonReader{b: header}
	eventField := func(key string) **string {
		switch key {
		case "event-id":
			return &m.Event.ID
		case "event-type":
			return &m.Event.Type
		case "event-time":
			return &m.Event.Time
		case "event-namespace":
			return &m.Event.Namespace
		}
		return nil
	}
	if r.object(func(key string) bool {
		switch key {
		case "type":
			m.Type = r.str()
		case "data":
			m.Data = r.str()
		case "event":
			return r.object(func(key string) bool {
				if field := eventField(key); field != nil {
					*field = r.strOrNull()
				} else {
					r.skip()
				}
				return !r.failed
			})
		case "request":
			return r.object(func(key string) bool {
				switch key {
				case "method":
					m.Request.Method = r.str()
				case "path":
					m.Request.Path = r.str()
				case "url":
					m.Request.URL = r.str()
				case "headers":
					m.Request.Headers = map[string]string{}
					return r.object(func(name string) bool {
						m.Request.Headers[name] = r.str()
						return !r.failed
					})
				default:
					r.skip()
				}
				return !r.failed
			})
		default:
			r.skip()
		}
		return !r.failed
	}) && r.end() {
		return nil
	}
	*m = invoke{}
	return json.Unmarshal(header, m)
}

// jsonReader reads the JSON values it is asked for, failing (for good) at anything else.
type jsonReader struct {
	b      []byte
	i      int
	failed bool
}

func (r *jsonReader) space() {
	for r.i < len(r.b) && (r.b[r.i] == ' ' || r.b[r.i] == '\t' || r.b[r.i] == '\n' || r.b[r.i] == '\r') {
		r.i++
	}
}

// next consumes c, the next byte after spaces.
func (r *jsonReader) next(c byte) bool {
	r.space()
	if r.failed || r.i >= len(r.b) || r.b[r.i] != c {
		r.failed = true
		return false
	}
	r.i++
	return true
}

// end is whether all was read.
func (r *jsonReader) end() bool {
	r.space()
	return !r.failed && r.i == len(r.b)
}

// object reads an object, calling field for each key with the reader at its value.
func (r *jsonReader) object(field func(key string) bool) bool {
	return r.list('{', '}', func() bool {
		key := r.str()
		return r.next(':') && field(key)
	})
}

// list reads open, the comma-separated items (item reads one), and close.
func (r *jsonReader) list(open, close byte, item func() bool) bool {
	if !r.next(open) {
		return false
	}
	r.space()
	if r.i < len(r.b) && r.b[r.i] == close {
		r.i++
		return true
	}
	for {
		if !item() {
			r.failed = true
			return false
		}
		r.space()
		if r.i < len(r.b) && r.b[r.i] == ',' {
			r.i++
			continue
		}
		return r.next(close)
	}
}

// str reads a string without escapes (one with escapes fails the reader).
func (r *jsonReader) str() string {
	if !r.next('"') {
		return ""
	}
	start := r.i
	for r.i < len(r.b) {
		switch c := r.b[r.i]; {
		case c == '"':
			r.i++
			return string(r.b[start : r.i-1])
		case c == '\\' || c < 0x20:
			r.failed = true
			return ""
		}
		r.i++
	}
	r.failed = true
	return ""
}

// strOrNull reads a string or null.
func (r *jsonReader) strOrNull() *string {
	r.space()
	if r.i+4 <= len(r.b) && string(r.b[r.i:r.i+4]) == "null" {
		r.i += 4
		return nil
	}
	s := r.str()
	return &s
}

// skip reads any value (the front's are strings, arrays of strings and objects of those; a
// literal is read loosely, as what encoding/json would then check).
func (r *jsonReader) skip() {
	r.space()
	if r.failed || r.i >= len(r.b) {
		r.failed = true
		return
	}
	switch c := r.b[r.i]; c {
	case '{':
		r.object(func(string) bool {
			r.skip()
			return !r.failed
		})
	case '[':
		r.list('[', ']', func() bool {
			r.skip()
			return !r.failed
		})
	case '"':
		r.str()
	default:
		start := r.i
		for r.i < len(r.b) && strings.IndexByte("+-.0123456789eEtrufalsn", r.b[r.i]) >= 0 {
			r.i++
		}
		r.failed = r.failed || r.i == start
	}
}
