// Package functions holds the types of a Kubeless Go function's arguments, as Kubeless's own
// github.com/kubeless/kubeless/pkg/functions declares them. Kelp provides this package itself
// (no network is needed for it); Extension.Context is the standard library's context.Context,
// which golang.org/x/net/context's Context (the one Kubeless named) is an alias of.
package functions

import (
	"context"
	"net/http"
)

// Extension holds the HTTP request of the event, the writer of its response, and a context
// that is cancelled when the call ends or its timeout (FUNC_TIMEOUT) passes.
type Extension struct {
	Request  *http.Request
	Response http.ResponseWriter
	Context  context.Context
}

// Event is one call of the function: its data (the raw request body) and where it came from.
type Event struct {
	Data           string
	EventID        string
	EventType      string
	EventTime      string
	EventNamespace string
	Extensions     Extension
}

// Context describes the function: its handler name, timeout in seconds, runtime and memory
// limit.
type Context struct {
	FunctionName string
	Timeout      string
	Runtime      string
	MemoryLimit  string
}
