package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"sightline/gateway"
	"sightline/internal/browsertest"
	"sightline/internal/testenv"
)

// startGateway starts a gateway from configYAML (paths relative to a temp folder) and closes it when
// the test ends. It returns the base URL, http://127.0.0.1:PORT.
func startGateway(t *testing.T, configYAML string) (*gateway.Gateway, string) {
	t.Helper()
	cfg, err := gateway.ParseConfig([]byte(configYAML), t.TempDir())
	if err != nil {
		t.Fatalf("parse config: %v\n%s", err, configYAML)
	}
	logs := &testLog{t: t}
	g, err := gateway.New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		t.Fatalf("new gateway: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := g.Start(ctx); err != nil {
		cancel()
		t.Fatalf("start gateway: %v", err)
	}
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Errorf("close gateway: %v", err)
		}
		cancel()
		logs.stop()
	})
	addr := g.HTTPAddr()
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("gateway listens on %q, want 127.0.0.1:PORT", addr)
	}
	return g, "http://" + addr
}

// testLog sends the gateway's log lines to t.Log until the test's cleanup stops it.
type testLog struct {
	mu      sync.Mutex
	t       *testing.T
	stopped bool
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		l.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (l *testLog) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
}

// cameraView is the part of GET /api/v1/cameras these tests read.
type cameraView struct {
	ID      string `json:"id"`
	Viewers int    `json:"viewers"`
	Status  struct {
		State     string  `json:"state"`
		LastError string  `json:"last_error"`
		FPS       float64 `json:"fps"`
		Publisher string  `json:"publisher"`
	} `json:"status"`
}

func getCamera(client *http.Client, base, id string) (cameraView, error) {
	var cam cameraView
	res, err := client.Get(base + "/api/v1/cameras/" + id)
	if err != nil {
		return cam, err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return cam, fmt.Errorf("GET camera %s: status %d: %s", id, res.StatusCode, body)
	}
	if err := json.Unmarshal(body, &cam); err != nil {
		return cam, fmt.Errorf("decode camera %s: %w (%s)", id, err, body)
	}
	return cam, nil
}

// waitCamera polls the API until ok accepts the camera, or fails the test after timeout.
func waitCamera(t *testing.T, client *http.Client, base, id string, timeout time.Duration, what string, ok func(cameraView) bool) cameraView {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		cam, err := getCamera(client, base, id)
		if err == nil && ok(cam) {
			return cam
		}
		if time.Now().After(deadline) {
			t.Fatalf("camera %s: not %s within %v (last %+v, err %v)", id, what, timeout, cam, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkGoroutines fails the test if, after every later cleanup ran, more goroutines are alive than at
// its start (waiting up to 5 s for them to wind down). Call it first.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("goroutine leak: %d alive, %d before the test\n%s",
					runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// playbackScript resolves to {framesDecoded, width, height, state} once the page's player for camera
// arguments[0] has decoded a frame at width arguments[1], else to null.
const playbackScript = `
const [id, width] = arguments;
const p = window.sightline && window.sightline.players.get(id);
if (!p || !p.pc) return null;
return p.pc.getStats().then((report) => {
  let frames = 0;
  report.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') frames = s.framesDecoded || 0; });
  const v = p.video;
  if (frames > 0 && v.videoWidth === width) {
    return {framesDecoded: frames, width: v.videoWidth, height: v.videoHeight, state: p.state};
  }
  return null;
});`

// diagScript describes a tile and its player for failure messages.
const diagScript = `
const id = arguments[0];
const p = window.sightline && window.sightline.players.get(id);
const tile = document.querySelector('[data-camera="' + id + '"]');
return {
  player: p ? {state: p.state, reason: p.reason, pc: p.pc && p.pc.connectionState,
               ice: p.pc && p.pc.iceConnectionState, session: p.session,
               videoWidth: p.video.videoWidth, readyState: p.video.readyState} : null,
  tile: tile ? tile.innerText : null,
  banner: document.getElementById('banner').textContent,
};`

// tileScript resolves to the tile's badge, player state and resolution once the tile shows the
// player as playing at arguments[1] (e.g. "1280×720"), else to null.
const tileScript = `
const [id, resolution] = arguments;
const tile = document.querySelector('[data-camera="' + id + '"]');
if (!tile) return null;
const text = (sel) => tile.querySelector(sel).textContent;
const out = {badge: text('.badge'), badgeState: tile.querySelector('.badge').dataset.state,
             player: text('.player-state'), resolution: text('.resolution'),
             viewers: text('.viewers'), fps: text('.fps')};
return out.player === 'playing' && out.resolution === resolution && out.badgeState === 'streaming' ? out : null;`

// playback is what playbackScript returns.
type playback struct {
	FramesDecoded int    `json:"framesDecoded"`
	Width         int    `json:"width"`
	Height        int    `json:"height"`
	State         string `json:"state"`
}

// tileView is what tileScript returns.
type tileView struct {
	Badge      string `json:"badge"`
	BadgeState string `json:"badgeState"`
	Player     string `json:"player"`
	Resolution string `json:"resolution"`
	Viewers    string `json:"viewers"`
	FPS        string `json:"fps"`
}

// expectPlaying waits until the page plays camera id at width x height and its tile says so, and
// returns how long the first decoded frame took from the call.
func expectPlaying(t *testing.T, b *browsertest.Browser, id string, width, height int) (playback, tileView, time.Duration) {
	t.Helper()
	start := time.Now()
	raw, err := b.Poll(context.Background(), 15*time.Second, playbackScript, id, width)
	if err != nil {
		diag, _ := b.Exec(diagScript, id)
		b.Fatalf("camera %s never played at width %d: %v\npage: %s", id, width, err, diag)
	}
	firstFrame := time.Since(start)
	var pb playback
	if err := json.Unmarshal(raw, &pb); err != nil {
		t.Fatalf("decode playback %s: %v", raw, err)
	}
	if pb.Height != height {
		t.Errorf("video height %d, want %d", pb.Height, height)
	}
	raw, err = b.Poll(context.Background(), 5*time.Second, tileScript, id, fmt.Sprintf("%d×%d", width, height))
	if err != nil {
		diag, _ := b.Exec(diagScript, id)
		b.Fatalf("tile %s does not show playing/streaming/%dx%d: %v\npage: %s", id, width, height, err, diag)
	}
	var tv tileView
	if err := json.Unmarshal(raw, &tv); err != nil {
		t.Fatalf("decode tile %s: %v", raw, err)
	}
	return pb, tv, firstFrame
}

// screenshot saves the page to the test's temp folder, and also to $SIGHTLINE_SCREENSHOT_DIR if set.
func screenshot(t *testing.T, b *browsertest.Browser, name string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := b.Screenshot(path); err != nil {
		t.Fatalf("%v", err)
	}
	if dir := os.Getenv("SIGHTLINE_SCREENSHOT_DIR"); dir != "" {
		data, err := os.ReadFile(path)
		if err == nil {
			err = os.MkdirAll(dir, 0o755)
		}
		if err == nil {
			path = filepath.Join(dir, name)
			err = os.WriteFile(path, data, 0o644)
		}
		if err != nil {
			t.Errorf("copy screenshot to %s: %v", dir, err)
		}
	}
	t.Logf("screenshot: %s", path)
	return path
}

// startStreetPlayback starts a playback gateway (playbackConfig) with one camera, street, looping the
// street clip from a file, and returns its base URL.
func startStreetPlayback(t *testing.T) string {
	t.Helper()
	asset := testenv.Asset(t, "camera/cam_street_1280x720_25fps.h264")
	_, base := startGateway(t, playbackConfig(`
  - id: street
    url: file://%s
`, asset))
	return base
}

// playbackConfig is the gateway configuration of the playback tests and benchmarks: HTTP and WebRTC on
// loopback only, and auth off (they are about playback; TestBrowserPlaysRTSPCameraFocused runs with
// auth). cameras is the YAML list under `cameras:`, formatted with args.
func playbackConfig(cameras string, args ...any) string {
	return `
http:
  listen: 127.0.0.1:0
auth:
  enabled: false
webrtc:
  udpPort: 0
  loopbackOnly: true
cameras:
` + fmt.Sprintf(cameras, args...)
}

// negotiateJS defines negotiate(pc, path, headers) for the page scripts of these tests: it sets pc's
// offer, waits for ICE gathering (at most 1 s), POSTs the offer to path (WHEP or WHIP) and applies the 201
// answer; it resolves to {location (absolute), answer, posted (performance.now() just before the POST)}.
const negotiateJS = `
async function negotiate(pc, path, headers) {
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((r) => {
    if (pc.iceGatheringState === 'complete') return r();
    pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') r(); };
    setTimeout(r, 1000);
  });
  const posted = performance.now();
  const res = await fetch(path, {method: 'POST', headers: {...(headers || {}), 'Content-Type': 'application/sdp'},
    body: pc.localDescription.sdp});
  if (res.status !== 201) throw new Error(path + ': ' + res.status + ': ' + await res.text());
  const location = new URL(res.headers.get('Location'), window.location.href).href;
  const answer = await res.text();
  await pc.setRemoteDescription({type: 'answer', sdp: answer});
  return {location, answer, posted};
}
`
