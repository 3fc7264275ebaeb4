package main

// sleepCtx is the benchmarks' one way to wait out a window or a pause: d, or until ctx ends.

import (
	"context"
	"time"
)

// sleepCtx waits d and returns nil, or returns ctx's error as soon as ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
