package stack

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	gvlog "gvisor.dev/gvisor/pkg/log"
)

// slogEmitter sends gVisor's own log lines (rate-limited warnings about
// segments the netstack refused, for instance) to log/slog, so that a
// server has one log in one format.
type slogEmitter struct{}

func (slogEmitter) Emit(_ int, level gvlog.Level, _ time.Time, format string, v ...any) {
	l := slog.LevelDebug
	switch level {
	case gvlog.Warning:
		l = slog.LevelWarn
	case gvlog.Info:
		l = slog.LevelInfo
	}
	slog.Log(context.Background(), l, fmt.Sprintf(format, v...), "from", "netstack")
}

// LogToSlog sends gVisor's log (global to the process) to log/slog's
// default logger. xdpnet.Open calls it; a program that imports stack alone
// decides for itself.
func LogToSlog() { gvlog.SetTarget(slogEmitter{}) }
