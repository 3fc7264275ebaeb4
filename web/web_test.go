package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func TestHandlerServesFiles(t *testing.T) {
	h := Handler()
	tests := []struct {
		path, contentType, contains string
	}{
		{"/", "text/html; charset=utf-8", `<script type="module" src="app.js"></script>`},
		{"/index.html", "text/html; charset=utf-8", "<title>Sightline</title>"},
		{"/app.js", "text/javascript; charset=utf-8", "window.sightline"},
		{"/player.js?v=meta", "text/javascript; charset=utf-8", "pc.createDataChannel('meta')"},
		{"/index.html?v=overlay", "text/html; charset=utf-8", `<canvas class="overlay"`},
		{"/index.html?v=alerts", "text/html; charset=utf-8", `id="alert-list"`},
		{"/common.js", "text/javascript; charset=utf-8", "export function withAuth"},
		{"/player.js", "text/javascript; charset=utf-8", "export class Player"},
		{"/overlay.js", "text/javascript; charset=utf-8", "export function drawOverlay"},
		{"/alerts.js", "text/javascript; charset=utf-8", "export class AlertFeed"},
		{"/style.css", "text/css; charset=utf-8", ".tile"},
		{"/publish.html", "text/html; charset=utf-8", `<script type="module" src="publish.js"></script>`},
		{"/publish.js", "text/javascript; charset=utf-8", "window.sightlinePublish"},
		{"/index.html?v=publish", "text/html; charset=utf-8", `href="publish.html"`},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			res := get(t, h, http.MethodGet, tc.path, nil)
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", res.StatusCode)
			}
			if got := res.Header.Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type %q, want %q", got, tc.contentType)
			}
			if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options %q, want nosniff", got)
			}
			if !strings.Contains(string(body), tc.contains) {
				t.Errorf("body does not contain %q", tc.contains)
			}
		})
	}
}

func TestHandlerNotFound(t *testing.T) {
	h := Handler()
	for _, p := range []string{"/missing.js", "/static/app.js", "/../web.go", "/api/v1/cameras", "/index.html/x"} {
		res := get(t, h, http.MethodGet, p, nil)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", p, res.StatusCode)
		}
	}
}

func TestHandlerMethodsAndRevalidation(t *testing.T) {
	h := Handler()
	res := get(t, h, http.MethodPost, "/", nil)
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: status %d Allow %q, want 405 with Allow", res.StatusCode, res.Header.Get("Allow"))
	}
	res = get(t, h, http.MethodHead, "/app.js", nil)
	if res.StatusCode != http.StatusOK {
		t.Errorf("HEAD /app.js: status %d", res.StatusCode)
	}
	etag := res.Header.Get("ETag")
	if etag == "" || res.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("want ETag and Cache-Control: no-cache, got %q %q", etag, res.Header.Get("Cache-Control"))
	}
	res = get(t, h, http.MethodGet, "/app.js", map[string]string{"If-None-Match": etag})
	if res.StatusCode != http.StatusNotModified {
		t.Errorf("conditional GET: status %d, want 304", res.StatusCode)
	}
}
