// Its go.mod requires a module that does not exist: the build fails, naming it.
package kubeless

import (
	nosuch "github.com/kelp-conformance/kelp-no-such-package-0000"
	"github.com/kubeless/kubeless/pkg/functions"
)

// Check never builds.
func Check(event functions.Event, context functions.Context) (string, error) {
	return nosuch.Value, nil
}
