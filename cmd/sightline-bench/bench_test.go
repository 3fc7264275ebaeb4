package main

import (
	"bytes"
	"context"
	"encoding/json"
	"runtime"
	"testing"
	"time"

	"sightline/internal/testenv"
)

// TestLatencySmoke runs `latency` for 3 s end to end (stamped RTSP publisher → Sightline → WHEP, plus
// the direct RTSP baseline) so that CI keeps the tool working. It asserts that frames arrived, never how
// fast.
func TestLatencySmoke(t *testing.T) {
	var r latencyResult
	runJSON(t, &r, "latency", "-duration", "3s", "-clip", testenv.Asset(t, "camera/cam_street_1280x720_25fps.h264"))
	if len(r.Readers) != 2 {
		t.Fatalf("readers: %+v", r.Readers)
	}
	for _, v := range r.Readers {
		if v.Frames < 25 { // 3 s at 25 fps is 75; allow a bad start, demand real flow
			t.Errorf("%s received %d frames of %d", v.Name, v.Frames, v.Expected)
		}
	}
	if r.Added.N == 0 {
		t.Error("no frame seen by both readers")
	}
	t.Logf("added latency median %.2f ms, p99 %.2f ms over %d frames", r.Added.Median, r.Added.P99, r.Added.N)
}

// TestWhipSmoke runs `whip` for 3 s end to end (stamped WHIP publisher → Sightline's whip: camera →
// WHEP, plus a second publisher into the direct pion receiver): frames arrive on both and their stamps map
// back to published frames. No timing assertion.
func TestWhipSmoke(t *testing.T) {
	var r whipResult
	runJSON(t, &r, "whip", "-duration", "3s", "-clip", testenv.Asset(t, "camera/cam_street_1280x720_25fps.h264"))
	if len(r.Readers) != 2 {
		t.Fatalf("readers: %+v", r.Readers)
	}
	for _, v := range r.Readers {
		if v.Expected == 0 || v.Frames < 25 { // 3 s at 25 fps is 75; allow a bad start, demand real flow
			t.Errorf("%s received %d stamped frames of %d", v.Name, v.Frames, v.Expected)
		}
	}
	if r.Added.N == 0 {
		t.Error("no frame seen by both readers")
	}
	t.Logf("added by the relay: median %.2f ms, p99 %.2f ms over %d frames", r.Added.Median, r.Added.P99, r.Added.N)
}

func TestParseViewers(t *testing.T) {
	if v, err := parseViewers("100, 250,500"); err != nil || len(v) != 3 || v[2] != 500 {
		t.Errorf("parseViewers = %v, %v", v, err)
	}
	for _, bad := range []string{"", "0", "x", "10,-1", "99999"} {
		if _, err := parseViewers(bad); err == nil {
			t.Errorf("parseViewers(%q) accepted", bad)
		}
	}
}

func TestPercentile(t *testing.T) {
	s := summarize([]time.Duration{5 * time.Millisecond, 1 * time.Millisecond, 3 * time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond})
	if s.Median != 3 || s.P99 != 5 || s.Min != 1 || s.N != 5 {
		t.Errorf("summary %+v", s)
	}
}

// runJSON runs one mode with -json into v and checks that no goroutine outlives it.
func runJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	base := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	if code := run(ctx, append(args, "-json"), &out, &errOut); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	if err := json.Unmarshal(out.Bytes(), v); err != nil {
		t.Fatalf("decode %q: %v", out.String(), err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for runtime.NumGoroutine() > base+2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base+2 {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: %d after the run, %d before\n%s", n, base, buf[:runtime.Stack(buf, true)])
	}
}

func modelArgs(t *testing.T) []string {
	return []string{"-clip", testenv.Asset(t, "camera/cam_street_1280x720_25fps.h264"),
		"-model", testenv.Asset(t, "models/yolox_nano.onnx"), "-onnx-library", testenv.ONNXLibrary(t)}
}

// TestAnnotatedSmoke runs `annotated` for 2 s with a slowed detector: both tracks decode, the visual
// stamp reads back from both, and the annotated frames keep the camera's RTP timestamps. No timing.
func TestAnnotatedSmoke(t *testing.T) {
	var r annotatedResult
	runJSON(t, &r, append([]string{"annotated", "-duration", "2s", "-warmup", "500ms", "-loop", "60",
		"-detector-delay", "50ms"}, modelArgs(t)...)...)
	if len(r.Readers) != 2 {
		t.Fatalf("readers: %+v", r.Readers)
	}
	for _, v := range r.Readers {
		if v.Frames < 20 { // 2 s at 30 fps is 60
			t.Errorf("%s decoded %d stamped frames of %d", v.Name, v.Frames, v.Published)
		}
		if v.RTPConsistent != v.RTPChecked {
			t.Errorf("%s: RTP timestamp follows the index for %d of %d frames", v.Name, v.RTPConsistent, v.RTPChecked)
		}
	}
	if raw := r.Readers[0]; raw.SEIChecked == 0 || raw.SEIMismatch != 0 {
		t.Errorf("raw track: SEI index = visual index for %d of %d", raw.SEIChecked-raw.SEIMismatch, raw.SEIChecked)
	}
	if r.Added.N == 0 {
		t.Error("no frame seen by both tracks")
	}
	t.Logf("added by the annotated path: median %.2f ms over %d frames; %.2f analysed fps", r.Added.Median, r.Added.N, r.AnalysedFPS)
}

// TestFirstFrameSmoke runs `firstframe` once per track: both decode a first picture.
func TestFirstFrameSmoke(t *testing.T) {
	var r firstFrameResult
	runJSON(t, &r, append([]string{"firstframe", "-runs", "1"}, modelArgs(t)...)...)
	if len(r.Tracks) != 2 {
		t.Fatalf("tracks: %+v", r.Tracks)
	}
	for _, tr := range r.Tracks {
		if tr.Failed != 0 || tr.First.N != 1 {
			t.Errorf("%s: %+v", tr.Track, tr)
		}
	}
	t.Logf("first frame: raw %.0f ms, annotated %.0f ms", r.Tracks[0].First.Median, r.Tracks[1].First.Median)
}

// TestAlertsSmoke runs `alerts` for 3 s: Meta arrives on /ws/meta and maps back to published frames by
// its RTP timestamp (events may or may not fire in so short a window).
func TestAlertsSmoke(t *testing.T) {
	var r alertsResult
	runJSON(t, &r, append([]string{"alerts", "-duration", "3s"}, modelArgs(t)...)...)
	if r.CaptureOffset.N == 0 {
		t.Errorf("no Meta mapped to a published frame: %+v", r)
	}
	t.Logf("%d events, capture -> subscriber median %.1f ms; publish -> capturedAt median %.2f ms", r.Events, r.Latency.Median, r.CaptureOffset.Median)
}
