package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"sightline/internal/rtsptest"
	"sightline/internal/testenv"
)

// POST /api/v1/probe against a real RTSP server (with credentials), a file in the media folder, a
// silent camera, a closed port and URLs the policy refuses: the /info shape on success, 502/504/422
// otherwise, no camera added, and the password in no answer and no log line.
func TestProbe(t *testing.T) {
	asset := testenv.Asset(t, "camera/cam_street_1280x720_25fps.h264")
	const pass = "pr0be-s3cret-pass"
	srv := rtsptest.StartServer(t, rtsptest.ServerConfig{AnnexBPath: asset, User: "probeuser", Pass: pass})
	silent := rtsptest.StartServer(t, rtsptest.ServerConfig{AnnexBPath: asset, Silent: true})
	g, logs := startGatewayYAML(t, authConfig+fmt.Sprintf("api: {mediaDir: '%s', denyHosts: ['10.0.0.0/8', 'internal.example']}\n",
		filepath.Dir(asset)))

	body := func(url, transport string) string {
		b, _ := json.Marshal(map[string]string{"url": url, "transport": transport})
		return string(b)
	}
	probe := func(b string) (int, map[string]any) {
		t.Helper()
		code, m, _ := apiDo(t, g, "POST", "/api/v1/probe", tokOperator, "application/json", b)
		raw, _ := json.Marshal(m)
		if strings.Contains(string(raw), pass) {
			t.Fatalf("the password appears in a probe answer: %s", raw)
		}
		return code, m
	}

	for _, transport := range []string{"tcp", "auto", ""} {
		code, m := probe(body(srv.URLWithAuth("probeuser", pass), transport))
		if code != 200 || m["codec"] != "H264" || m["width"] != 1280.0 || m["height"] != 720.0 ||
			m["profile"] != "Constrained Baseline" || m["level"] == "" || m["fps"] == 0.0 || m["transport"] != "tcp" ||
			strings.Contains(m["url"].(string), "probeuser") || !strings.Contains(m["url"].(string), srv.Host) {
			t.Fatalf("probe (transport %q): %d %v", transport, code, m)
		}
	}
	if code, m := probe(body("file://"+asset, "")); code != 200 || m["width"] != 1280.0 || m["codec"] != "H264" {
		t.Fatalf("probe file: %d %v", code, m)
	}

	for _, c := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"wrong password", body(srv.URLWithAuth("probeuser", pass+"x"), "tcp"), 502, "probe_failed"},
		{"closed port", body("rtsp://probeuser:"+pass+"@127.0.0.1:1/x", "tcp"), 502, "probe_failed"},
		{"silent camera", body(silent.URL, "tcp"), 504, "probe_timeout"},
		{"http scheme", body("http://127.0.0.1/x", ""), 422, "invalid_value"},
		{"denied CIDR", body("rtsp://probeuser:"+pass+"@10.1.2.3/x", ""), 422, "invalid_value"},
		{"denied name", body("rtsp://internal.example/x", ""), 422, "invalid_value"},
		{"file outside media folder", body("file:///etc/passwd", ""), 422, "invalid_value"},
		{"bad transport", body(srv.URL, "quic"), 422, "invalid_value"},
		{"no url", `{"transport":"tcp"}`, 422, "invalid_value"},
		{"whip camera", `{"url":"whip:"}`, 422, "invalid_value"},
		{"unknown field", `{"url":"rtsp://x/y","id":"a"}`, 400, "bad_json"},
		{"not json", `{"url":`, 400, "bad_json"},
	} {
		code, m := probe(c.body)
		if code != c.status || m["code"] != c.code || m["error"] == "" {
			t.Errorf("%s: %d %v, want %d %s", c.name, code, m, c.status, c.code)
		}
	}
	if code, m, _ := apiDo(t, g, "POST", "/api/v1/probe", tokOperator, "text/plain", body(srv.URL, "")); code != 415 {
		t.Errorf("text/plain: %d %v", code, m)
	}
	if code, _, _ := apiDo(t, g, "POST", "/api/v1/probe", tokViewer, "application/json", body(srv.URL, "")); code != 403 {
		t.Errorf("viewer: %d, want 403", code)
	}

	var list struct{ Cameras []cameraView }
	if code, m, _ := apiDo(t, g, "GET", "/api/v1/cameras", tokViewer, "", ""); code != 200 {
		t.Fatalf("list: %d %v", code, m)
	} else {
		raw, _ := json.Marshal(m)
		_ = json.Unmarshal(raw, &list)
	}
	if len(list.Cameras) != 0 {
		t.Fatalf("probes added cameras: %+v", list.Cameras)
	}
	if out := logs.String(); strings.Contains(out, pass) {
		t.Fatal("the password appears in the logs")
	}
}

// A probe stops its source and waits for it before it answers: no goroutine outlives it.
func TestProbeLeaksNothing(t *testing.T) {
	asset := testenv.Asset(t, "camera/cam_street_1280x720_25fps.h264")
	srv := rtsptest.StartServer(t, rtsptest.ServerConfig{AnnexBPath: asset})
	g, _ := startGateway(t, "")
	ctx := context.Background()
	cc := withCameraDefaults(CameraConfig{ID: "probe", URL: srv.URL, Transport: "tcp"})
	if _, err := g.runProbe(ctx, cc); err != nil { // warm up lazily started runtime goroutines
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	for range 3 {
		if _, err := g.runProbe(ctx, cc); err != nil {
			t.Fatal(err)
		}
		bad := withCameraDefaults(CameraConfig{ID: "probe", URL: "rtsp://127.0.0.1:1/x", Transport: "tcp"})
		if _, err := g.runProbe(ctx, bad); err == nil {
			t.Fatal("probe of a closed port succeeded")
		}
	}
	waitFor(t, 5*time.Second, "goroutines back to their count", func() bool { return runtime.NumGoroutine() <= before })
}

// The probe body decoder never panics and accepts only an object with url and transport.
func FuzzProbeJSON(f *testing.F) {
	f.Add(`{"url":"rtsp://u:p@h/x","transport":"tcp"}`)
	f.Add(`{"url":1}`)
	f.Add(`{"url":"a"} {}`)
	f.Fuzz(func(t *testing.T, body string) {
		var req probeRequest
		if e := decodeStrictJSON([]byte(body), &req, "url, transport"); e != nil && (e.status < 400 || e.code == "") {
			t.Fatalf("error without status or code: %+v", e)
		}
	})
}

// scrubURL leaves no password of the URL in a message that quotes it.
func FuzzScrubURL(f *testing.F) {
	f.Add("user", "pa55word", "h:554")
	f.Fuzz(func(t *testing.T, user, pass, host string) {
		if len(pass) < 4 || strings.ContainsAny(user+pass+host, "@/?#%:*") || strings.Contains(user+"|"+host+"|dial : refused rtsp://x", pass) {
			return
		}
		raw := "rtsp://" + user + ":" + pass + "@" + host + "/x"
		if msg := scrubURL("dial "+raw+": refused", raw); strings.Contains(msg, pass) {
			t.Fatalf("%q keeps the password", msg)
		}
	})
}
