// Does not compile: the build fails and the runtime exits with the compiler's first error lines.
package kubeless

import "github.com/kubeless/kubeless/pkg/functions"

// Hello returns a number where a string is due.
func Hello(event functions.Event, context functions.Context) (string, error) {
	return 42, nil
}
