package gateway

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"

	"sightline/media"
	"sightline/rtsp"
	"sightline/web"
)

// routes builds the HTTP surface. Every route gets CORS and panic recovery.
func (g *Gateway) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", web.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !g.ready.Load() {
			writeError(w, http.StatusServiceUnavailable, "not_ready", "listeners are not up yet")
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.HandleFunc("GET /api/v1/cameras", g.listCameras)
	mux.HandleFunc("GET /api/v1/cameras/{id}", g.getCamera)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no API route "+r.Method+" "+r.URL.Path)
	})
	g.rtc.Register(mux)
	return g.recoverPanics(g.cors(mux))
}

// cameraView is a camera as the API returns it: credentials are never included.
type cameraView struct {
	ID        string             `json:"id"`
	URL       string             `json:"url"`
	Transport string             `json:"transport"`
	Enabled   bool               `json:"enabled"`
	Viewers   int                `json:"viewers"`
	Status    media.SourceStatus `json:"status"`
}

func (g *Gateway) view(c *camera) cameraView {
	return cameraView{
		ID:        c.cfg.ID,
		URL:       rtsp.Redact(c.cfg.URL),
		Transport: c.cfg.Transport,
		Enabled:   c.cfg.IsEnabled(),
		Viewers:   g.rtc.Viewers(c.cfg.ID),
		Status:    c.status(),
	}
}

func (g *Gateway) listCameras(w http.ResponseWriter, r *http.Request) {
	cams := g.cameras.list()
	out := make([]cameraView, 0, len(cams))
	for _, c := range cams {
		out = append(out, g.view(c))
	}
	writeJSON(w, http.StatusOK, map[string]any{"cameras": out})
}

func (g *Gateway) getCamera(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	c, ok := g.cameras.get(id)
	if !ok {
		writeError(w, http.StatusNotFound, "unknown_camera", "no camera with id "+quote(id))
		return
	}
	writeJSON(w, http.StatusOK, g.view(c))
}

// cors answers preflights and adds CORS headers for allowed origins. WHEP players live on other
// origins and need Location, ETag and Link exposed (../shared/testing/WHEP.md).
func (g *Gateway) cors(next http.Handler) http.Handler {
	allowAll := slices.Contains(g.cfg.HTTP.AllowOrigins, "*")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin != "" && (allowAll || slices.Contains(g.cfg.HTTP.AllowOrigins, origin)) {
			h := w.Header()
			if allowAll {
				h.Set("Access-Control-Allow-Origin", "*")
			} else {
				h.Set("Access-Control-Allow-Origin", origin)
				h.Add("Vary", "Origin")
			}
			h.Set("Access-Control-Expose-Headers", "Location, ETag, Link, Accept-Patch, Accept-Post")
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				h.Set("Access-Control-Allow-Methods", "GET, POST, PATCH, DELETE, OPTIONS")
				h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization, If-Match")
				h.Set("Access-Control-Max-Age", "600")
				// WHEP preflights also carry the ICE server Link headers (RFC 9725 §4.6): let the
				// WHEP handler answer OPTIONS on its own routes.
				if !strings.HasPrefix(r.URL.Path, "/whep/") {
					w.WriteHeader(http.StatusNoContent)
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (g *Gateway) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				g.log.Error("handler panic", "method", r.Method, "path", r.URL.Path, "panic", v,
					"stack", string(debug.Stack()))
				writeError(w, http.StatusInternalServerError, "internal", "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		slog.Debug("write json response", "err", err)
	}
}

// writeError writes the API's error shape {"error": "...", "code": "..."}.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error": msg, "code": code})
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
