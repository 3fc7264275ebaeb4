package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sightline/analytics"
	"sightline/analytics/pipeline"
)

// checkModel makes sure the model and library exist, with a hint when they do not.
func checkModel(model, library string) error {
	for _, p := range []string{model, library} {
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

// baseYAML is the part of every benchmark configuration before analytics and cameras: HTTP and WebRTC on
// loopback, no auth.
func baseYAML(logLevel string) string {
	return fmt.Sprintf(`http:
  listen: "127.0.0.1:0"
auth:
  enabled: false # loopback-only benchmark process
log: {level: %q, format: text}
webrtc:
  udpPort: 0
  loopbackOnly: true
  iceServers: []
`, logLevel)
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

// cameraStatus is the part of GET /api/v1/cameras/{id} the benchmarks read.
type cameraStatus struct {
	Viewers          int              `json:"viewers"`
	ViewersRaw       int              `json:"viewersRaw"`
	ViewersAnnotated int              `json:"viewersAnnotated"`
	Analytics        *pipeline.Status `json:"analytics"`
}

func getCameraStatus(ctx context.Context, httpAddr, id string) (cameraStatus, error) {
	var st cameraStatus
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/api/v1/cameras/"+id, nil)
	if err != nil {
		return st, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, fmt.Errorf("camera status: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("camera status: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// loadAverage returns /proc/loadavg's first three fields ("" where unreadable).
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
