// Conformance functions for the Go runtime (module `conf`).
//
// Parallel to ../python/conf.py: same handlers, same behaviour, as a Kubeless Go function
// writes them. Go handlers are exported, so `conf.hello` is `Hello` here; a Go function returns
// a string, so a JSON or binary result is a string with the content type set on
// event.Extensions.Response. See conformance/README.md.
package kubeless

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kubeless/kubeless/pkg/functions"
)

// Hello returns "hello world".
func Hello(event functions.Event, context functions.Context) (string, error) {
	return "hello world", nil
}

// orNull is s, or JSON null when it is empty (a header the request did not have).
func orNull(s string) interface{} {
	if s == "" {
		return nil
	}
	return s
}

// jsonOf answers v as JSON.
func jsonOf(event functions.Event, v interface{}) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	event.Extensions.Response.Header().Set("Content-Type", "application/json")
	return string(b), nil
}

// Echo returns the event without its extensions, plus the request and the context, as JSON.
// A JSON body (Content-Type application/json) is decoded; a body that is not UTF-8 is base64.
func Echo(event functions.Event, context functions.Context) (string, error) {
	r := event.Extensions.Request
	out := map[string]interface{}{
		"event-id":        orNull(event.EventID),
		"event-type":      orNull(event.EventType),
		"event-time":      orNull(event.EventTime),
		"event-namespace": orNull(event.EventNamespace),
		"x_custom_header": orNull(r.Header.Get("X-Custom-Header")),
		"context": map[string]string{
			"function-name": context.FunctionName,
			"timeout":       context.Timeout,
			"runtime":       context.Runtime,
			"memory-limit":  context.MemoryLimit,
		},
	}
	if media, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); media == "application/json" {
		var data interface{}
		if event.Data != "" {
			if err := json.Unmarshal([]byte(event.Data), &data); err != nil {
				return "", err
			}
		}
		out["data"], out["data_length"] = data, nil
	} else if utf8.ValidString(event.Data) {
		out["data"], out["data_length"] = event.Data, len(event.Data)
	} else {
		out["data"], out["data_length"] = base64.StdEncoding.EncodeToString([]byte(event.Data)), len(event.Data)
		out["data_encoding"] = "base64"
	}
	query := map[string]interface{}{}
	for name, values := range r.URL.Query() {
		if len(values) == 1 {
			query[name] = values[0]
		} else {
			query[name] = values
		}
	}
	headers := map[string]string{}
	for name, values := range r.Header {
		headers[strings.ToLower(name)] = strings.Join(values, ", ")
	}
	out["request"] = map[string]interface{}{
		"method":  r.Method,
		"path":    r.URL.Path,
		"url":     r.RequestURI,
		"query":   query,
		"headers": headers,
	}
	return jsonOf(event, out)
}

// Returns returns the value named by ?t=, with the content type a Go function sets for it.
func Returns(event functions.Event, context functions.Context) (string, error) {
	w := event.Extensions.Response
	switch t := event.Extensions.Request.URL.Query().Get("t"); t {
	case "str":
		return "a string", nil
	case "bytes":
		w.Header().Set("Content-Type", "application/octet-stream")
		return string([]byte{0x00, 0x01, 'b', 'y', 't', 'e', 's', 0xff}), nil
	case "dict":
		return jsonOf(event, map[string]interface{}{"a": 1, "b": []interface{}{true, nil, "x"}})
	case "list":
		return jsonOf(event, []interface{}{1, "two", nil})
	case "none":
		// net/http's way to send no Content-Type at all.
		w.Header()["Content-Type"] = nil
		return "", nil
	case "number":
		return jsonOf(event, 42)
	case "bool":
		return jsonOf(event, true)
	case "empty":
		return "", nil
	case "false":
		return jsonOf(event, false)
	case "zero":
		return jsonOf(event, 0)
	case "float":
		return jsonOf(event, 1.5)
	case "unicode":
		return "h\u00e9llo \u2713", nil
	default:
		return "", errors.New("unknown t=" + t)
	}
}

// Status answers 201 with the header x-kelp: yes.
func Status(event functions.Event, context functions.Context) (string, error) {
	event.Extensions.Response.Header().Set("X-Kelp", "yes")
	event.Extensions.Response.WriteHeader(http.StatusCreated)
	return "created", nil
}

// Framing sets a Content-Length that disagrees with the body: the runtime must frame the body
// itself.
func Framing(event functions.Event, context functions.Context) (string, error) {
	event.Extensions.Response.Header().Set("Content-Length", "5")
	return "hello world", nil
}

// Boom returns an error: 500 "Error: kaboom".
func Boom(event functions.Event, context functions.Context) (string, error) {
	return "", errors.New("kaboom")
}

// Panics panics (Go only): 500, and the worker goes on serving.
func Panics(event functions.Event, context functions.Context) (string, error) {
	panic("oops")
}

// Slow sleeps ?s= seconds.
func Slow(event functions.Event, context functions.Context) (string, error) {
	seconds, _ := strconv.ParseFloat(event.Extensions.Request.URL.Query().Get("s"), 64)
	time.Sleep(time.Duration(seconds * float64(time.Second)))
	return "slept", nil
}

// Spin loops forever (a synchronous hang).
func Spin(event functions.Event, context functions.Context) (string, error) {
	for {
	}
}

// Die exits the worker process with status 3.
func Die(event functions.Event, context functions.Context) (string, error) {
	os.Exit(3)
	return "", nil
}

// Env returns the environment variable named by ?name=.
func Env(event functions.Event, context functions.Context) (string, error) {
	return os.Getenv(event.Extensions.Request.URL.Query().Get("name")), nil
}

// Asyncfn returns "async ok" from another goroutine.
func Asyncfn(event functions.Event, context functions.Context) (string, error) {
	done := make(chan string)
	go func() {
		time.Sleep(10 * time.Millisecond)
		done <- "async ok"
	}()
	return <-done, nil
}

// Request returns what a Go function reads from its *http.Request and context beyond the echo
// (Go only): the Host, the body through its reader, the content length and whether the
// context has a deadline.
func Request(event functions.Event, context functions.Context) (string, error) {
	r := event.Extensions.Request
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return "", err
	}
	_, deadline := event.Extensions.Context.Deadline()
	return jsonOf(event, map[string]interface{}{
		"host":           r.Host,
		"body":           string(body),
		"content_length": r.ContentLength,
		"deadline":       deadline,
		"proto":          r.Proto,
	})
}
