// Benchmark functions for bench/compiled.sh (Kubeless's Go signature).
package kubeless

import "github.com/kubeless/kubeless/pkg/functions"

// Hello answers a constant.
func Hello(event functions.Event, context functions.Context) (string, error) {
	return "hello world", nil
}

// Echo answers the posted JSON: the Go runtime gives the body as text (Kubeless's Event.Data),
// so it goes back as it came, with the JSON content type.
func Echo(event functions.Event, context functions.Context) (string, error) {
	event.Extensions.Response.Header().Set("Content-Type", "application/json")
	return event.Data, nil
}
