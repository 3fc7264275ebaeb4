package webrtc

// The signaling WebSocket's Origin check (Config.AllowOrigins), so the package is safe to mount without
// the gateway's own check in front of it.

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/coder/websocket"
)

// checkAllowOrigins validates Config.AllowOrigins: "*" or origins like "https://host[:port]".
func checkAllowOrigins(origins []string) error {
	for i, o := range origins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") ||
			u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return fmt.Errorf("webrtc: AllowOrigins[%d] %q is not an origin like https://example.com or \"*\"", i, o)
		}
	}
	return nil
}

// acceptOptions are the websocket.Accept options for cfg: "*" skips the check; otherwise the request's
// own host plus every listed origin (scheme and host, matched literally).
func acceptOptions(origins []string) *websocket.AcceptOptions {
	if slices.Contains(origins, "*") {
		return &websocket.AcceptOptions{InsecureSkipVerify: true}
	}
	opts := &websocket.AcceptOptions{}
	for _, o := range origins {
		u, err := url.Parse(o)
		if err != nil {
			continue // refused by checkAllowOrigins
		}
		// A pattern with "://" is matched (path.Match) against "scheme://host" of the Origin; escape the
		// match syntax so an IPv6 host's brackets are literal.
		opts.OriginPatterns = append(opts.OriginPatterns, escapeMatch(strings.ToLower(u.Scheme)+"://"+strings.ToLower(u.Host)))
	}
	return opts
}

func escapeMatch(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// originAllowed mirrors websocket.Accept's check, so that a refusal can be answered in the API's error
// shape: no Origin (not a browser), the request's own host, an allowed origin, or "*".
func originAllowed(r *http.Request, origins []string) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || slices.Contains(origins, "*") {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, o := range origins {
		a, err := url.Parse(o)
		if err == nil && strings.EqualFold(a.Scheme, u.Scheme) && strings.EqualFold(a.Host, u.Host) {
			return true
		}
	}
	return false
}
