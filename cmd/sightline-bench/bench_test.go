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
	clip := testenv.Asset(t, "camera/cam_street_1280x720_25fps.h264")
	base := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	code := run(ctx, []string{"latency", "-duration", "3s", "-json", "-clip", clip}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	var r latencyResult
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("decode %q: %v", out.String(), err)
	}
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

	deadline := time.Now().Add(15 * time.Second)
	for runtime.NumGoroutine() > base+2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base+2 {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: %d after the run, %d before\n%s", n, base, buf[:runtime.Stack(buf, true)])
	}
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
