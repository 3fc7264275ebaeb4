package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"sightline/internal/testenv"
	"sightline/internal/whepclient"
)

func scrape(t *testing.T, g *Gateway, token string) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+g.HTTPAddr()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("scrape: %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse exposition: %v", err)
	}
	return fams
}

// value returns the sample of family name whose labels include want.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		ok := true
		for k, v := range want {
			if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == k && l.GetValue() == v }) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		}
	}
	return 0, false
}

// A scrape parsed with the Prometheus text parser shows the camera's counters moving while it plays,
// a viewer counted, WebRTC sessions, HTTP and auth counters, and the Go runtime.
func TestMetricsMoveWhileCameraPlays(t *testing.T) {
	asset := testenv.Asset(t, "camera/cam_street_1280x720_25fps.h264")
	g, _ := startGatewayYAML(t, authConfig+fmt.Sprintf("cameras: [{id: street, url: 'file://%s'}]\n", asset))
	cam := map[string]string{"camera": "street"}
	waitFor(t, 10*time.Second, "frames counted", func() bool {
		v, _ := value(scrape(t, g, tokViewer), "sightline_camera_frames_total", cam)
		return v > 0
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := whepclient.Dial(ctx, "http://"+g.HTTPAddr()+"/whep/street", whepclient.Options{LoopbackOnly: true, Token: tokViewer})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	nextFrame(t, v, 5*time.Second)

	first := scrape(t, g, tokViewer)
	time.Sleep(500 * time.Millisecond)
	// One refused request, to see the auth counter.
	resp, err := http.Get("http://" + g.HTTPAddr() + "/api/v1/cameras")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	second := scrape(t, g, tokViewer)

	for _, name := range []string{"sightline_camera_frames_total", "sightline_camera_bytes_total"} {
		a, _ := value(first, name, cam)
		b, ok := value(second, name, cam)
		if !ok || b <= a {
			t.Errorf("%s did not move: %v → %v", name, a, b)
		}
	}
	checks := []struct {
		name   string
		labels map[string]string
		ok     func(float64) bool
	}{
		{"sightline_camera_up", cam, func(v float64) bool { return v == 1 }},
		{"sightline_camera_state", map[string]string{"camera": "street", "state": "streaming"}, func(v float64) bool { return v == 1 }},
		{"sightline_camera_viewers", cam, func(v float64) bool { return v == 1 }},
		{"sightline_camera_fps", cam, func(v float64) bool { return v > 5 }},
		{"sightline_camera_reconnects_total", cam, func(v float64) bool { return v >= 0 }},
		{"sightline_stream_readers", cam, func(v float64) bool { return v >= 1 }},
		{"sightline_webrtc_sessions", map[string]string{"state": "connected"}, func(v float64) bool { return v == 1 }},
		{"sightline_webrtc_sessions", map[string]string{"state": "failed"}, func(v float64) bool { return v == 0 }},
		{"sightline_webrtc_dropped_frames_total", map[string]string{"camera": "street", "variant": "raw", "stage": "fanout"}, func(v float64) bool { return v >= 0 }},
		{"sightline_webrtc_dropped_frames_total", map[string]string{"camera": "street", "variant": "raw", "stage": "reader"}, func(v float64) bool { return v >= 0 }},
		{"sightline_auth_failures_total", map[string]string{"reason": "unauthorized"}, func(v float64) bool { return v >= 1 }},
		{"sightline_http_requests_total", map[string]string{"route": "POST /whep/{camera}", "code": "201"}, func(v float64) bool { return v == 1 }},
		{"go_goroutines", nil, func(v float64) bool { return v > 0 }},
	}
	for _, c := range checks {
		if v, ok := value(second, c.name, c.labels); !ok || !c.ok(v) {
			t.Errorf("%s%v = %v (present %v)", c.name, c.labels, v, ok)
		}
	}
	if second["sightline_http_request_seconds"] == nil || second["go_gc_duration_seconds"] == nil {
		t.Error("histograms missing")
	}
}

// The OpenAPI document lists exactly the routes the server has, with the same methods.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	g, _ := startGatewayYAML(t, authConfig)
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	code := getJSON(t, "http://"+g.HTTPAddr()+"/api/v1/openapi.json", &doc)
	if code != 200 || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi.json: %d %q", code, doc.OpenAPI)
	}
	inDoc := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, raw := range ops {
			inDoc[strings.ToUpper(method)+" "+path] = true
			var op struct {
				Role      string            `json:"x-sightline-role"`
				Responses map[string]any    `json:"responses"`
				Security  []json.RawMessage `json:"security"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			if len(op.Responses) == 0 {
				t.Errorf("%s %s has no responses", method, path)
			}
		}
	}
	inMux := map[string]bool{}
	for _, rt := range g.routeTable() {
		if rt.pattern == "/api/" {
			continue // the API's 404 fallback, not an operation
		}
		key := rt.pattern
		if !strings.Contains(key, " ") {
			key = "GET " + key
		}
		inMux[key] = true
		if !inDoc[key] {
			t.Errorf("route %s is not in openapi.json", key)
		}
	}
	for key := range inDoc {
		if !inMux[key] {
			t.Errorf("openapi.json documents %s, which the server does not serve", key)
		}
	}
	// The document's role for each operation is the one the server enforces.
	for _, rt := range g.routeTable() {
		method, path, ok := strings.Cut(rt.pattern, " ")
		if !ok {
			continue
		}
		var op struct {
			Role string `json:"x-sightline-role"`
		}
		_ = json.Unmarshal(doc.Paths[path][strings.ToLower(method)], &op)
		want := ""
		if rt.policy.role > 0 {
			want = rt.policy.role.String()
		}
		if op.Role != want {
			t.Errorf("%s: document says role %q, server enforces %q", rt.pattern, op.Role, want)
		}
	}
}
