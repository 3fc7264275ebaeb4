package main

// The model side of the benchmarks: checking the model files exist, the analytics configuration section,
// and the slowed detector of `annotated -detector-delay`.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"sightline/analytics"
)

// checkModel makes sure the model, the library and any clips exist, with a hint when they do not.
func checkModel(model, library string, clips ...string) error {
	for _, p := range append([]string{model, library}, clips...) {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%w (make media onnxruntime; or -model, -onnx-library)", err)
		}
	}
	return nil
}

// analyticsYAML is the analytics section for model + library at fps analysed frames per second.
func analyticsYAML(model, library string, fps float64) string {
	return fmt.Sprintf("analytics: {fps: %g, model: %q, onnxLibrary: %q}\n", fps, abs(model), abs(library))
}

func abs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// slowDetector sleeps before every inference: the `-detector-delay` of `annotated`.
type slowDetector struct {
	analytics.Detector
	delay time.Duration
}

func (s slowDetector) Detect(ctx context.Context, in []analytics.Input) ([]analytics.Result, error) {
	t := time.NewTimer(s.delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.Detector.Detect(ctx, in)
}
