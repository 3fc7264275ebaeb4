package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"net/http"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/coder/websocket"

	"sightline/alerts"
	"sightline/internal/testenv"
	"sightline/media"
	"sightline/overlay"
)

// lumaAt returns the luma of a decoded JPEG at x, y.
func lumaAt(img image.Image, x, y int) uint8 {
	if yc, ok := img.(*image.YCbCr); ok {
		return yc.Y[yc.YOffset(x, y)]
	}
	r, g, b, _ := img.At(x, y).RGBA()
	return uint8((299*r + 587*g + 114*b) / 1000 >> 8)
}

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
	alertFeed := dial("/ws/alerts?camera=street&rule=walkway&class=motion&token=" + tokViewer)
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

	_, b, err := alertFeed.Read(ctx)
	if err != nil {
		t.Fatalf("alerts feed: %v", err)
	}
	var ev alerts.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Type != "event" || ev.ID == "" || ev.Camera != "street" || ev.Rule != "walkway" || ev.Label != "motion" ||
		ev.Kind == "" || ev.CapturedAt.IsZero() || ev.Snapshot != "/api/v1/events/"+ev.ID+"/snapshot.jpg" {
		t.Fatalf("alert %s", b)
	}
	t.Logf("alert %s, received %s after its frame's capture", b, time.Since(ev.CapturedAt).Round(time.Millisecond))

	// The event is listed and fetchable by id, and its snapshot is the frame with the zone drawn.
	httpBase := "http://" + g.HTTPAddr()
	var got alerts.Event
	getJSON(t, httpBase+"/api/v1/events/"+ev.ID+"?token="+tokViewer, &got)
	if got != ev {
		t.Fatalf("GET event: %+v, want %+v", got, ev)
	}
	img := checkJPEG(t, httpBase+ev.Snapshot+"?token="+tokViewer, 1280, 720)
	if d := os.Getenv("SIGHTLINE_SAVE_SNAPSHOT"); d != "" {
		_, _, body := httpGet(t, httpBase+ev.Snapshot+"?token="+tokViewer)
		_ = os.WriteFile(d, body, 0o644)
	}
	// The zone's top edge (y = 0.4, row 288) is painted in the zone colour: at a few columns left of the
	// walkers, the brightest luma of rows 285..291 is the zone's (JPEG blurs it a little).
	for _, x := range []int{150, 200, 250} {
		var peak uint8
		for y := 285; y <= 291; y++ {
			peak = max(peak, lumaAt(img, x, y))
		}
		if d := int(peak) - int(overlay.ZoneColor.Y); d < -30 || d > 30 {
			t.Errorf("snapshot column %d: brightest luma on the zone edge %d, zone colour %d: zone not drawn", x, peak, overlay.ZoneColor.Y)
		}
	}
	for path, want := range map[string]int{
		"/api/v1/events/nope/snapshot.jpg?token=" + tokViewer: http.StatusNotFound,
		"/api/v1/events/nope?token=" + tokViewer:              http.StatusNotFound,
		"/api/v1/events/" + ev.ID + "/snapshot.jpg":           http.StatusUnauthorized,
	} {
		if code, _, body := httpGet(t, httpBase+path); code != want {
			t.Errorf("%s: %d %s, want %d", path, code, body, want)
		}
	}
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
	alertFeed.CloseNow()
	other.CloseNow()
	waitFor(t, 5*time.Second, "goroutines to settle", func() bool { return runtime.NumGoroutine() <= before+2 })
}
