package webrtc

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// slogLoggerFactory routes pion's logs into slog. Pion's trace, debug and info output is chatty and goes
// to Debug; warnings and errors keep their level.
type slogLoggerFactory struct{ log *slog.Logger }

func (f *slogLoggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return &slogLeveled{log: f.log.With("pion", scope)}
}

type slogLeveled struct{ log *slog.Logger }

func (l *slogLeveled) emit(level slog.Level, msg string) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, msg)
	}
}

func (l *slogLeveled) Trace(msg string)                  { l.emit(slog.LevelDebug-4, msg) }
func (l *slogLeveled) Tracef(format string, args ...any) { l.Trace(fmt.Sprintf(format, args...)) }
func (l *slogLeveled) Debug(msg string)                  { l.emit(slog.LevelDebug, msg) }
func (l *slogLeveled) Debugf(format string, args ...any) { l.Debug(fmt.Sprintf(format, args...)) }
func (l *slogLeveled) Info(msg string)                   { l.emit(slog.LevelDebug, msg) }
func (l *slogLeveled) Infof(format string, args ...any)  { l.Info(fmt.Sprintf(format, args...)) }
func (l *slogLeveled) Warn(msg string)                   { l.emit(slog.LevelWarn, msg) }
func (l *slogLeveled) Warnf(format string, args ...any)  { l.Warn(fmt.Sprintf(format, args...)) }
func (l *slogLeveled) Error(msg string)                  { l.emit(slog.LevelError, msg) }
func (l *slogLeveled) Errorf(format string, args ...any) { l.Error(fmt.Sprintf(format, args...)) }
