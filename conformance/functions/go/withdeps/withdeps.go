// Uses a module from the Go module proxy, as Kubeless's hellowithdeps.go does.
package kubeless

import (
	"github.com/kubeless/kubeless/pkg/functions"
	"github.com/sirupsen/logrus"
)

// Check logs the event's data with logrus and returns "deps ok".
func Check(event functions.Event, context functions.Context) (string, error) {
	logrus.Info("withdeps called with ", event.Data)
	return "deps ok", nil
}
