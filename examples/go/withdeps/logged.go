// A Go function with a dependency (go.mod: logrus from the Go module proxy): handler
// logged.Handle. It logs the data it is sent as a structured line and answers how long it is.
package kubeless

import (
	"fmt"

	"github.com/kubeless/kubeless/pkg/functions"
	"github.com/sirupsen/logrus"
)

// Handle logs the event's data.
func Handle(event functions.Event, context functions.Context) (string, error) {
	logrus.WithField("event-id", event.EventID).Info(event.Data)
	return fmt.Sprintf("logged %d bytes", len(event.Data)), nil
}
