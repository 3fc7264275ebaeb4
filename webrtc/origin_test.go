package webrtc

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The signaling socket takes the same origins as the gateway's http.allowOrigins: none listed means the
// server's own host only, listed origins match scheme and host exactly, "*" allows any. Refusals are
// 403 origin_not_allowed; requests without Origin (not browsers) pass.
func TestSignalOrigin(t *testing.T) {
	checkGoroutines(t)
	cases := []struct {
		allow  []string
		origin string
		ok     bool
	}{
		{nil, "", true},
		{nil, "same", true},
		{nil, "https://evil.example", false},
		{nil, "null", false},
		{[]string{"https://player.example"}, "https://player.example", true},
		{[]string{"https://player.example"}, "https://PLAYER.example", true},
		{[]string{"https://player.example"}, "http://player.example", false},
		{[]string{"https://player.example"}, "https://player.example:8443", false},
		{[]string{"https://player.example"}, "https://sub.player.example", false},
		{[]string{"http://[::1]:9000"}, "http://[::1]:9000", true},
		{[]string{"http://[::1]:9000"}, "http://[::2]:9000", false},
		{[]string{"*"}, "https://anything.example", true},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.allow, ",")+"|"+tc.origin, func(t *testing.T) {
			env := newTestEnv(t, Config{AllowOrigins: tc.allow}, "cam1")
			origin := tc.origin
			if origin == "same" {
				origin = env.http.URL
			}
			h := http.Header{}
			if origin != "" {
				h.Set("Origin", origin)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ws, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(env.http.URL, "http")+"/ws/signal",
				&websocket.DialOptions{HTTPClient: env.client, HTTPHeader: h})
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				ws.CloseNow()
				return
			}
			if err == nil {
				ws.CloseNow()
				t.Fatal("accepted")
			}
			if resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("refusal: %v %v", resp, err)
			}
		})
	}
}

// websocket.Accept itself gets the origins (OriginPatterns), so the check holds without the pre-check.
func TestAcceptOptionsOrigins(t *testing.T) {
	opts := acceptOptions([]string{"https://player.example", "http://[::1]:9000"})
	for origin, ok := range map[string]bool{
		"https://player.example": true, "http://player.example": false, "https://evil.example": false,
		"http://[::1]:9000": true, "http://[::1]:9001": false, "http://sightline.local": true,
	} {
		req := httptest.NewRequest("GET", "http://sightline.local/ws/signal", nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		req.Header.Set("Origin", origin)
		rec := httptest.NewRecorder()
		_, _ = websocket.Accept(rec, req, opts) // an accepted one fails later: the recorder cannot hijack
		if refused := rec.Code == http.StatusForbidden; refused == ok {
			t.Errorf("origin %s: status %d, want allowed %v", origin, rec.Code, ok)
		}
	}
	if err := checkAllowOrigins([]string{"https://ok.example", "*"}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"ok.example", "ftp://x", "https://x/path", "https://", "https://u:p@x"} {
		if err := checkAllowOrigins([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
