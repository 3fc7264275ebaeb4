package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/coder/websocket"

	"sightline/internal/testenv"
	"sightline/media"
)

// /ws/meta and /ws/alerts with ?token= on a file camera analysed by the motion detector with a zone
// over the lower half: the meta feed carries the camera's Meta per analysed frame (and its events), the
// alerts feed the zone's events, filtered by camera, rule and class; bad requests are refused before the
// upgrade, and the sockets end with the gateway.
func TestMetaAndAlertFeeds(t *testing.T) {
	clip := testenv.Asset(t, "camera/cam_street_1280x720_25fps.h264")
	before := runtime.NumGoroutine()
	g, _ := startGatewayYAML(t, authConfig+fmt.Sprintf(`analytics: {fps: 5, model: /nonexistent/model.onnx}
cameras:
  - id: street
    url: 'file://%s'
    rules:
      - {id: walkway, type: zone, polygon: [[0,0.4],[1,0.4],[1,1],[0,1]]}
`, clip))
	base := "ws://" + g.HTTPAddr()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dial := func(path string) *websocket.Conn {
		t.Helper()
		conn, _, err := websocket.Dial(ctx, base+path, nil)
		if err != nil {
			t.Fatalf("dial %s: %v", path, err)
		}
		t.Cleanup(func() { conn.CloseNow() })
		return conn
	}
	meta := dial("/ws/meta?camera=street&token=" + tokViewer)
	alerts := dial("/ws/alerts?camera=street&rule=walkway&class=motion&token=" + tokViewer)
	other := dial("/ws/alerts?rule=nope&token=" + tokViewer)

	var m media.Meta
	var sawObjects, sawEvent bool
	for n := 0; !sawObjects || n < 5; n++ {
		_, b, err := meta.Read(ctx)
		if err != nil {
			t.Fatalf("meta feed: %v", err)
		}
		var probe struct{ Type string }
		_ = json.Unmarshal(b, &probe)
		if probe.Type == "event" {
			sawEvent = true
			continue
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("meta %s: %v", b, err)
		}
		if m.Camera != "street" || m.CapturedAt.IsZero() {
			t.Fatalf("meta %s", b)
		}
		sawObjects = sawObjects || len(m.Objects) > 0
	}
	t.Logf("meta feed: last %d objects at rtp %d (event seen there: %v)", len(m.Objects), m.RTPTime, sawEvent)

	_, b, err := alerts.Read(ctx)
	if err != nil {
		t.Fatalf("alerts feed: %v", err)
	}
	var ev eventMessage
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Type != "event" || ev.Camera != "street" || ev.Rule != "walkway" || ev.Label != "motion" || ev.Kind == "" || ev.At.IsZero() {
		t.Fatalf("alert %s", b)
	}
	t.Logf("alert %s, received %s after its frame's capture", b, time.Since(ev.At).Round(time.Millisecond))
	rctx, rcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	if _, b, err := other.Read(rctx); err == nil {
		t.Fatalf("a filtered-out subscriber got %s", b)
	}
	rcancel()

	for path, want := range map[string]int{
		"/ws/meta?token=" + tokViewer:                     http.StatusBadRequest,
		"/ws/meta?camera=nope&token=" + tokViewer:         http.StatusNotFound,
		"/ws/alerts?camera=nope&token=" + tokViewer:       http.StatusNotFound,
		"/ws/meta?camera=street":                          http.StatusUnauthorized,
		"/ws/alerts?camera=street&token=not-a-real-token": http.StatusUnauthorized,
	} {
		if _, resp, err := websocket.Dial(ctx, base+path, nil); err == nil || resp == nil || resp.StatusCode != want {
			t.Errorf("%s: %v %v, want %d", path, err, resp, want)
		}
	}

	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	// What was already sent may still be read; then the socket ends.
	cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
	defer ccancel()
	for n := 0; ; n++ {
		if _, _, err := meta.Read(cctx); err != nil {
			if cctx.Err() != nil {
				t.Fatal("meta feed still open 5 s after Close")
			}
			break
		}
		if n > 1000 {
			t.Fatal("meta feed still open after Close")
		}
	}
	meta.CloseNow()
	alerts.CloseNow()
	other.CloseNow()
	waitFor(t, 5*time.Second, "goroutines to settle", func() bool { return runtime.NumGoroutine() <= before+2 })
}
