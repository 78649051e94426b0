// A Go function with Kubeless's signature: handler hello.Hello, runtime go1.14 (or the
// installed Go's, go1.26). It greets whoever ?name= names, and echoes data when sent some.
package kubeless

import (
	"github.com/kubeless/kubeless/pkg/functions"
)

// Hello answers every call.
func Hello(event functions.Event, context functions.Context) (string, error) {
	if event.Data != "" {
		return event.Data, nil
	}
	name := event.Extensions.Request.URL.Query().Get("name")
	if name == "" {
		name = "world"
	}
	return "Hello " + name + "!", nil
}
