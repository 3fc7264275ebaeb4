package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"sightline/internal/browsertest"
	"sightline/internal/rtsptest"
	"sightline/internal/testenv"
)

// walkway is the zone rule of `make run`'s demo camera (configs/sightline.yaml): the lower half of the
// street clip, where people walk.
const walkway = `{id: walkway, type: zone, polygon: [[0.1,0.5],[0.9,0.5],[0.9,1],[0.1,1]], classes: [person]}`

// analyticsConfig is playbackConfig with analytics on (the real model and ONNX Runtime at 5 fps) and
// the given auth section.
func analyticsConfig(t *testing.T, auth, cameras string, args ...any) string {
	model := testenv.Asset(t, "models/yolox_nano.onnx")
	lib := testenv.ONNXLibrary(t)
	return fmt.Sprintf(`
http: {listen: 127.0.0.1:0}
auth: %s
webrtc: {udpPort: 0, loopbackOnly: true}
analytics: {fps: 5, model: '%s', onnxLibrary: '%s'}
cameras:
`, auth, model, lib) + fmt.Sprintf(cameras, args...)
}

// bearer adds "Authorization: Bearer <token>" to every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// overlayScript finds, in the tile's last overlay drawing, a box whose left edge midpoint and centre are
// covered by no other box or label (a person's if it can), and reads both pixels back from the canvas.
// It resolves to null until such a box has been drawn and arguments[1] frames were painted with boxes.
const overlayScript = `
const [id, minFrames] = arguments;
const tile = window.sightline.tiles.get(id);
const p = window.sightline.players.get(id);
const d = tile && tile.drawn;
if (!d || !p || d.boxes.length === 0 || p.matched + p.fallback < minFrames) return null;
const within = (x, y, r) => x >= r.x0 && x < r.x1 && y >= r.y0 && y < r.y1;
const rect = (l) => ({x0: l.x, y0: l.y, x1: l.x + l.w, y1: l.y + l.h});
const persons = d.boxes.filter((b) => b.text.startsWith('person '));
for (const b of persons.concat(d.boxes.filter((b) => !persons.includes(b)))) {
  const edge = [b.x0 + Math.floor(b.t / 2), Math.round((b.y0 + b.y1) / 2)];
  const inside = [Math.round((b.x0 + b.x1) / 2), Math.round((b.y0 + b.y1) / 2)];
  const covered = (pt) => d.boxes.some((o) => (o !== b && within(pt[0], pt[1], o)) || within(pt[0], pt[1], rect(o.label)));
  if (covered(edge) || covered(inside)) continue;
  const ctx = tile.refs.overlay.getContext('2d');
  const px = (pt) => Array.from(ctx.getImageData(pt[0], pt[1], 1, 1).data);
  const c = tile.refs.overlay.getBoundingClientRect();
  const v = tile.refs.video.getBoundingClientRect();
  return {edge: px(edge), inside: px(inside), at: edge, center: inside, color: b.color, text: b.text,
    box: [b.x0, b.y0, b.x1, b.y1], content: d.content, canvas: [d.width, d.height],
    canvasRect: [c.x, c.y, c.width, c.height], videoRect: [v.x, v.y, v.width, v.height],
    video: [p.video.videoWidth, p.video.videoHeight], dpr: window.devicePixelRatio,
    rtp: d.rtp, metaRtp: d.metaRtp, ahead: d.ahead, matched: p.matched, fallback: p.fallback, metas: p.metaCount};
}
return null;`

type overlayRead struct {
	Edge       []int              `json:"edge"`
	Inside     []int              `json:"inside"`
	At         []int              `json:"at"`
	Center     []int              `json:"center"`
	Color      []int              `json:"color"`
	Text       string             `json:"text"`
	Box        []int              `json:"box"`
	Content    map[string]float64 `json:"content"`
	Canvas     []int              `json:"canvas"`
	CanvasRect []float64          `json:"canvasRect"`
	VideoRect  []float64          `json:"videoRect"`
	Video      []int              `json:"video"`
	DPR        float64            `json:"dpr"`
	RTP        uint32             `json:"rtp"`
	MetaRTP    uint32             `json:"metaRtp"`
	Ahead      float64            `json:"ahead"`
	Matched    int                `json:"matched"`
	Fallback   int                `json:"fallback"`
	Metas      int                `json:"metas"`
}

// On the raw track the page draws the model's boxes itself, on a canvas laid exactly over the video:
// a pixel read back from a drawn box's edge has the class colour, a pixel well inside the box is
// transparent (the video shows through), and the picture's letterboxing is respected. Switching the
// tile to the annotated track (boxes burned in) leaves the canvas empty.
func TestBrowserDrawsBoxesOverRawVideo(t *testing.T) {
	checkGoroutines(t)
	clip := testenv.Asset(t, "camera/cam_street_1280x720_25fps.h264")
	_, base := startGateway(t, analyticsConfig(t, "{enabled: false}", `
  - id: street
    url: file://%s
`, clip))
	// A window taller than 16:9 so that the large view letterboxes the picture inside the video element.
	b := browsertest.Start(t, browsertest.Options{Width: 1280, Height: 1000})
	if err := b.Navigate(base + "/?camera=street"); err != nil {
		b.Fatalf("%v", err)
	}
	expectPlaying(t, b, "street", 1280, 720)

	raw, err := b.Poll(context.Background(), 30*time.Second, overlayScript, "street", 50)
	if err != nil {
		diag, _ := b.Exec(diagScript, "street")
		b.Fatalf("no box drawn on the overlay: %v\npage: %s", err, diag)
	}
	var got overlayRead
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	t.Logf("overlay: box %v %q, edge pixel %v at %v, inside pixel %v at %v; canvas %v, picture %v; frame rtp %d drawn with meta rtp %d, %.3f s earlier (frames matched exactly %d, with the latest meta %d; %d metas)",
		got.Box, got.Text, got.Edge, got.At, got.Inside, got.Center, got.Canvas, got.Content,
		got.RTP, got.MetaRTP, got.Ahead, got.Matched, got.Fallback, got.Metas)
	if len(got.Edge) != 4 || got.Edge[0] != got.Color[0] || got.Edge[1] != got.Color[1] || got.Edge[2] != got.Color[2] || got.Edge[3] != 255 {
		t.Errorf("edge pixel %v, want the opaque class colour %v", got.Edge, got.Color)
	}
	if len(got.Inside) != 4 || got.Inside[3] != 0 {
		t.Errorf("pixel inside the box %v, want transparent", got.Inside)
	}
	if !strings.HasPrefix(got.Text, "person") {
		t.Logf("the box read back is a %q, not a person", got.Text)
	}
	// The canvas covers the video element exactly, and the boxes stay inside the letterboxed picture.
	for i := range got.CanvasRect {
		if d := got.CanvasRect[i] - got.VideoRect[i]; d > 0.5 || d < -0.5 {
			t.Fatalf("canvas at %v, video element at %v", got.CanvasRect, got.VideoRect)
		}
	}
	c := got.Content
	wantH := c["w"] * 720 / 1280
	if d := c["h"] - wantH; d > 1 || d < -1 {
		t.Errorf("picture %v inside the canvas is not 16:9", c)
	}
	if c["y"] <= 1 && c["x"] <= 1 {
		t.Errorf("picture %v fills canvas %v: expected letterboxing in a %dx%d window", c, got.Canvas, 1280, 1000)
	}
	if float64(got.Box[0]) < c["x"]-1 || float64(got.Box[1]) < c["y"]-1 || float64(got.Box[2]) > c["x"]+c["w"]+1 || float64(got.Box[3]) > c["y"]+c["h"]+1 {
		t.Errorf("box %v outside the picture %v", got.Box, c)
	}
	screenshot(t, b, "street-overlay.png")

	// The boxes toggle hides the overlay; on again, it draws again.
	if _, err := b.Exec(`document.getElementById('boxes').click();`); err != nil {
		b.Fatalf("%v", err)
	}
	if _, err := b.Poll(context.Background(), 5*time.Second, `return window.sightline.tiles.get('street').drawn === null;`); err != nil {
		b.Fatalf("overlay still drawn with boxes off: %v", err)
	}
	if _, err := b.Exec(`document.getElementById('boxes').click();`); err != nil {
		b.Fatalf("%v", err)
	}
	if _, err := b.Poll(context.Background(), 10*time.Second, overlayScript, "street", 0); err != nil {
		b.Fatalf("no box drawn after the toggle is back on: %v", err)
	}

	// The annotated track has its boxes burned in: the canvas stays empty there.
	if _, err := b.Exec(`window.__switchedFrom = window.sightline.players.get('street').pc;
document.querySelector('[data-camera="street"] .variant').click();`); err != nil {
		b.Fatalf("%v", err)
	}
	if _, err := b.Poll(context.Background(), 15*time.Second, switchScript, "street", "annotated"); err != nil {
		diag, _ := b.Exec(diagScript, "street")
		b.Fatalf("switch to annotated never played: %v\npage: %s", err, diag)
	}
	time.Sleep(500 * time.Millisecond) // frames paint on the annotated track meanwhile
	var empty struct {
		Drawn  bool `json:"drawn"`
		Opaque int  `json:"opaque"`
		Metas  int  `json:"metas"`
	}
	if err := b.Eval(&empty, `
const tile = window.sightline.tiles.get('street');
const c = tile.refs.overlay;
let opaque = 0;
if (c.width > 0 && c.height > 0) {
  const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  for (let i = 3; i < px.length; i += 4) if (px[i] !== 0) opaque++;
}
return {drawn: tile.drawn !== null, opaque, metas: window.sightline.players.get('street').metaCount};`); err != nil {
		b.Fatalf("%v", err)
	}
	if empty.Drawn || empty.Opaque != 0 {
		t.Errorf("annotated track: overlay drawn %v with %d non-transparent pixels, want an empty canvas", empty.Drawn, empty.Opaque)
	}
	t.Logf("annotated track: overlay empty; %d meta messages on its data channel", empty.Metas)
}

// timingScript resolves to the page's timing of camera arguments[0]'s current WHEP session once it has
// decoded a frame of variant arguments[1] (times are performance.now() ms in the page).
const timingScript = `
const [id, variant] = arguments;
const p = window.sightline && window.sightline.players.get(id);
const t = p && p.timing;
if (!t || t.variant !== variant || !t.firstDecoded) return null;
return {post: t.post, answer: t.answer, firstDecoded: t.firstDecoded, variant: t.variant};`

// joinScript (async) is a second, bare WHEP viewer of camera arguments[0]'s annotated track in the
// page (Bearer arguments[1]): it resolves to {answer, first}, ms from just before its POST to the answer and to its first
// decoded frame (getStats every 20 ms), then leaves (DELETE).
const joinScript = negotiateJS + `
const [id, token, done] = arguments;
const auth = {Authorization: 'Bearer ' + token};
(async () => {
  const pc = new RTCPeerConnection();
  pc.addTransceiver('video', {direction: 'recvonly'});
  pc.createDataChannel('meta');
  const video = document.createElement('video');
  video.muted = true;
  video.style.cssText = 'position: fixed; right: 0; bottom: 0; width: 160px; height: 90px;';
  document.body.append(video); // rendered like the page's own player
  pc.ontrack = (ev) => { video.srcObject = new MediaStream([ev.track]); video.play().catch(() => {}); };
  const {location: session, posted: post} = await negotiate(pc, '/whep/' + encodeURIComponent(id) + '/annotated', auth);
  const answer = performance.now() - post;
  let first = -1;
  while (performance.now() - post < 10000) {
    const r = await pc.getStats();
    let f = 0;
    r.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') f = s.framesDecoded || 0; });
    if (f > 0) { first = performance.now() - post; break; }
    await new Promise((r) => setTimeout(r, 20));
  }
  pc.close();
  video.srcObject = null;
  video.remove();
  await fetch(session, {method: 'DELETE', headers: auth});
  return {answer, first};
})().then(done, (e) => done({error: String(e)}));`

// personMetaScript resolves to a summary of the meta messages the page holds for camera arguments[0]
// once one of them lists a person.
const personMetaScript = `
const p = window.sightline.players.get(arguments[0]);
if (!p) return null;
const metas = [...p.metas.values()];
const m = metas.find((m) => m.objects.some((o) => o.label === 'person'));
if (!m) return null;
const o = m.objects.find((o) => o.label === 'person');
return {count: p.metaCount, camera: m.camera, rtp: m.rtp, inferenceMs: m.inferenceMs, person: o,
  capturedAt: m.capturedAt, objects: m.objects.length};`

// alertEvent is the part of a /ws/alerts message the test reads.
type alertEvent struct {
	Type     string `json:"type"`
	Camera   string `json:"camera"`
	Rule     string `json:"rule"`
	Kind     string `json:"kind"`
	Label    string `json:"label"`
	ObjectID int64  `json:"objectId"`
	Snapshot string `json:"snapshot"`
}

// The end-to-end test. The street clip is served by an independent RTSP server (GStreamer's),
// the gateway analyses it with the real model and has the walkway zone rule of `make run`'s demo. In
// headless Chromium the page plays the annotated track (its time from just before the WHEP POST to the
// first decoded frame is measured in the page), `meta` messages with person objects arrive on the
// session's data channel, and a Go /ws/alerts subscriber receives the walkway event, which the page's
// alert feed lists too.
func TestBrowserAnnotatedTrackMetaAndAlerts(t *testing.T) {
	checkGoroutines(t)
	mp4 := testenv.Asset(t, "camera/cam_street_1280x720_25fps.mp4")
	cam := rtsptest.StartGStreamer(t, mp4, 0, "tcp")
	// Auth on: the page passes its ?token= on as a Bearer header (fetch), as the WebSocket subprotocol
	// sightline.token.<token> (alert feed) and as ?token= on the snapshot <img>.
	const token = "e2e-viewer-token"
	g, base := startGateway(t, analyticsConfig(t, "{tokens: [{token: "+token+", role: viewer}]}", `
  - id: street
    url: %s
    transport: tcp
    readTimeout: 2s
    rules:
      - %s
`, cam.URL, walkway))

	// The Go subscriber listens from the start; its messages go to events until the test ends.
	ctx, cancel := context.WithCancel(context.Background())
	ws, res, err := websocket.Dial(ctx, "ws://"+g.HTTPAddr()+"/ws/alerts?camera=street",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if err != nil {
		cancel()
		t.Fatalf("dial /ws/alerts: %v", err)
	}
	if res != nil && res.Body != nil {
		res.Body.Close()
	}
	events := make(chan alertEvent, 64)
	readDone := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		ws.CloseNow()
		<-readDone
	})
	go func() {
		defer close(readDone)
		for {
			_, data, err := ws.Read(ctx)
			if err != nil {
				return
			}
			var ev alertEvent
			if json.Unmarshal(data, &ev) != nil {
				t.Errorf("alert is not JSON: %s", data)
				continue
			}
			select {
			case events <- ev:
			default:
			}
		}
	}()
	subscribed := time.Now()

	b := browsertest.Start(t, browsertest.Options{Width: 1280, Height: 900})
	if err := b.Navigate(base + "/?variant=annotated&token=" + token); err != nil {
		b.Fatalf("%v", err)
	}
	raw, err := b.Poll(context.Background(), 20*time.Second, timingScript, "street", "annotated")
	if err != nil {
		diag, _ := b.Exec(diagScript, "street")
		b.Fatalf("annotated track never decoded a frame: %v\npage: %s", err, diag)
	}
	var tm struct {
		Post, Answer, FirstDecoded float64
	}
	if err := json.Unmarshal(raw, &tm); err != nil {
		t.Fatal(err)
	}
	firstFrame := time.Duration((tm.FirstDecoded - tm.Post) * float64(time.Millisecond))
	t.Logf("annotated track: first decoded frame %v after the WHEP POST was sent (answer after %v; getStats polled every 20 ms)",
		firstFrame.Round(time.Millisecond), time.Duration((tm.Answer-tm.Post)*float64(time.Millisecond)).Round(time.Millisecond))
	// The issue asks for 1 s; a loaded 2-core CI machine gets a generous bound (the figure is logged).
	if firstFrame > 5*time.Second {
		t.Errorf("annotated track took %v from the WHEP POST to its first decoded frame, want well under 5 s (1 s on a quiet machine)", firstFrame)
	}
	expectPlaying(t, b, "street", 1280, 720)

	// More viewers joining the running annotated track (the annotator answers each with an IDR).
	var joins []time.Duration
	for i := 0; i < 3; i++ {
		var j struct {
			Answer float64 `json:"answer"`
			First  float64 `json:"first"`
			Error  string  `json:"error"`
		}
		raw, err := b.ExecAsync(joinScript, "street", token)
		if err == nil {
			err = json.Unmarshal(raw, &j)
		}
		if err != nil || j.Error != "" || j.First < 0 {
			b.Fatalf("second annotated viewer: %v %s", err, raw)
		}
		joins = append(joins, time.Duration(j.First*float64(time.Millisecond)).Round(time.Millisecond))
	}
	t.Logf("annotated track joined while running: first decoded frame %v after the WHEP POST", joins)
	for _, d := range joins {
		if d > 5*time.Second {
			t.Errorf("a viewer joining the running annotated track waited %v for its first frame", d)
		}
	}

	raw, err = b.Poll(context.Background(), 20*time.Second, personMetaScript, "street")
	if err != nil {
		diag, _ := b.Exec(diagScript, "street")
		b.Fatalf("no meta message with a person arrived on the data channel: %v\npage: %s", err, diag)
	}
	var meta struct {
		Count  int    `json:"count"`
		Camera string `json:"camera"`
		Person struct {
			Label string     `json:"label"`
			Score float64    `json:"score"`
			Box   [4]float64 `json:"box"`
		} `json:"person"`
	}
	if err := json.Unmarshal(raw, &meta); err != nil {
		t.Fatal(err)
	}
	t.Logf("meta on the annotated session's data channel: %s", raw)
	if meta.Camera != "street" || meta.Person.Score <= 0 || meta.Person.Box[2] <= 0 || meta.Person.Box[3] <= 0 {
		t.Errorf("meta %s", raw)
	}

	var ev alertEvent
	select {
	case ev = <-events:
	case <-time.After(30 * time.Second):
		t.Fatalf("the /ws/alerts subscriber received no event within 30 s")
	}
	t.Logf("/ws/alerts event %v after subscribing: %+v", time.Since(subscribed).Round(time.Millisecond), ev)
	if ev.Type != "event" || ev.Camera != "street" || ev.Rule != "walkway" || ev.Label != "person" {
		t.Errorf("event %+v, want a walkway event for a person on camera street", ev)
	}

	// The page's alert feed lists the events too, newest first, and the snapshot thumbnail loads (through
	// the auth guard, with ?token=).
	raw, err = b.Poll(context.Background(), 10*time.Second, `
const feed = window.sightline.alerts;
const li = document.querySelector('#alert-list .alert');
if (!feed || feed.state !== 'live' || !li) return null;
const img = li.querySelector('.alert-snap');
const snap = feed.items[0].snapshot;
if (snap && !(img.complete && img.naturalWidth > 0)) return null;
return {state: feed.state, items: feed.items.length, text: li.innerText, snapshot: snap || '', width: img.naturalWidth};`)
	if err != nil {
		diag, _ := b.Exec(`return {state: window.sightline.alerts.state, detail: window.sightline.alerts.detail,
items: window.sightline.alerts.items.slice(0, 2)};`)
		b.Fatalf("the page's alert feed shows no event: %v\nfeed: %s", err, diag)
	}
	t.Logf("page alert feed: %s", raw)
	if ev.Snapshot == "" {
		t.Errorf("event %+v names no snapshot", ev)
	}
	screenshot(t, b, "street-annotated-alerts.png")

	// Clicking an alert opens its camera large, in place: same page, same session.
	raw, err = b.Exec(`window.__loaded = true; window.__pc = window.sightline.players.get('street').pc;
document.querySelector('#alert-list .alert-open').click();
return {single: document.getElementById('grid').classList.contains('single'),
  camera: new URLSearchParams(location.search).get('camera')};`)
	if err != nil {
		b.Fatalf("%v", err)
	}
	var focused struct {
		Single bool   `json:"single"`
		Camera string `json:"camera"`
	}
	_ = json.Unmarshal(raw, &focused)
	if !focused.Single || focused.Camera != "street" {
		t.Errorf("after clicking the alert: %s, want the large view of street", raw)
	}
	var same bool
	if err := b.Eval(&same, `return window.__loaded === true && window.sightline.players.get('street').pc === window.__pc;`); err != nil || !same {
		t.Errorf("the page reloaded or the player reconnected when the alert opened its camera (%v)", err)
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	api := &http.Client{Timeout: 5 * time.Second, Transport: bearer{token, tr}}
	c := waitCamera(t, api, base, "street", 5*time.Second, "watched", func(c cameraView) bool { return c.Viewers == 1 })
	t.Logf("camera status: %+v", c)
}
