package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Cameras appear and vanish with the snapshot; counters and HTTP series are exposed by name.
func TestCamerasFollowSnapshot(t *testing.T) {
	var mu sync.Mutex
	cams := []CameraSample{{ID: "a", State: "streaming", Streaming: true, Frames: 10, Viewers: 2,
		WebRTC: []WebRTCSample{{Variant: "raw", Sessions: map[string]int{"connected": 1, "connecting": 1}, FanoutDropped: 7, ReaderDropped: 3}}},
		{ID: "b", State: "stopped"}}
	r := New(func() []CameraSample {
		mu.Lock()
		defer mu.Unlock()
		return cams
	})
	r.ObserveRequest("GET /api/v1/cameras", 200, time.Millisecond, false)
	r.AuthFailure("unauthorized")
	r.RateLimited("api")
	body := get(t, r)
	for _, want := range []string{
		`sightline_camera_up{camera="a"} 1`, `sightline_camera_up{camera="b"} 0`,
		`sightline_camera_frames_total{camera="a"} 10`, `sightline_camera_state{camera="b",state="stopped"} 1`,
		`sightline_webrtc_sessions{state="connected"} 1`, `sightline_webrtc_sessions{state="connecting"} 1`,
		`sightline_webrtc_sessions{state="new"} 0`, `sightline_webrtc_sessions{state="disconnected"} 0`,
		`sightline_webrtc_sessions{state="failed"} 0`, `sightline_cameras 2`,
		`sightline_webrtc_dropped_frames_total{camera="a",stage="fanout",variant="raw"} 7`,
		`sightline_webrtc_dropped_frames_total{camera="a",stage="reader",variant="raw"} 3`,
		`sightline_http_requests_total{code="200",route="GET /api/v1/cameras"} 1`,
		`sightline_auth_failures_total{reason="unauthorized"} 1`, `sightline_rate_limited_total{limit="api"} 1`,
		`go_goroutines`, `process_`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("missing %q", want)
		}
	}
	mu.Lock()
	cams = cams[:1]
	mu.Unlock()
	if body := get(t, r); strings.Contains(body, `camera="b"`) {
		t.Error("deleted camera still exposed")
	}
}

func get(t *testing.T, r *Registry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

// Analytics series are served with New's extra collectors, by camera, and vanish with Forget.
func TestAnalyticsSeries(t *testing.T) {
	a := NewAnalytics()
	r := New(func() []CameraSample { return nil }, a)
	c := a.Camera("a")
	c.ObserveStage(StageDecode, 2*time.Millisecond)
	c.ObserveStage(StageInference, 30*time.Millisecond)
	c.ObserveStage("custom", time.Second)
	c.Analysed()
	c.Analysed()
	for _, class := range []string{"person", "person", "car"} {
		c.Detection(class)
	}
	c.Event("walkway")
	a.Camera("b").ObserveStage(StageTrack, time.Microsecond)
	body := get(t, r)
	for _, want := range []string{
		`sightline_stage_seconds_bucket{camera="a",stage="decode",le="0.0025"} 1`,
		`sightline_stage_seconds_bucket{camera="a",stage="decode",le="0.001"} 0`,
		`sightline_stage_seconds_count{camera="a",stage="inference"} 1`,
		`sightline_stage_seconds_count{camera="a",stage="custom"} 1`,
		`sightline_stage_seconds_count{camera="a",stage="preprocess"} 0`,
		`sightline_inference_total{camera="a"} 2`,
		`sightline_detections_total{camera="a",class="person"} 2`,
		`sightline_detections_total{camera="a",class="car"} 1`,
		`sightline_events_total{camera="a",rule="walkway"} 1`,
		`sightline_stage_seconds_count{camera="b",stage="track"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("missing %q", want)
		}
	}
	a.Forget("a")
	if body := get(t, r); strings.Contains(body, `camera="a"`) || !strings.Contains(body, `camera="b"`) {
		t.Errorf("Forget(a) left:\n%s", body)
	}
}
