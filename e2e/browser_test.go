package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"sightline/internal/browsertest"
	"sightline/internal/rtsptest"
	"sightline/internal/testenv"
)

// TestBrowserPlaysCameraOverWHEP proves the whole passthrough path in a real browser: a file camera
// feeds the gateway, the embedded UI lists it as streaming, its player negotiates WHEP with the
// gateway, Chromium decodes 1280x720 frames, the API counts the viewer, and leaving the page ends the
// WHEP session (DELETE on unload).
func TestBrowserPlaysCameraOverWHEP(t *testing.T) {
	checkGoroutines(t)
	base := startStreetPlayback(t)
	b := browsertest.Start(t, browsertest.Options{Width: 1280, Height: 900})
	api := &http.Client{Timeout: 5 * time.Second}
	t.Cleanup(api.CloseIdleConnections)

	start := time.Now()
	if err := b.Navigate(base + "/"); err != nil {
		b.Fatalf("%v", err)
	}
	pb, tile, _ := expectPlaying(t, b, "street", 1280, 720)
	t.Logf("first decoded frame %v after navigation (%d frames decoded, player %s); tile %+v",
		time.Since(start).Round(time.Millisecond), pb.FramesDecoded, pb.State, tile)
	if tile.Badge != "streaming" {
		t.Errorf("badge says %q, want streaming", tile.Badge)
	}
	// The tile catches up with the API's viewer count on its next poll (every 2 s).
	if _, err := b.Poll(context.Background(), 6*time.Second,
		`return document.querySelector('[data-camera="street"] .viewers').textContent === '1';`); err != nil {
		b.Fatalf("tile never showed 1 viewer: %v", err)
	}
	// The tile shows what the browser measures itself: decoded fps and, with no capture time in this
	// browser, the jitter buffer delay (labelled as such).
	raw, err := b.Poll(context.Background(), 6*time.Second, `
const tile = document.querySelector('[data-camera="street"]');
const fps = tile.querySelector('.play-fps').textContent, lat = tile.querySelector('.latency').textContent;
return fps !== '–' && lat !== '–' ? {fps, latency: tile.querySelector('.latency-label').textContent + ' ' + lat} : null;`)
	if err != nil {
		b.Fatalf("tile shows no playback stats: %v", err)
	}
	t.Logf("tile playback stats: %s", raw)
	// Without an analytics section the alert feed says analytics is off (it learns why the socket failed).
	if _, err := b.Poll(context.Background(), 6*time.Second,
		`const a = window.sightline.alerts; return a.state === 'off' && document.getElementById('alerts-state').textContent === 'analytics off';`); err != nil {
		diag, _ := b.Exec(`return {state: window.sightline.alerts.state, detail: window.sightline.alerts.detail};`)
		b.Fatalf("alert feed does not say analytics off: %v (%s)", err, diag)
	}
	screenshot(t, b, "street-grid.png")

	// Clicking the tile's name opens it large without a reload and keeps its session; Back returns.
	if _, err := b.Exec(`window.__loaded = true; window.__pc = window.sightline.players.get('street').pc;
document.querySelector('[data-camera="street"] .tile-link').click();`); err != nil {
		b.Fatalf("%v", err)
	}
	for _, step := range []struct{ script, want string }{
		{``, "?camera=street"},
		{`history.back();`, ""},
	} {
		if step.script != "" {
			if _, err := b.Exec(step.script); err != nil {
				b.Fatalf("%v", err)
			}
		}
		if _, err := b.Poll(context.Background(), 5*time.Second, `
const [want] = arguments;
const single = document.getElementById('grid').classList.contains('single');
return location.search === want && single === (want !== '') && window.__loaded === true &&
  window.sightline.players.get('street').pc === window.__pc;`, step.want); err != nil {
			diag, _ := b.Exec(`return {search: location.search, single: document.getElementById('grid').className,
loaded: window.__loaded === true, samePC: window.sightline.players.get('street')?.pc === window.__pc};`)
			b.Fatalf("large view %q: %v (%s)", step.want, err, diag)
		}
	}

	cam := waitCamera(t, api, base, "street", 5*time.Second, "streaming with one viewer", func(c cameraView) bool {
		return c.Status.State == "streaming" && c.Viewers == 1
	})
	if cam.Status.LastError != "" {
		t.Errorf("streaming camera reports last_error %q", cam.Status.LastError)
	}

	// Leaving the page stops the player, which DELETEs its WHEP session.
	if err := b.Navigate("about:blank"); err != nil {
		b.Fatalf("%v", err)
	}
	waitCamera(t, api, base, "street", 10*time.Second, "left by its viewer", func(c cameraView) bool {
		return c.Viewers == 0
	})
}

// TestBrowserPlaysRTSPCameraFocused plays a camera pulled over RTSP (an in-process gortsplib server
// looping the asset) in the single-camera view (?camera=), and proves that a ?token= in the page URL
// goes out as "Authorization: Bearer" on the camera list and on every WHEP request. The page is served
// through a recorder around the gateway's own handler, so the test sees the headers the browser sent.
func TestBrowserPlaysRTSPCameraFocused(t *testing.T) {
	checkGoroutines(t)
	asset := testenv.Asset(t, "camera/cam_person_ccby_1280x720_25fps.h264")
	srv := rtsptest.StartServer(t, rtsptest.ServerConfig{AnnexBPath: asset})
	g, _ := startGateway(t, fmt.Sprintf(`
http:
  listen: 127.0.0.1:0
auth:
  tokens: [{token: test-token, role: viewer}]
webrtc:
  udpPort: 0
  loopbackOnly: true
cameras:
  - id: person
    url: %s
    transport: tcp
  - id: street
    url: rtsp://127.0.0.1:1/nothing-listens-here
`, srv.URL))
	auth := &authRecorder{next: g.Handler()}
	front := httptest.NewServer(auth)
	t.Cleanup(front.Close)
	b := browsertest.Start(t, browsertest.Options{Width: 1280, Height: 900})

	start := time.Now()
	if err := b.Navigate(front.URL + "/?camera=person&token=test-token"); err != nil {
		b.Fatalf("%v", err)
	}
	pb, tile, _ := expectPlaying(t, b, "person", 1280, 720)
	t.Logf("first decoded frame %v after navigation (%d frames decoded); tile %+v",
		time.Since(start).Round(time.Millisecond), pb.FramesDecoded, tile)

	var shown []string
	if err := b.Eval(&shown, `return [...document.querySelectorAll('[data-camera]')].map((e) => e.dataset.camera);`); err != nil {
		b.Fatalf("%v", err)
	}
	if len(shown) != 1 || shown[0] != "person" {
		t.Errorf("focused view shows tiles %v, want only person", shown)
	}
	screenshot(t, b, "person-focused.png")

	seen := auth.seen()
	for _, route := range []string{"GET /api/v1/cameras", "POST /whep/person"} {
		if got := seen[route]; got != "Bearer test-token" {
			t.Errorf("%s carried Authorization %q, want %q (all: %v)", route, got, "Bearer test-token", seen)
		}
	}
	if got := seen["GET /"]; got != "" {
		t.Errorf("page load carried Authorization %q; only fetches should", got)
	}
}

// authRecorder remembers the Authorization header of the last request per "METHOD /path".
type authRecorder struct {
	next http.Handler
	mu   sync.Mutex
	auth map[string]string
}

func (a *authRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	if a.auth == nil {
		a.auth = map[string]string{}
	}
	a.auth[r.Method+" "+r.URL.Path] = r.Header.Get("Authorization")
	a.mu.Unlock()
	a.next.ServeHTTP(w, r)
}

func (a *authRecorder) seen() map[string]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.auth)
}

// framesScript resolves to {frames, session} for camera arguments[0]'s player once its framesDecoded
// exceeds arguments[1], else to null.
const framesScript = `
const [id, min] = arguments;
const p = window.sightline && window.sightline.players.get(id);
if (!p || !p.pc) return null;
return p.pc.getStats().then((report) => {
  let frames = 0;
  report.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') frames = s.framesDecoded || 0; });
  return frames > min ? {frames, session: p.session} : null;
});`

type framesView struct {
	Frames  int    `json:"frames"`
	Session string `json:"session"`
}

// TestBrowserRecoversWhenCameraReturns kills a real GStreamer RTSP camera while the page plays it, and
// proves that the UI shows the outage honestly (badge leaves "streaming") and that video plays again,
// with no reload, once the camera is back.
func TestBrowserRecoversWhenCameraReturns(t *testing.T) {
	checkGoroutines(t)
	asset := testenv.Asset(t, "camera/cam_street_1280x720_25fps.mp4")
	cam := rtsptest.StartGStreamer(t, asset, 0, "tcp")
	_, base := startGateway(t, playbackConfig(`
  - id: gst
    url: %s
    transport: tcp
`, cam.URL))
	b := browsertest.Start(t, browsertest.Options{Width: 1280, Height: 900})
	api := &http.Client{Timeout: 5 * time.Second}
	t.Cleanup(api.CloseIdleConnections)

	if err := b.Navigate(base + "/"); err != nil {
		b.Fatalf("%v", err)
	}
	expectPlaying(t, b, "gst", 1280, 720)

	cam.Kill()
	waitCamera(t, api, base, "gst", 15*time.Second, "out of streaming after its server died", func(c cameraView) bool {
		return c.Status.State != "streaming"
	})
	raw, err := b.Poll(context.Background(), 6*time.Second,
		`const e = document.querySelector('[data-camera="gst"] .badge'); return e.dataset.state !== 'streaming' ? e.textContent : null;`)
	if err != nil {
		b.Fatalf("badge still says streaming while the camera is down: %v", err)
	}
	t.Logf("badge while the camera is down: %s", raw)
	var before framesView
	if err := b.Eval(&before, framesScript, "gst", -1); err != nil {
		b.Fatalf("%v", err)
	}

	back := time.Now()
	if err := cam.Restart(); err != nil {
		t.Fatalf("restart camera: %v", err)
	}
	waitCamera(t, api, base, "gst", 20*time.Second, "streaming again", func(c cameraView) bool {
		return c.Status.State == "streaming"
	})
	// One second of new frames (25) beyond what was decoded before the outage.
	raw, err = b.Poll(context.Background(), 15*time.Second, framesScript, "gst", before.Frames+25)
	if err != nil {
		diag, _ := b.Exec(diagScript, "gst")
		b.Fatalf("video did not resume after the camera came back (%d frames before): %v\npage: %s", before.Frames, err, diag)
	}
	var after framesView
	_ = json.Unmarshal(raw, &after)
	t.Logf("video resumed %v after the camera restarted: framesDecoded %d -> %d (WHEP session kept: %v)",
		time.Since(back).Round(time.Millisecond), before.Frames, after.Frames, before.Session == after.Session)
	if _, err := b.Poll(context.Background(), 6*time.Second,
		`return document.querySelector('[data-camera="gst"] .badge').dataset.state === 'streaming';`); err != nil {
		b.Fatalf("badge does not say streaming again: %v", err)
	}
}

// TestBrowserReconnectsWhenSessionEnds ends the page's WHEP session from outside (DELETE on its
// Location, as a restarting gateway or an operator would) and proves the player notices the dead
// PeerConnection, negotiates a new session on its own and plays again.
func TestBrowserReconnectsWhenSessionEnds(t *testing.T) {
	checkGoroutines(t)
	base := startStreetPlayback(t)
	b := browsertest.Start(t, browsertest.Options{Width: 1280, Height: 900})
	api := &http.Client{Timeout: 5 * time.Second}
	t.Cleanup(api.CloseIdleConnections)

	if err := b.Navigate(base + "/"); err != nil {
		b.Fatalf("%v", err)
	}
	expectPlaying(t, b, "street", 1280, 720)
	var first framesView
	if err := b.Eval(&first, framesScript, "street", -1); err != nil {
		b.Fatalf("%v", err)
	}
	req, _ := http.NewRequest(http.MethodDelete, first.Session, nil)
	res, err := api.Do(req)
	if err != nil {
		t.Fatalf("DELETE %s: %v", first.Session, err)
	}
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		t.Fatalf("DELETE %s: status %d", first.Session, res.StatusCode)
	}

	ended := time.Now()
	raw, err := b.Poll(context.Background(), 40*time.Second, `
const [id, old] = arguments;
const p = window.sightline.players.get(id);
if (!p || !p.pc || !p.session || p.session === old || p.state !== 'playing') return null;
return p.pc.getStats().then((r) => {
  let f = 0;
  r.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') f = s.framesDecoded || 0; });
  return f > 0 && p.video.videoWidth === 1280 ? {frames: f, session: p.session} : null;
});`, "street", first.Session)
	if err != nil {
		diag, _ := b.Exec(diagScript, "street")
		b.Fatalf("player did not come back on a new session: %v\npage: %s", err, diag)
	}
	t.Logf("player playing again on a new session %v after its session was deleted: %s",
		time.Since(ended).Round(time.Millisecond), raw)
	waitCamera(t, api, base, "street", 10*time.Second, "watched by exactly one viewer", func(c cameraView) bool {
		return c.Viewers == 1
	})
}

// switchScript resolves once camera arguments[0]'s player has renegotiated (a new RTCPeerConnection
// after the click) as variant arguments[1] and decoded a frame on it, else null.
const switchScript = `
const [id, variant] = arguments;
const p = window.sightline && window.sightline.players.get(id);
if (!p || !p.pc || p.pc === window.__switchedFrom || p.variant !== variant) return null;
return p.pc.getStats().then((report) => {
  let frames = 0;
  report.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') frames = s.framesDecoded || 0; });
  const tile = document.querySelector('[data-camera="' + id + '"]');
  return frames > 0 && p.video.videoWidth > 0 ? {frames, variant: tile.dataset.variant,
    pressed: tile.querySelector('.variant').getAttribute('aria-pressed'), width: p.video.videoWidth} : null;
});`

// The tile's raw/annotated switch renegotiates WHEP to /whep/{id}/annotated and back without reloading
// the page: each time a new PeerConnection decodes frames of the other variant.
func TestBrowserSwitchesToAnnotated(t *testing.T) {
	checkGoroutines(t)
	asset := testenv.Asset(t, "camera/cam_street_1280x720_25fps.h264")
	_, base := startGateway(t, fmt.Sprintf(`
http: {listen: 127.0.0.1:0}
auth: {enabled: false}
webrtc: {udpPort: 0, loopbackOnly: true}
analytics: {fps: 5, model: /nonexistent/model.onnx}
cameras:
  - id: street
    url: file://%s
    annotatedWarm: true
    rules:
      - {id: walkway, type: zone, polygon: [[0.1,0.5],[0.9,0.5],[0.9,1],[0.1,1]]}
`, asset))
	b := browsertest.Start(t, browsertest.Options{Width: 1280, Height: 900})
	if err := b.Navigate(base + "/"); err != nil {
		b.Fatalf("%v", err)
	}
	expectPlaying(t, b, "street", 1280, 720)
	if _, err := b.Exec(`window.__loaded = true;`); err != nil {
		b.Fatalf("%v", err)
	}
	for _, variant := range []string{"annotated", "raw"} {
		if _, err := b.Exec(`const p = window.sightline.players.get('street'); window.__switchedFrom = p.pc;
document.querySelector('[data-camera="street"] .variant').click();`); err != nil {
			b.Fatalf("%v", err)
		}
		clicked := time.Now()
		raw, err := b.Poll(context.Background(), 15*time.Second, switchScript, "street", variant)
		if err != nil {
			diag, _ := b.Exec(diagScript, "street")
			b.Fatalf("switch to %s never played: %v\npage: %s", variant, err, diag)
		}
		var got struct {
			Frames  int    `json:"frames"`
			Variant string `json:"variant"`
			Pressed string `json:"pressed"`
			Width   int    `json:"width"`
		}
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatal(err)
		}
		if got.Variant != variant || got.Pressed != fmt.Sprint(variant == "annotated") || got.Width != 1280 {
			t.Fatalf("after switching to %s: %s", variant, raw)
		}
		t.Logf("switched to %s: first decoded frame within %s of the click", variant, time.Since(clicked).Round(10*time.Millisecond))
	}
	var loaded bool
	if err := b.Eval(&loaded, `return window.__loaded === true;`); err != nil || !loaded {
		b.Fatalf("the page reloaded while switching (%v)", err)
	}
	screenshot(t, b, "street-switch.png")
}

// audioFirstScript (async) is a WHEP player as many third-party ones are (WHEP.md): it offers an audio
// m-line before the video one, POSTs to /whep/arguments[0], and resolves to {frames, remoteType,
// audioRejected} once a frame is decoded (or after 10 s): remoteType is the candidate type of the
// server's side of the selected ICE pair.
const audioFirstScript = negotiateJS + `
const [id, done] = arguments;
(async () => {
  const pc = new RTCPeerConnection();
  pc.addTransceiver('audio', {direction: 'recvonly'});
  pc.addTransceiver('video', {direction: 'recvonly'});
  const {location: session, answer} = await negotiate(pc, '/whep/' + encodeURIComponent(id));
  const start = performance.now();
  let frames = 0, remoteType = '';
  while (performance.now() - start < 10000) {
    const stats = await pc.getStats();
    let pairId = '';
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') frames = s.framesDecoded || 0;
      if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
    });
    const pair = pairId && stats.get(pairId);
    const remote = pair && stats.get(pair.remoteCandidateId);
    remoteType = remote ? remote.candidateType : '';
    if (frames > 0 && remoteType) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  pc.close();
  await fetch(session, {method: 'DELETE'});
  return {frames, remoteType, audioRejected: /^m=audio 0 /m.test(answer)};
})().then(done, (e) => done({error: String(e)}));`

// A WHEP player that offers audio first (the server answers it rejected) plays, and reaches the server
// through the host candidate of the answer, not a peer-reflexive one: the answer carries its candidates
// under the video m-line, since a browser ignores those of a rejected m-line.
func TestBrowserAudioFirstWHEPPlayer(t *testing.T) {
	checkGoroutines(t)
	base := startStreetPlayback(t)
	b := browsertest.Start(t, browsertest.Options{Width: 640, Height: 480})
	if err := b.Navigate(base + "/healthz"); err != nil { // same origin, no UI player of its own
		b.Fatalf("%v", err)
	}
	var got struct {
		Frames        int    `json:"frames"`
		RemoteType    string `json:"remoteType"`
		AudioRejected bool   `json:"audioRejected"`
		Error         string `json:"error"`
	}
	raw, err := b.ExecAsync(audioFirstScript, "street")
	if err == nil {
		err = json.Unmarshal(raw, &got)
	}
	if err != nil || got.Error != "" {
		b.Fatalf("audio-first player: %v %s", err, raw)
	}
	t.Logf("audio-first player: %+v", got)
	if got.Frames == 0 || !got.AudioRejected || got.RemoteType != "host" {
		t.Fatalf("audio-first player: %d frames decoded, audio rejected %v, server candidate %q (want frames, rejected audio, host)",
			got.Frames, got.AudioRejected, got.RemoteType)
	}
}

// whipPublishScript (async) publishes from the page as a browser WHIP client does: an animated canvas
// (arguments[1] x arguments[2]) as video and a WebAudio tone as audio, the audio m-line first, to
// /whip/arguments[0]. It resolves to {location, audioRejected, codec} once the publisher's ICE connects,
// and keeps publishing (window.__whip holds the PeerConnection).
const whipPublishScript = negotiateJS + `
const [id, w, h, done] = arguments;
(async () => {
  const canvas = document.createElement('canvas');
  canvas.width = w; canvas.height = h;
  document.body.append(canvas);
  const ctx = canvas.getContext('2d');
  let n = 0;
  setInterval(() => {
    n++;
    ctx.fillStyle = 'hsl(' + (n * 7 % 360) + ', 70%, 50%)';
    ctx.fillRect(0, 0, w, h);
    ctx.fillStyle = '#fff';
    ctx.fillRect((n * 8) % w, h / 3, 40, 40);
  }, 40);
  const audio = new AudioContext();
  const osc = audio.createOscillator();
  const sink = audio.createMediaStreamDestination();
  osc.connect(sink);
  osc.start();
  const pc = new RTCPeerConnection();
  window.__whip = pc;
  pc.addTransceiver(sink.stream.getAudioTracks()[0], {direction: 'sendonly'});
  pc.addTransceiver(canvas.captureStream(25).getVideoTracks()[0], {direction: 'sendonly'});
  const {location, answer} = await negotiate(pc, '/whip/' + encodeURIComponent(id));
  const start = performance.now();
  while (pc.connectionState !== 'connected' && performance.now() - start < 10000) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const codec = (answer.match(/a=rtpmap:\d+ ([A-Za-z0-9]+)\/90000/) || [])[1] || '';
  return {location, state: pc.connectionState, codec, audioRejected: /^m=audio 0 /m.test(answer)};
})().then(done, (e) => done({error: String(e)}));`

// whepWatchScript (async) is a bare WHEP viewer of camera arguments[0] in the page: it resolves to
// {frames, width, height} once it decoded a few frames (or after 10 s), then leaves.
const whepWatchScript = negotiateJS + `
const [id, done] = arguments;
(async () => {
  const pc = new RTCPeerConnection();
  pc.addTransceiver('video', {direction: 'recvonly'});
  const {location: session} = await negotiate(pc, '/whep/' + encodeURIComponent(id));
  const start = performance.now();
  let out = {frames: 0, width: 0, height: 0};
  while (performance.now() - start < 10000) {
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        out = {frames: s.framesDecoded || 0, width: s.frameWidth || 0, height: s.frameHeight || 0};
      }
    });
    if (out.frames >= 10) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  pc.close();
  await fetch(session, {method: 'DELETE'});
  return out;
})().then(done, (e) => done({error: String(e)}));`

// Chromium publishes an audio tone (offered first, answered rejected) and a canvas (H.264, which the
// answer picks over the VP8 the browser lists first) over WHIP into a whip: camera; the camera streams
// with the publisher's address in its status, a WHEP viewer in the same browser decodes the canvas at
// its size, and the publisher's DELETE puts the camera back to waiting.
func TestBrowserPublishesOverWHIP(t *testing.T) {
	checkGoroutines(t)
	_, base := startGateway(t, playbackConfig(`
  - {id: studio, url: "whip:"}
`))
	api := &http.Client{Timeout: 5 * time.Second}
	t.Cleanup(api.CloseIdleConnections)
	waitCamera(t, api, base, "studio", 5*time.Second, "waiting for a publisher", func(c cameraView) bool {
		return c.Status.State == "waiting"
	})
	b := browsertest.Start(t, browsertest.Options{Width: 800, Height: 600})
	// The UI's tile says it waits for a publisher.
	if err := b.Navigate(base + "/"); err != nil {
		b.Fatalf("%v", err)
	}
	if _, err := b.Poll(context.Background(), 5*time.Second, `
const tile = document.querySelector('[data-camera="studio"]');
return tile && tile.querySelector('.badge').dataset.kind === 'waiting' &&
  tile.textContent.includes('waiting for a WHIP publisher');`); err != nil {
		b.Fatalf("tile does not show a waiting whip: camera: %v", err)
	}
	if err := b.Navigate(base + "/healthz"); err != nil {
		b.Fatalf("%v", err)
	}
	var pub struct {
		Location      string `json:"location"`
		State         string `json:"state"`
		Codec         string `json:"codec"`
		AudioRejected bool   `json:"audioRejected"`
		Error         string `json:"error"`
	}
	raw, err := b.ExecAsync(whipPublishScript, "studio", 640, 360)
	if err == nil {
		err = json.Unmarshal(raw, &pub)
	}
	if err != nil || pub.Error != "" || pub.State != "connected" || pub.Codec != "H264" || !pub.AudioRejected {
		b.Fatalf("WHIP publisher: %v %s", err, raw)
	}
	waitCamera(t, api, base, "studio", 10*time.Second, "streaming from the page's address", func(c cameraView) bool {
		return c.Status.State == "streaming" && strings.HasPrefix(c.Status.Publisher, "127.0.0.1:")
	})
	var view struct {
		Frames int    `json:"frames"`
		Width  int    `json:"width"`
		Height int    `json:"height"`
		Error  string `json:"error"`
	}
	raw, err = b.ExecAsync(whepWatchScript, "studio")
	if err == nil {
		err = json.Unmarshal(raw, &view)
	}
	if err != nil || view.Error != "" || view.Frames < 10 || view.Width != 640 || view.Height != 360 {
		b.Fatalf("WHEP viewer of the published camera: %v %s", err, raw)
	}
	t.Logf("browser publisher %+v; viewer decoded %d frames of %dx%d", pub, view.Frames, view.Width, view.Height)

	if _, err := b.ExecAsync(`const [loc, done] = arguments;
fetch(loc, {method: 'DELETE'}).then((r) => { window.__whip.close(); done(r.status); }, (e) => done(String(e)));`, pub.Location); err != nil {
		b.Fatalf("DELETE: %v", err)
	}
	waitCamera(t, api, base, "studio", 10*time.Second, "waiting again after the publisher left", func(c cameraView) bool {
		return c.Status.State == "waiting"
	})
}

// The publish page sends Chromium's (synthetic) camera to a whip: camera: it lists only the whip:
// cameras, reaches "publishing", the camera streams a picture the server decodes (frame.jpg), and Stop
// ends the session so the camera waits again.
func TestBrowserPublishPage(t *testing.T) {
	checkGoroutines(t)
	_, base := startGateway(t, playbackConfig(`
  - {id: studio, url: "whip:"}
  - {id: pulled, url: "rtsp://127.0.0.1:1/x"}
`))
	api := &http.Client{Timeout: 5 * time.Second}
	t.Cleanup(api.CloseIdleConnections)
	b := browsertest.Start(t, browsertest.Options{Width: 1000, Height: 800, FakeMedia: true})
	if err := b.Navigate(base + "/publish.html?camera=studio"); err != nil {
		b.Fatalf("%v", err)
	}
	if _, err := b.Poll(context.Background(), 5*time.Second, `
const opts = [...document.getElementById('camera').options].map((o) => o.value);
return opts.length === 1 && opts[0] === 'studio' && !document.getElementById('start').disabled;`); err != nil {
		b.Fatalf("the page does not offer exactly the whip: camera: %v", err)
	}
	if _, err := b.Exec(`document.getElementById('start').click();`); err != nil {
		b.Fatalf("%v", err)
	}
	if _, err := b.Poll(context.Background(), 15*time.Second, `return window.sightlinePublish.state === 'publishing';`); err != nil {
		diag, _ := b.Exec(`return {state: window.sightlinePublish.state, error: window.sightlinePublish.error};`)
		b.Fatalf("publish page never publishing: %v (%s)", err, diag)
	}
	waitCamera(t, api, base, "studio", 10*time.Second, "streaming from the page", func(c cameraView) bool {
		return c.Status.State == "streaming" && strings.HasPrefix(c.Status.Publisher, "127.0.0.1:")
	})
	// The server decodes what the browser sends (libavcodec behind frame.jpg).
	res, err := api.Get(base + "/api/v1/cameras/studio/frame.jpg")
	if err != nil {
		t.Fatal(err)
	}
	jpeg, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || len(jpeg) < 1000 || jpeg[0] != 0xFF || jpeg[1] != 0xD8 {
		t.Fatalf("frame.jpg of the published camera: %d, %d bytes", res.StatusCode, len(jpeg))
	}
	stats, err := b.Poll(context.Background(), 5*time.Second, `
const v = ['stat-size', 'stat-fps', 'stat-bitrate', 'stat-encoder'].map((id) => document.getElementById(id).textContent);
return v.every((x) => x !== '–') ? v : null;`)
	if err != nil {
		b.Fatalf("the page shows no sending stats: %v", err)
	}
	t.Logf("publishing; page stats %s; frame.jpg %d bytes", stats, len(jpeg))

	if _, err := b.Exec(`document.getElementById('stop').click();`); err != nil {
		b.Fatalf("%v", err)
	}
	if _, err := b.Poll(context.Background(), 10*time.Second, `return window.sightlinePublish.state === 'idle';`); err != nil {
		b.Fatalf("Stop did not return the page to idle: %v", err)
	}
	waitCamera(t, api, base, "studio", 10*time.Second, "waiting after Stop", func(c cameraView) bool {
		return c.Status.State == "waiting"
	})
}
