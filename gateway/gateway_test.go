package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"sightline/internal/rtsptest"
	"sightline/internal/testenv"
	"sightline/internal/whepclient"
	"sightline/media"
)

// logBuffer captures every log line of a gateway under test (to prove credentials never appear).
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// startGateway starts a loopback-only gateway from YAML camera entries and stops it with the test.
func startGateway(t *testing.T, cameras string) (*Gateway, *logBuffer) {
	t.Helper()
	return startGatewayYAML(t, "http: {listen: '127.0.0.1:0'}\n"+noAuth+cameras)
}

// startGatewayYAML starts a loopback-only gateway from a config whose http, auth and cameras sections
// the test writes, with its state file in a fresh folder.
func startGatewayYAML(t *testing.T, extra string) (*Gateway, *logBuffer) {
	t.Helper()
	return startGatewayIn(t, t.TempDir(), extra)
}

func startGatewayIn(t *testing.T, dir, extra string) (*Gateway, *logBuffer) {
	t.Helper()
	yaml := "webrtc: {udpPort: 0, loopbackOnly: true}\nlog: {level: debug}\n" + extra
	cfg, err := ParseConfig([]byte(yaml), dir)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	logs := &logBuffer{}
	g, err := New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return g, logs
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("GET %s: content type %q, body %s", url, ct, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, body)
	}
	return resp.StatusCode
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, timeout, what, cond)
}

func cameraStatus(t *testing.T, g *Gateway, id string) cameraView {
	t.Helper()
	var v cameraView
	if code := getJSON(t, "http://"+g.HTTPAddr()+"/api/v1/cameras/"+id, &v); code != 200 {
		t.Fatalf("camera %s: status %d", id, code)
	}
	return v
}

func TestAPIAndHealth(t *testing.T) {
	g, logs := startGateway(t, `cameras:
  - {id: front, url: 'rtsp://admin:hunter2@127.0.0.1:1/x', readTimeout: 1s}
  - {id: off, url: 'rtsp://127.0.0.1:1/y', enabled: false}
`)
	base := "http://" + g.HTTPAddr()
	var list struct{ Cameras []cameraView }
	if code := getJSON(t, base+"/api/v1/cameras", &list); code != 200 || len(list.Cameras) != 2 {
		t.Fatalf("list: %d %+v", code, list)
	}
	if list.Cameras[0].ID != "front" || list.Cameras[1].Status.State != media.StateDisabled {
		t.Fatalf("list order/state: %+v", list.Cameras)
	}
	// Nothing listens on port 1: the camera reports its failure, honestly and without the password.
	waitFor(t, 10*time.Second, "a connection error", func() bool {
		return cameraStatus(t, g, "front").Status.LastError != ""
	})
	var e struct{ Error, Code string }
	if code := getJSON(t, base+"/api/v1/cameras/nope", &e); code != 404 || e.Code != "unknown_camera" || e.Error == "" {
		t.Fatalf("unknown camera: %d %+v", code, e)
	}
	if code := getJSON(t, base+"/api/v1/nothing", &e); code != 404 || e.Code != "not_found" {
		t.Fatalf("unknown route: %d %+v", code, e)
	}
	var h map[string]string
	if code := getJSON(t, base+"/healthz", &h); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if code := getJSON(t, base+"/readyz", &h); code != 200 || h["status"] != "ready" {
		t.Fatalf("readyz %d %v", code, h)
	}
	resp, err := http.Get(base + "/api/v1/cameras")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "hunter2") || strings.Contains(logs.String(), "hunter2") {
		t.Fatalf("password leaked:\nAPI: %s\nlogs: %s", body, logs.String())
	}
	if !strings.Contains(string(body), "rtsp://***@127.0.0.1:1/x") {
		t.Fatalf("URL not shown redacted: %s", body)
	}
}

func TestCORSPreflight(t *testing.T) {
	g, _ := startGatewayYAML(t, "http: {listen: '127.0.0.1:0', allowOrigins: ['https://player.example']}\n"+noAuth+
		"cameras: [{id: cam, url: 'rtsp://127.0.0.1:1/x'}]\n")
	for _, path := range []string{"/api/v1/cameras", "/whep/cam"} {
		req, _ := http.NewRequest(http.MethodOptions, "http://"+g.HTTPAddr()+path, nil)
		req.Header.Set("Origin", "https://player.example")
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type, authorization")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := resp.Header
		if resp.StatusCode/100 != 2 || h.Get("Access-Control-Allow-Origin") == "" ||
			!strings.Contains(h.Get("Access-Control-Allow-Methods"), "PATCH") ||
			!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") ||
			!strings.Contains(h.Get("Access-Control-Expose-Headers"), "Location") {
			t.Fatalf("preflight %s: %d %v", path, resp.StatusCode, h)
		}
	}
}

// rtspCamera writes a camera entry pulling srv over transport.
func rtspCamera(id, url, transport string) string {
	return fmt.Sprintf("cameras:\n  - {id: %s, url: '%s', transport: %s, readTimeout: 2s}\n", id, url, transport)
}

func dialViewer(t *testing.T, g *Gateway, camera string) *whepclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := whepclient.Dial(ctx, "http://"+g.HTTPAddr()+"/whep/"+camera, whepclient.Options{LoopbackOnly: true, Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatalf("connect: %v", err)
	}
	return c
}

func nextFrame(t *testing.T, c *whepclient.Client, timeout time.Duration) whepclient.Frame {
	t.Helper()
	select {
	case f, ok := <-c.Frames():
		if !ok {
			t.Fatal("viewer closed")
		}
		return f
	case <-time.After(timeout):
		t.Fatalf("no frame within %s", timeout)
	}
	return whepclient.Frame{}
}

// withoutAUD drops access unit delimiters, which the RTP payloader leaves out (they carry nothing a
// receiver needs; RFC 6184 §5 lets senders omit them).
func withoutAUD(nalus [][]byte) [][]byte {
	var out [][]byte
	for _, n := range nalus {
		if media.NALUType(media.CodecH264, n) != 9 {
			out = append(out, n)
		}
	}
	return out
}

// The whole live path: an RTSP server → Sightline → a WHEP viewer, over TCP and UDP, and every access
// unit arrives byte-identical, in order, with the camera's RTP timestamp and keyframe flag.
func TestRTSPToWHEPByteIdentical(t *testing.T) {
	asset := testenv.Asset(t, "camera/cam_street_1280x720_25fps.h264")
	for _, transport := range []string{"tcp", "udp"} {
		t.Run(transport, func(t *testing.T) {
			srv := rtsptest.StartServer(t, rtsptest.ServerConfig{AnnexBPath: asset, UDP: transport == "udp"})
			g, _ := startGateway(t, rtspCamera("cam", srv.URL, transport))
			waitFor(t, 10*time.Second, "streaming", func() bool {
				return cameraStatus(t, g, "cam").Status.State == media.StateStreaming
			})
			v := dialViewer(t, g, "cam")
			// Frames written before DTLS is up are lost, so the viewer's first complete frame may come
			// after the keyframe it joined on: like a browser, start at the next keyframe it receives.
			first := nextFrame(t, v, 5*time.Second)
			for !first.Keyframe {
				first = nextFrame(t, v, 3*time.Second)
			}
			frames := []whepclient.Frame{first}
			for len(frames) < 50 {
				frames = append(frames, nextFrame(t, v, 2*time.Second))
			}
			prev := -1
			for i, f := range frames {
				sent, ok := srv.FindSent(f.RTPTime)
				if !ok {
					t.Fatalf("frame %d: RTP timestamp %d was never sent by the camera", i, f.RTPTime)
				}
				pos := sent.Loop*1_000_000 + sent.Index
				if pos <= prev {
					t.Fatalf("frame %d out of order", i)
				}
				prev = pos
				if f.Keyframe != sent.Keyframe {
					t.Fatalf("frame %d: keyframe %v, camera sent %v", i, f.Keyframe, sent.Keyframe)
				}
				if !rtsptest.SameNALUs(f.NALUs, withoutAUD(sent.NALUs)) {
					t.Fatalf("frame %d (ts %d): payload differs from what the camera sent", i, f.RTPTime)
				}
			}
			if st := cameraStatus(t, g, "cam"); st.Viewers != 1 || st.Status.Transport == "" || st.Status.FPS <= 0 {
				t.Fatalf("status while watched: %+v", st)
			}
		})
	}
}

// Killing the independent GStreamer RTSP server mid-stream and restarting it: Sightline reconnects,
// and the viewer that was already watching keeps its PeerConnection and gets frames again.
func TestReconnectKeepsViewer(t *testing.T) {
	mp4 := testenv.Asset(t, "camera/cam_street_1280x720_25fps.mp4")
	gst := rtsptest.StartGStreamer(t, mp4, 0, "tcp")
	g, _ := startGateway(t, rtspCamera("cam", gst.URL, "tcp"))
	waitFor(t, 15*time.Second, "streaming", func() bool {
		return cameraStatus(t, g, "cam").Status.State == media.StateStreaming
	})
	v := dialViewer(t, g, "cam")
	nextFrame(t, v, 5*time.Second)

	gst.Kill()
	waitFor(t, 10*time.Second, "the outage to be noticed", func() bool {
		return cameraStatus(t, g, "cam").Status.State != media.StateStreaming
	})
	// Drain what was in flight before the restart.
	for drained := false; !drained; {
		select {
		case <-v.Frames():
		case <-time.After(300 * time.Millisecond):
			drained = true
		}
	}
	if err := gst.Restart(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	f := nextFrame(t, v, 10*time.Second)
	t.Logf("first frame %s after the server came back (keyframe %v)", time.Since(back).Round(time.Millisecond), f.Keyframe)
	st := cameraStatus(t, g, "cam")
	if st.Status.RestartCount < 1 || st.Viewers != 1 {
		t.Fatalf("after reconnect: %+v", st)
	}
}

// Stopping the gateway while viewers watch leaves no goroutine behind.
func TestCloseWithViewersLeaksNothing(t *testing.T) {
	asset := testenv.Asset(t, "camera/cam_street_1280x720_25fps.h264")
	before := runtime.NumGoroutine()
	func() {
		cfg, err := ParseConfig([]byte(fmt.Sprintf(
			"http: {listen: '127.0.0.1:0'}\n"+noAuth+"webrtc: {udpPort: 0, loopbackOnly: true}\napi: {stateFile: %s}\ncameras: [{id: f, url: 'file://%s'}]\n",
			filepath.Join(t.TempDir(), "state.json"), asset)), "/")
		if err != nil {
			t.Fatal(err)
		}
		g, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var viewers []*whepclient.Client
		for i := 0; i < 3; i++ {
			c, err := whepclient.Dial(ctx, "http://"+g.HTTPAddr()+"/whep/f", whepclient.Options{LoopbackOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			viewers = append(viewers, c)
		}
		for _, c := range viewers {
			nextFrame(t, c, 5*time.Second)
		}
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
		for _, c := range viewers {
			_ = c.Close()
		}
	}()
	waitFor(t, 5*time.Second, "goroutines to settle", func() bool { return runtime.NumGoroutine() <= before+2 })
}
