package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"sightline/auth"
	"sightline/internal/testenv"
	"sightline/internal/whepclient"
)

const (
	tokViewer   = "viewer-token-0123456789"
	tokOperator = "operator-token-0123456789"
	tokAdmin    = "admin-token-0123456789abc"
	jwtSecret   = "jwt-secret-0123456789-0123456789-abcdef"
)

// authConfig turns auth on with one static token per role and an HS256 secret, and raises the rate
// limits out of the way (the limit tests set their own).
const authConfig = `http: {listen: '127.0.0.1:0'}
auth:
  tokens:
    - {token: ` + tokViewer + `, role: viewer}
    - {token: ` + tokOperator + `, role: operator}
    - {token: ` + tokAdmin + `, role: admin}
  jwt: {hs256Secret: ` + jwtSecret + `}
limits: {apiRate: 100000, apiBurst: 100000, whepRate: 100000, whepBurst: 100000}
`

func signJWT(t *testing.T, role string, exp time.Time, secret string) string {
	t.Helper()
	tok, err := auth.Sign(map[string]any{"role": role, "exp": exp.Unix()}, "HS256", []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type credential struct {
	name  string
	token string
	query bool // send as ?token= instead of the header
	// subprotocol sends it as the WebSocket subprotocol sightline.token.<token> instead of the header
	// (honoured on WebSocket routes only: elsewhere it counts as no token).
	subprotocol bool
	role        auth.Role // RoleNone: must be refused with 401
}

func credentials(t *testing.T) []credential {
	hour := time.Now().Add(time.Hour)
	return []credential{
		{name: "none"},
		{name: "bad token", token: "not-a-token"},
		{name: "bearer prefix only", token: " "},
		{name: "expired jwt", token: signJWT(t, "admin", time.Now().Add(-time.Hour), jwtSecret)},
		{name: "wrong signature", token: signJWT(t, "admin", hour, "another-secret-0123456789-0123456789")},
		{name: "tampered role", token: tamper(signJWT(t, "viewer", hour, jwtSecret))},
		{name: "viewer", token: tokViewer, role: auth.RoleViewer},
		{name: "operator", token: tokOperator, role: auth.RoleOperator},
		{name: "admin", token: tokAdmin, role: auth.RoleAdmin},
		{name: "viewer query", token: tokViewer, query: true, role: auth.RoleViewer},
		{name: "admin query", token: tokAdmin, query: true, role: auth.RoleAdmin},
		{name: "jwt viewer", token: signJWT(t, "viewer", hour, jwtSecret), role: auth.RoleViewer},
		{name: "jwt admin", token: signJWT(t, "admin", hour, jwtSecret), role: auth.RoleAdmin},
		{name: "viewer subprotocol", token: tokViewer, subprotocol: true, role: auth.RoleViewer},
		{name: "jwt admin subprotocol", token: signJWT(t, "admin", hour, jwtSecret), subprotocol: true, role: auth.RoleAdmin},
		{name: "bad subprotocol token", token: "not-a-token", subprotocol: true},
		{name: "expired jwt subprotocol", token: signJWT(t, "admin", time.Now().Add(-time.Hour), jwtSecret), subprotocol: true},
	}
}

// tamper swaps a JWT's claims for admin ones, keeping the signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	parts[1] = "eyJyb2xlIjoiYWRtaW4ifQ" // {"role":"admin"}
	return strings.Join(parts, ".")
}

// probe is a request that reaches a route without changing anything when allowed (unknown ids, invalid
// bodies), so the matrix can run every credential against it.
type probe struct {
	method, path, ctype, body string
}

var probes = map[string]probe{
	"/":                                    {"GET", "/", "", ""},
	"GET /healthz":                         {"GET", "/healthz", "", ""},
	"GET /readyz":                          {"GET", "/readyz", "", ""},
	"GET /metrics":                         {"GET", "/metrics", "", ""},
	"GET /api/v1/openapi.json":             {"GET", "/api/v1/openapi.json", "", ""},
	"GET /api/v1/whoami":                   {"GET", "/api/v1/whoami", "", ""},
	"GET /api/v1/cameras":                  {"GET", "/api/v1/cameras", "", ""},
	"POST /api/v1/cameras":                 {"POST", "/api/v1/cameras", "application/json", `{"id":"new"}`},
	"GET /api/v1/cameras/{id}":             {"GET", "/api/v1/cameras/cam", "", ""},
	"PUT /api/v1/cameras/{id}":             {"PUT", "/api/v1/cameras/cam", "application/json", `{"transport":"quic"}`},
	"DELETE /api/v1/cameras/{id}":          {"DELETE", "/api/v1/cameras/nope", "", ""},
	"POST /api/v1/cameras/{id}/start":      {"POST", "/api/v1/cameras/nope/start", "", ""},
	"POST /api/v1/cameras/{id}/stop":       {"POST", "/api/v1/cameras/nope/stop", "", ""},
	"GET /api/v1/events":                   {"GET", "/api/v1/events", "", ""},
	"GET /api/v1/events/{id}":              {"GET", "/api/v1/events/nope", "", ""},
	"GET /api/v1/events/{id}/snapshot.jpg": {"GET", "/api/v1/events/nope/snapshot.jpg", "", ""},
	"GET /api/v1/alerts/sinks":             {"GET", "/api/v1/alerts/sinks", "", ""},
	"GET /api/v1/cameras/{id}/info":        {"GET", "/api/v1/cameras/nope/info", "", ""},
	"GET /api/v1/cameras/{id}/frame.jpg":   {"GET", "/api/v1/cameras/nope/frame.jpg", "", ""},
	"GET /api/v1/hw-accel-cap":             {"GET", "/api/v1/hw-accel-cap", "", ""},
	"POST /api/v1/probe":                   {"POST", "/api/v1/probe", "application/json", `{"url":"http://127.0.0.1/x"}`},
	"/api/":                                {"GET", "/api/v1/nothing", "", ""},
	"POST /whep/{camera}":                  {"POST", "/whep/cam", "application/sdp", "v=0\r\n"},
	"POST /whep/{camera}/annotated":        {"POST", "/whep/cam/annotated", "application/sdp", "v=0\r\n"},
	"OPTIONS /whep/{camera}":               {"OPTIONS", "/whep/cam", "", ""},
	"OPTIONS /whep/{camera}/annotated":     {"OPTIONS", "/whep/cam/annotated", "", ""},
	"PATCH /whep/{camera}/sessions/{id}":   {"PATCH", "/whep/cam/sessions/nope", "application/trickle-ice-sdpfrag", "a=ice-ufrag:x\r\n"},
	"DELETE /whep/{camera}/sessions/{id}":  {"DELETE", "/whep/cam/sessions/nope", "", ""},
	"OPTIONS /whep/{camera}/sessions/{id}": {"OPTIONS", "/whep/cam/sessions/nope", "", ""},
	"GET /ws/signal":                       {"GET", "/ws/signal", "", ""},
	"POST /whip/{camera}":                  {"POST", "/whip/cam", "application/sdp", "v=0\r\n"},
	"OPTIONS /whip/{camera}":               {"OPTIONS", "/whip/cam", "", ""},
	"PATCH /whip/{camera}/sessions/{id}":   {"PATCH", "/whip/cam/sessions/nope", "application/trickle-ice-sdpfrag", "a=ice-ufrag:x\r\n"},
	"DELETE /whip/{camera}/sessions/{id}":  {"DELETE", "/whip/cam/sessions/nope", "", ""},
	"OPTIONS /whip/{camera}/sessions/{id}": {"OPTIONS", "/whip/cam/sessions/nope", "", ""},
	"GET /ws/meta":                         {"GET", "/ws/meta", "", ""},
	"GET /ws/alerts":                       {"GET", "/ws/alerts", "", ""},
}

func do(t *testing.T, base string, p probe, c credential) (int, string) {
	t.Helper()
	u := base + p.path
	if c.query && c.token != "" {
		u += "?token=" + c.token
	}
	req, err := http.NewRequest(p.method, u, strings.NewReader(p.body))
	if err != nil {
		t.Fatal(err)
	}
	if p.ctype != "" {
		req.Header.Set("Content-Type", p.ctype)
	}
	if c.subprotocol {
		req.Header.Set("Sec-WebSocket-Protocol", auth.Subprotocol+", "+auth.TokenSubprotocolPrefix+c.token)
	} else if !c.query && c.name != "none" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// Every route, every credential: a caller without a valid token gets 401 on every protected route,
// a valid token with too low a role gets 403, and nothing else is refused. No token appears in logs.
func TestAuthMatrix(t *testing.T) {
	g, logs := startGatewayYAML(t, authConfig+"cameras: [{id: cam, url: 'rtsp://127.0.0.1:1/x'}]\n")
	base := "http://" + g.HTTPAddr()
	creds := credentials(t)
	for _, rt := range g.routeTable() {
		p, ok := probes[rt.pattern]
		if !ok {
			t.Fatalf("route %q has no probe in this test: add one", rt.pattern)
		}
		for _, c := range creds {
			code, body := do(t, base, p, c)
			need := rt.policy.role
			role := c.role
			if c.subprotocol && !rt.policy.ws {
				role = auth.RoleNone // the subprotocol carries tokens for WebSockets only
			}
			switch {
			case need == auth.RoleNone || p.method == http.MethodOptions:
				if code == 401 || code == 403 {
					t.Errorf("%s with %s: public route refused %d", rt.pattern, c.name, code)
				}
			case role == auth.RoleNone:
				if code != 401 {
					t.Errorf("UNAUTHORIZED SUCCESS? %s with %s: %d %s", rt.pattern, c.name, code, body)
				} else if !strings.Contains(body, `"code": "unauthorized"`) {
					t.Errorf("%s with %s: 401 body %s", rt.pattern, c.name, body)
				}
			case role < need:
				if code != 403 {
					t.Errorf("%s with %s (needs %s): %d, want 403", rt.pattern, c.name, need, code)
				}
			default:
				if code == 401 || code == 403 || code == 429 {
					t.Errorf("%s with %s: refused %d %s", rt.pattern, c.name, code, body)
				}
			}
		}
	}
	// The signaling WebSocket opens with ?token= (browsers cannot set headers on WebSockets) and is
	// refused without it.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	wsURL := "ws://" + g.HTTPAddr() + "/ws/signal"
	if _, resp, err := websocket.Dial(ctx, wsURL, nil); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("WebSocket without token: %v %v", err, resp)
	}
	conn, _, err := websocket.Dial(ctx, wsURL+"?token="+tokViewer, nil)
	if err != nil {
		t.Fatalf("WebSocket with ?token=: %v", err)
	}
	conn.Close(websocket.StatusNormalClosure, "")
	// Or with the token in the subprotocol sightline.token.<token>: the answer selects "sightline" when
	// offered (the token is not echoed), else the token subprotocol (browsers need one selected).
	for _, c := range []struct {
		path   string
		protos []string
		want   string
	}{
		{"/ws/signal", []string{auth.Subprotocol, auth.TokenSubprotocolPrefix + tokViewer}, auth.Subprotocol},
		{"/ws/signal", []string{auth.TokenSubprotocolPrefix + tokViewer}, auth.TokenSubprotocolPrefix + tokViewer},
		{"/ws/meta?camera=cam", []string{auth.TokenSubprotocolPrefix + tokViewer, auth.Subprotocol}, auth.Subprotocol},
		{"/ws/signal", []string{"other", auth.TokenSubprotocolPrefix + signJWT(t, "viewer", time.Now().Add(time.Hour), jwtSecret), auth.Subprotocol}, auth.Subprotocol},
	} {
		conn, _, err := websocket.Dial(ctx, "ws://"+g.HTTPAddr()+c.path, &websocket.DialOptions{Subprotocols: c.protos})
		if err != nil {
			t.Fatalf("WebSocket %s with subprotocols %q: %v", c.path, c.protos, err)
		}
		if got := conn.Subprotocol(); got != c.want {
			t.Errorf("WebSocket %s with subprotocols %q selected %q, want %q", c.path, c.protos, got, c.want)
		}
		conn.Close(websocket.StatusNormalClosure, "")
	}
	for _, protos := range [][]string{
		{auth.Subprotocol, auth.TokenSubprotocolPrefix + "not-a-token"},
		{auth.Subprotocol},
		{"bearer", tokViewer},
	} {
		_, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{Subprotocols: protos})
		if err == nil || resp == nil || resp.StatusCode != 401 {
			t.Fatalf("WebSocket with subprotocols %q: %v %v", protos, err, resp)
		}
		if h := resp.Header.Get("Sec-WebSocket-Protocol"); h != "" {
			t.Fatalf("refused WebSocket answer selects subprotocol %q", h)
		}
	}
	// The subprotocol authenticates WebSockets only.
	req0, _ := http.NewRequest("GET", base+"/api/v1/whoami", nil)
	req0.Header.Set("Sec-WebSocket-Protocol", auth.TokenSubprotocolPrefix+tokAdmin)
	if resp, err := http.DefaultClient.Do(req0); err != nil || resp.StatusCode != 401 {
		t.Fatalf("REST with a token subprotocol: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}
	// Another origin may not open the socket (the server's handler does not check Origin itself).
	hdr := http.Header{"Origin": {"https://evil.example"}}
	if _, resp, err := websocket.Dial(ctx, wsURL+"?token="+tokViewer, &websocket.DialOptions{HTTPHeader: hdr}); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("cross-origin WebSocket: %v %v", err, resp)
	}

	var who struct{ Role string }
	req, _ := http.NewRequest("GET", base+"/api/v1/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+tokOperator)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&who)
	resp.Body.Close()
	if who.Role != "operator" {
		t.Fatalf("whoami: %+v", who)
	}

	out := logs.String()
	for _, c := range creds {
		if len(c.token) > 3 && strings.Contains(out, c.token) {
			t.Fatalf("a token (%s) appears in the logs", c.name)
		}
	}
	if !strings.Contains(out, "request refused") {
		t.Fatal("refusals were not logged")
	}
}

// Every pattern the mux serves has a policy, and the WHEP/WS patterns the table names for
// webrtc.Server.Register are the ones it registered.
func TestRouteTableMatchesMux(t *testing.T) {
	g, _ := startGatewayYAML(t, authConfig)
	for _, rt := range g.routeTable() {
		p := probes[rt.pattern]
		req, _ := http.NewRequest(p.method, "http://x"+p.path, nil)
		if _, pattern := g.mux.Handler(req); pattern != rt.pattern {
			t.Errorf("%s %s is served by pattern %q, want %q", p.method, p.path, pattern, rt.pattern)
		}
	}
}

func TestAuthRequiresExplicitDisable(t *testing.T) {
	_, err := ParseConfig([]byte("http: {listen: '127.0.0.1:0'}\n"), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "auth.enabled: false") {
		t.Fatalf("a config without credentials started without auth: %v", err)
	}
	_, logs := startGatewayYAML(t, "http: {listen: '127.0.0.1:0'}\n"+noAuth)
	if !strings.Contains(logs.String(), "authentication is DISABLED") {
		t.Fatalf("no warning when auth is off:\n%s", logs)
	}
}

func TestJWTPublicKeyFileConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keys.pem"), []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := ParseConfig([]byte("auth: {jwt: {publicKeyFile: keys.pem}}\n"), dir)
	if err == nil || !strings.Contains(err.Error(), "auth.jwt.publicKeyFile") || !strings.Contains(err.Error(), "never a private key") {
		t.Fatalf("private key file accepted: %v", err)
	}
}

func apiDo(t *testing.T, g *Gateway, method, path, token, ctype, body string) (int, map[string]any, http.Header) {
	t.Helper()
	var h map[string]string
	if token != "" {
		h = map[string]string{"Authorization": "Bearer " + token}
	}
	return apiDoHeaders(t, g, method, path, ctype, body, h)
}

// apiDoHeaders is apiDo with request headers of the caller's choosing.
func apiDoHeaders(t *testing.T, g *Gateway, method, path, ctype, body string, headers map[string]string) (int, map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+g.HTTPAddr()+path, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s %s: %d non-JSON body %q", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, m, resp.Header
}

// Every error status the API gives, with the {"error","code"} shape and the field at fault.
func TestAPIErrors(t *testing.T) {
	media := t.TempDir()
	clip := filepath.Join(media, "clip.h264")
	if err := os.WriteFile(clip, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	g, _ := startGatewayYAML(t, authConfig+fmt.Sprintf(`api: {mediaDir: %s, denyHosts: ['169.254.0.0/16', metadata.internal], allowHosts: ['127.0.0.0/8', '169.254.0.0/16', '*.cams.example']}
cameras: [{id: cam, url: 'rtsp://127.0.0.1:1/x'}]
`, media))
	const js = "application/json"
	cases := []struct {
		name, method, path, ctype, body string
		status                          int
		code, field, msg                string
	}{
		{"bad json", "POST", "/api/v1/cameras", js, `{"id":`, 400, "bad_json", "", "not a JSON object"},
		{"not an object", "POST", "/api/v1/cameras", js, `[1]`, 400, "bad_json", "", ""},
		{"trailing data", "POST", "/api/v1/cameras", js, `{"id":"a","url":"rtsp://127.0.0.1/x"} {}`, 400, "bad_json", "", "after the JSON"},
		{"unknown field", "POST", "/api/v1/cameras", js, `{"id":"a","uri":"x"}`, 400, "bad_json", "uri", "unknown field"},
		{"wrong type", "POST", "/api/v1/cameras", js, `{"id":5}`, 400, "bad_json", "id", "want a JSON string"},
		{"no content type", "POST", "/api/v1/cameras", "", `{}`, 415, "unsupported_media_type", "", "application/json"},
		{"form content type", "POST", "/api/v1/cameras", "application/x-www-form-urlencoded", `id=a`, 415, "unsupported_media_type", "", ""},
		{"too large", "POST", "/api/v1/cameras", js, `{"id":"` + strings.Repeat("a", 70<<10) + `"}`, 413, "body_too_large", "", "maxBodyBytes"},
		{"missing id", "POST", "/api/v1/cameras", js, `{"url":"rtsp://127.0.0.1/x"}`, 422, "invalid_value", "id", "required"},
		{"bad id", "POST", "/api/v1/cameras", js, `{"id":"a b","url":"rtsp://127.0.0.1/x"}`, 422, "invalid_value", "id", "letters"},
		{"bad scheme", "POST", "/api/v1/cameras", js, `{"id":"a","url":"http://u:hunter2@127.0.0.1/x"}`, 422, "invalid_value", "url", "unsupported scheme"},
		{"bad transport", "POST", "/api/v1/cameras", js, `{"id":"a","url":"rtsp://127.0.0.1/x","transport":"quic"}`, 422, "invalid_value", "transport", "not one of"},
		{"bad duration", "POST", "/api/v1/cameras", js, `{"id":"a","url":"rtsp://127.0.0.1/x","readTimeout":"soon"}`, 422, "invalid_value", "", "invalid duration"},
		{"analytics override without the section", "POST", "/api/v1/cameras", js, `{"id":"a","url":"rtsp://127.0.0.1/x","analytics":{"fps":2}}`, 422, "invalid_value", "analytics", "top-level analytics section"},
		{"file outside media dir", "POST", "/api/v1/cameras", js, `{"id":"a","url":"file:///etc/passwd"}`, 422, "invalid_value", "url", "media folder"},
		{"file traversal", "POST", "/api/v1/cameras", js, `{"id":"a","url":"file://` + media + `/../x.h264"}`, 422, "invalid_value", "url", "media folder"},
		{"denied host", "POST", "/api/v1/cameras", js, `{"id":"a","url":"rtsp://u:hunter2@169.254.169.254/x"}`, 422, "invalid_value", "url", "denyHosts"},
		{"host not allowed", "POST", "/api/v1/cameras", js, `{"id":"a","url":"rtsp://10.1.2.3/x"}`, 422, "invalid_value", "url", "allowHosts"},
		{"duplicate", "POST", "/api/v1/cameras", js, `{"id":"cam","url":"rtsp://127.0.0.1/x"}`, 409, "camera_exists", "id", "already exists"},
		{"update unknown", "PUT", "/api/v1/cameras/nope", js, `{"url":"rtsp://127.0.0.1/x"}`, 404, "unknown_camera", "", ""},
		{"update changes id", "PUT", "/api/v1/cameras/cam", js, `{"id":"other","url":"rtsp://127.0.0.1/x"}`, 422, "invalid_value", "id", "cannot change"},
		{"delete unknown", "DELETE", "/api/v1/cameras/nope", "", "", 404, "unknown_camera", "", ""},
		{"start unknown", "POST", "/api/v1/cameras/nope/start", "", "", 404, "unknown_camera", "", ""},
		{"unknown route", "GET", "/api/v1/nothing", "", "", 404, "not_found", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, m, _ := apiDo(t, g, c.method, c.path, tokAdmin, c.ctype, c.body)
			if code != c.status || m["code"] != c.code {
				t.Fatalf("%d %v, want %d %s", code, m, c.status, c.code)
			}
			if msg, _ := m["error"].(string); msg == "" || !strings.Contains(msg, c.msg) || strings.Contains(msg, "hunter2") {
				t.Fatalf("error %q (want it to say %q, without credentials)", msg, c.msg)
			}
			if c.field != "" && m["field"] != c.field {
				t.Fatalf("field %v, want %s", m["field"], c.field)
			}
		})
	}
	// A file inside the media folder is fine.
	if code, m, _ := apiDo(t, g, "POST", "/api/v1/cameras", tokAdmin, js, `{"id":"clip","url":"file://`+clip+`"}`); code != 201 {
		t.Fatalf("file camera in the media folder: %d %v", code, m)
	}
	// 503: a gateway that is not running refuses changes.
	cfg, err := ParseConfig([]byte(noAuth+"webrtc: {udpPort: 0, loopbackOnly: true}\n"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	idle, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idle.Close() })
	rec := newRecorder()
	req, _ := http.NewRequest("POST", "/api/v1/cameras", strings.NewReader(`{"id":"a","url":"rtsp://127.0.0.1/x"}`))
	req.Header.Set("Content-Type", js)
	req.RemoteAddr = "127.0.0.1:1"
	idle.Handler().ServeHTTP(rec, req)
	if rec.code != 503 || !strings.Contains(rec.body.String(), `"unavailable"`) {
		t.Fatalf("not running: %d %s", rec.code, rec.body.String())
	}
}

func TestRateLimits(t *testing.T) {
	g, _ := startGatewayYAML(t, "http: {listen: '127.0.0.1:0'}\n"+noAuth+
		"limits: {apiRate: 0.001, apiBurst: 3, whepRate: 0.001, whepBurst: 2}\ncameras: [{id: cam, url: 'rtsp://127.0.0.1:1/x'}]\n")
	for i := 0; i < 3; i++ {
		if code, _, _ := apiDo(t, g, "GET", "/api/v1/cameras", "", "", ""); code != 200 {
			t.Fatalf("request %d: %d", i, code)
		}
	}
	code, m, h := apiDo(t, g, "GET", "/api/v1/cameras", "", "", "")
	if code != 429 || m["code"] != "rate_limited" || h.Get("Retry-After") == "" {
		t.Fatalf("4th API request: %d %v %v", code, m, h)
	}
	// Health and the UI are not limited; WHEP session creation has its own bucket.
	if code, _, _ := apiDo(t, g, "GET", "/healthz", "", "", ""); code != 200 {
		t.Fatalf("healthz limited: %d", code)
	}
	for i := 0; i < 2; i++ {
		if code, _, _ := apiDo(t, g, "POST", "/whep/cam", "", "application/sdp", "v=0\r\n"); code == 429 {
			t.Fatalf("WHEP %d limited early", i)
		}
	}
	if code, _, _ := apiDo(t, g, "POST", "/whep/cam", "", "application/sdp", "v=0\r\n"); code != 429 {
		t.Fatalf("3rd WHEP offer: %d, want 429", code)
	}
}

// Create (with credentials), stop a config camera, delete another → restart → all still so; the
// state file is private and the API never shows the password.
func TestRuntimeChangesSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	cfgYAML := authConfig + `cameras:
  - {id: keep, url: 'rtsp://127.0.0.1:1/k'}
  - {id: gone, url: 'rtsp://127.0.0.1:1/g'}
`
	g, logs := startGatewayIn(t, dir, cfgYAML)
	const js = "application/json"
	code, m, h := apiDo(t, g, "POST", "/api/v1/cameras", tokAdmin, js,
		`{"id":"added","url":"rtsp://admin:hunter2@127.0.0.1:1/a","transport":"tcp","readTimeout":"2s"}`)
	if code != 201 || h.Get("Location") != "/api/v1/cameras/added" || m["url"] != "rtsp://***@127.0.0.1:1/a" {
		t.Fatalf("create: %d %v %v", code, m, h)
	}
	if code, m, _ := apiDo(t, g, "POST", "/api/v1/cameras/keep/stop", tokOperator, "", ""); code != 200 || m["stopped"] != true {
		t.Fatalf("stop: %d %v", code, m)
	}
	if code, _, _ := apiDo(t, g, "DELETE", "/api/v1/cameras/gone", tokAdmin, "", ""); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	// Sending back the redacted URL keeps the stored credentials.
	if code, m, _ := apiDo(t, g, "PUT", "/api/v1/cameras/added", tokAdmin, js, `{"url":"rtsp://***@127.0.0.1:1/a","transport":"udp"}`); code != 200 || m["transport"] != "udp" {
		t.Fatalf("update: %d %v", code, m)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	statePath := filepath.Join(dir, "sightline.state.json")
	fi, err := os.Stat(statePath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v %v", fi, err)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, "*.tmp*")); len(leftovers) > 0 {
		t.Fatalf("temporary files left: %v", leftovers)
	}

	g2, logs2 := startGatewayIn(t, dir, cfgYAML)
	var list struct{ Cameras []cameraView }
	_, m, _ = apiDo(t, g2, "GET", "/api/v1/cameras", tokViewer, "", "")
	raw, _ := json.Marshal(m)
	if err := json.Unmarshal(raw, &list); err != nil {
		t.Fatal(err)
	}
	got := map[string]cameraView{}
	for _, c := range list.Cameras {
		got[c.ID] = c
	}
	if len(got) != 2 || got["added"].Transport != "udp" || !got["keep"].Stopped || got["keep"].Status.State != "stopped" {
		t.Fatalf("after restart: %+v", list.Cameras)
	}
	if _, ok := got["gone"]; ok {
		t.Fatal("deleted camera came back")
	}
	// The stored password survived the update (it is in the state file, and only there).
	state, _ := os.ReadFile(statePath)
	if !strings.Contains(string(state), "hunter2") {
		t.Fatalf("credentials lost by the update: %s", state)
	}
	if strings.Contains(string(raw), "hunter2") || strings.Contains(logs.String(), "hunter2") || strings.Contains(logs2.String(), "hunter2") {
		t.Fatal("password leaked into the API or logs")
	}
	if code, m, _ := apiDo(t, g2, "POST", "/api/v1/cameras/keep/start", tokOperator, "", ""); code != 200 || m["stopped"] != false {
		t.Fatalf("start: %d %v", code, m)
	}
}

// recorder is a tiny http.ResponseWriter for handler calls without a listener.
type recorder struct {
	hdr  http.Header
	code int
	body strings.Builder
}

func newRecorder() *recorder { return &recorder{hdr: http.Header{}} }

func (r *recorder) Header() http.Header { return r.hdr }
func (r *recorder) WriteHeader(c int) {
	if r.code == 0 {
		r.code = c
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = 200
	}
	return r.body.Write(b)
}

func FuzzDecodeCameraJSON(f *testing.F) {
	f.Add([]byte(`{"id":"a","url":"rtsp://u:p@h/x","transport":"tcp","readTimeout":"2s","enabled":false}`))
	f.Add([]byte(`{"id":5}`))
	f.Add([]byte(`{"readTimeout":"-1h"}`))
	f.Add([]byte(`[]`))
	cfg, err := ParseConfig([]byte(noAuth), "/")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var c CameraConfig
		if e := decodeCameraJSON(body, &c); e != nil {
			if e.msg == "" || e.status < 400 || e.status > 499 {
				t.Fatalf("bad error: %+v", e)
			}
			return
		}
		c = withCameraDefaults(c)
		_ = cfg.validateCamera(&c, "")
		_ = cfg.checkAPICamera(context.Background(), c)
	})
}

// Creating, changing and deleting a camera at runtime leaves the other cameras' viewers alone; a
// changed camera keeps its own viewers (the stream outlives the source); a deleted one stops feeding them.
func TestRuntimeChangesLeaveOthersPlaying(t *testing.T) {
	asset := testenv.Asset(t, "camera/cam_street_1280x720_25fps.h264")
	g, _ := startGatewayYAML(t, authConfig+fmt.Sprintf("api: {mediaDir: %s}\ncameras: [{id: a, url: 'file://%s'}]\n",
		filepath.Dir(asset), asset))
	dial := func(cam string) *whepclient.Client {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := whepclient.Dial(ctx, "http://"+g.HTTPAddr()+"/whep/"+cam, whepclient.Options{LoopbackOnly: true, Token: tokViewer})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		nextFrame(t, c, 5*time.Second)
		return c
	}
	va := dial("a")
	// Count a's frames in the background: it must never stall while b is changed.
	var mu sync.Mutex
	var gaps []time.Duration
	last := time.Now()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case _, ok := <-va.Frames():
				if !ok {
					return
				}
				mu.Lock()
				gaps = append(gaps, time.Since(last))
				last = time.Now()
				mu.Unlock()
			}
		}
	}()
	const js = "application/json"
	if code, m, _ := apiDo(t, g, "POST", "/api/v1/cameras", tokAdmin, js, `{"id":"b","url":"file://`+asset+`"}`); code != 201 {
		t.Fatalf("create: %d %v", code, m)
	}
	vb := dial("b")
	if code, m, _ := apiDo(t, g, "PUT", "/api/v1/cameras/b", tokAdmin, js, `{"url":"file://`+asset+`","readTimeout":"3s"}`); code != 200 || m["readTimeout"] != "3s" {
		t.Fatalf("update: %d %v", code, m)
	}
	nextFrame(t, vb, 5*time.Second) // b's viewer survives the change of source
	if code, _, _ := apiDo(t, g, "DELETE", "/api/v1/cameras/b", tokAdmin, "", ""); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	// b's sessions ended with the DELETE (webrtc.Server.CloseCamera): the server forgot them before
	// answering, the viewer gets nothing more, and nobody can join b.
	if n := g.rtc.Viewers("b"); n != 0 {
		t.Fatalf("b still has %d WebRTC sessions right after DELETE", n)
	}
	loc, err := url.Parse(vb.Location())
	if err != nil {
		t.Fatal(err)
	}
	if code, _, _ := apiDo(t, g, "DELETE", loc.Path, tokViewer, "", ""); code != 404 {
		t.Fatalf("DELETE of b's session after the camera was deleted: %d, want 404", code)
	}
	for quiet := false; !quiet; {
		select {
		case <-vb.Frames():
		case <-time.After(time.Second):
			quiet = true
		}
	}
	if code, _, _ := apiDo(t, g, "POST", "/whep/b", tokViewer, "application/sdp", "v=0\r\n"); code != 404 {
		t.Fatalf("WHEP on a deleted camera: %d, want 404", code)
	}
	close(stop)
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(gaps) < 10 {
		t.Fatalf("camera a delivered only %d frames meanwhile", len(gaps))
	}
	for i, d := range gaps {
		if d > 2*time.Second {
			t.Fatalf("camera a stalled %v (frame %d) while b was changed", d, i)
		}
	}
	if g.rtc.Viewers("a") != 1 {
		t.Fatalf("a's viewer gone")
	}
}

// limits.maxSessionsPerCamera: the camera's next viewer gets 503 while another camera still accepts.
func TestMaxSessionsPerCamera(t *testing.T) {
	asset := testenv.Asset(t, "camera/cam_street_1280x720_25fps.h264")
	g, _ := startGatewayYAML(t, "http: {listen: '127.0.0.1:0'}\n"+noAuth+fmt.Sprintf(
		"limits: {maxSessionsPerCamera: 1}\ncameras: [{id: a, url: 'file://%s'}, {id: b, url: 'file://%s'}]\n", asset, asset))
	dialViewer(t, g, "a")
	code, m, _ := apiDo(t, g, "POST", "/whep/a", "", "application/sdp", "v=0\r\n")
	if code != 503 || m["code"] != "too_many_sessions" {
		t.Fatalf("second viewer of a: %d %v", code, m)
	}
	dialViewer(t, g, "b")
}

// With no http.allowOrigins (the default) no CORS header goes out: other origins cannot read answers.
func TestCORSSameOriginByDefault(t *testing.T) {
	g, _ := startGateway(t, "")
	req, _ := http.NewRequest(http.MethodGet, "http://"+g.HTTPAddr()+"/api/v1/cameras", nil)
	req.Header.Set("Origin", "https://elsewhere.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "" {
		t.Fatalf("Access-Control-Allow-Origin %q by default", v)
	}
}

func TestClientIPBehindTrustedProxies(t *testing.T) {
	ps := newProxies([]string{"10.0.0.0/8", "127.0.0.1"})
	for _, c := range []struct {
		peer string
		xff  []string
		want string
	}{
		{"203.0.113.9:5000", []string{"198.51.100.1"}, "203.0.113.9"},                   // untrusted peer: header ignored
		{"127.0.0.1:5000", nil, "127.0.0.1"},                                            // trusted, no header
		{"127.0.0.1:5000", []string{"198.51.100.1"}, "198.51.100.1"},                    // one proxy
		{"127.0.0.1:5000", []string{"6.6.6.6, 198.51.100.1, 10.1.2.3"}, "198.51.100.1"}, // chain: nearest untrusted
		{"127.0.0.1:5000", []string{"6.6.6.6", "198.51.100.1"}, "198.51.100.1"},         // several headers
		{"127.0.0.1:5000", []string{"10.0.0.1, 10.0.0.2"}, "127.0.0.1"},                 // only proxies
		{"127.0.0.1:5000", []string{"198.51.100.1, not-an-ip"}, "127.0.0.1"},            // malformed nearest hop
		{"[::ffff:127.0.0.1]:5000", []string{"2001:db8::1"}, "2001:db8::1"},             // v4-mapped peer
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.peer
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := ps.clientIP(r); got != c.want {
			t.Errorf("peer %s, X-Forwarded-For %q: %s, want %s", c.peer, c.xff, got, c.want)
		}
	}
	if got := proxies(nil).clientIP(&http.Request{RemoteAddr: "127.0.0.1:1", Header: http.Header{"X-Forwarded-For": {"1.2.3.4"}}}); got != "127.0.0.1" {
		t.Errorf("no trusted proxies: %s", got)
	}
}

// Behind a trusted proxy each forwarded client has its own rate-limit bucket.
func TestRateLimitsBehindTrustedProxy(t *testing.T) {
	g, _ := startGatewayYAML(t, "http: {listen: '127.0.0.1:0', trustedProxies: [127.0.0.1]}\n"+noAuth+
		"limits: {apiRate: 0.001, apiBurst: 2}\n")
	get := func(client string) int {
		req, _ := http.NewRequest("GET", "http://"+g.HTTPAddr()+"/api/v1/cameras", nil)
		req.Header.Set("X-Forwarded-For", client)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i, want := range []int{200, 200, 429} {
		if code := get("198.51.100.1"); code != want {
			t.Fatalf("client 1 request %d: %d, want %d", i, code, want)
		}
	}
	if code := get("198.51.100.2"); code != 200 {
		t.Fatalf("another client behind the same proxy: %d, want 200 (own bucket)", code)
	}
}
