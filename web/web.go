// Package web owns the browser UI (camera grid and WHEP player), embedded as plain ES modules and CSS
// with no build step; it serves static files only and must never talk to cameras or peers itself.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// contentTypes pins the types of the files the UI ships, so that they do not depend on the host's
// /etc/mime.types (module scripts must be served as JavaScript or the browser refuses them).
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".ico":  "image/x-icon",
}

type file struct {
	data        []byte
	etag        string
	contentType string
}

// Handler serves the UI: "/" is index.html, other paths are files under web/static. Missing files and
// folders answer 404; only GET and HEAD are allowed. Files carry a content-hash ETag and must be
// revalidated, so a new binary never leaves a browser on a stale script.
func Handler() http.Handler {
	files := map[string]file{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		ct := contentTypes[path.Ext(p)]
		if ct == "" {
			ct = http.DetectContentType(data)
		}
		files[strings.TrimPrefix(p, "static/")] = file{
			data:        data,
			etag:        `"` + hex.EncodeToString(sum[:8]) + `"`,
			contentType: ct,
		}
		return nil
	})
	if err != nil {
		panic("web: read embedded static files: " + err.Error()) // a build defect, never input
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		if name == "" {
			name = "index.html"
		}
		f, ok := files[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", f.contentType)
		h.Set("ETag", f.etag)
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.data))
	})
}
