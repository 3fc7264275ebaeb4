package gateway

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"

	"sightline/analytics/pipeline"
	"sightline/analytics/rules"
	"sightline/auth"
	"sightline/media"
	"sightline/overlay"
	"sightline/rtsp"
	"sightline/web"
	"sightline/webrtc"
)

// route is one entry of the HTTP surface: its mux pattern, what it needs, and its handler (nil for the
// routes webrtc.Server.Register adds). The OpenAPI document is tested against this table.
type route struct {
	pattern string
	policy  policy
	handler http.HandlerFunc
}

var (
	public   = policy{}
	viewer   = policy{role: auth.RoleViewer, limit: limitAPI}
	operator = policy{role: auth.RoleOperator, limit: limitAPI}
	admin    = policy{role: auth.RoleAdmin, limit: limitAPI}
	whepNew  = policy{role: auth.RoleViewer, limit: limitWHEP}
	whepSess = policy{role: auth.RoleViewer}
	// A WHIP publisher changes what every viewer of its camera sees: operators only.
	whipNew  = policy{role: auth.RoleOperator, limit: limitWHEP}
	whipSess = policy{role: auth.RoleOperator}
	wsSignal = policy{role: auth.RoleViewer, limit: limitWHEP, ws: true}
	wsFeed   = policy{role: auth.RoleViewer, limit: limitAPI, ws: true}
)

// routeTable lists every route. Order does not matter (Go 1.22 patterns pick the most specific).
func (g *Gateway) routeTable() []route {
	return []route{
		{"/", public, web.Handler().ServeHTTP},
		{"GET /healthz", public, g.healthz},
		{"GET /readyz", public, g.readyz},
		{"GET /metrics", viewer, g.metrics.Handler().ServeHTTP},
		{"GET /api/v1/openapi.json", public, serveOpenAPI},
		{"GET /api/v1/whoami", viewer, g.whoami},
		{"GET /api/v1/cameras", viewer, g.listCameras},
		{"POST /api/v1/cameras", admin, g.createCamera},
		{"GET /api/v1/cameras/{id}", viewer, g.getCamera},
		{"PUT /api/v1/cameras/{id}", admin, g.updateCamera},
		{"DELETE /api/v1/cameras/{id}", admin, g.deleteCamera},
		{"POST /api/v1/cameras/{id}/start", operator, g.startCamera},
		{"POST /api/v1/cameras/{id}/stop", operator, g.stopCamera},
		{"GET /api/v1/cameras/{id}/info", viewer, g.cameraInfo},
		{"GET /api/v1/cameras/{id}/frame.jpg", viewer, g.frameJPEG},
		{"GET /api/v1/hw-accel-cap", viewer, g.hwAccelCap},
		{"POST /api/v1/probe", operator, g.probe},
		{"GET /api/v1/events", viewer, g.listEvents},
		{"GET /api/v1/events/{id}", viewer, g.getEvent},
		{"GET /api/v1/events/{id}/snapshot.jpg", viewer, g.eventSnapshot},
		{"GET /api/v1/alerts/sinks", viewer, g.listSinks},
		{"GET /ws/meta", wsFeed, g.wsMeta},
		{"GET /ws/alerts", wsFeed, g.wsAlerts},
		{"/api/", viewer, func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, "not_found", "no API route "+r.Method+" "+r.URL.Path)
		}},
		// Registered by webrtc.Server.Register.
		{"POST /whep/{camera}", whepNew, nil},
		{"POST /whep/{camera}/annotated", whepNew, nil},
		{"OPTIONS /whep/{camera}", public, nil},
		{"OPTIONS /whep/{camera}/annotated", public, nil},
		{"PATCH /whep/{camera}/sessions/{id}", whepSess, nil},
		{"DELETE /whep/{camera}/sessions/{id}", whepSess, nil},
		{"OPTIONS /whep/{camera}/sessions/{id}", public, nil},
		{"GET /ws/signal", wsSignal, nil},
		{"POST /whip/{camera}", whipNew, nil},
		{"OPTIONS /whip/{camera}", public, nil},
		{"PATCH /whip/{camera}/sessions/{id}", whipSess, nil},
		{"DELETE /whip/{camera}/sessions/{id}", whipSess, nil},
		{"OPTIONS /whip/{camera}/sessions/{id}", public, nil},
	}
}

// routes builds the HTTP surface: panic recovery, then CORS (so refusals are readable cross-origin),
// then the guard (rate limit, auth, deadlines, logs, metrics), then the mux.
func (g *Gateway) routes() http.Handler {
	g.mux = http.NewServeMux()
	g.policies = map[string]policy{}
	for _, rt := range g.routeTable() {
		g.policies[rt.pattern] = rt.policy
		if rt.handler != nil {
			g.mux.HandleFunc(rt.pattern, rt.handler)
		}
	}
	g.rtc.Register(g.mux)
	return g.recoverPanics(g.cors(g.guard(g.mux)))
}

func (g *Gateway) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (g *Gateway) readyz(w http.ResponseWriter, r *http.Request) {
	if !g.ready.Load() {
		writeError(w, http.StatusServiceUnavailable, "not_ready", "listeners are not up yet")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// whoami tells a client which role its token grants (the UI uses it to show or hide controls).
func (g *Gateway) whoami(w http.ResponseWriter, r *http.Request) {
	role := auth.RoleAdmin
	if g.auth != nil {
		tok, _ := auth.FromRequest(r)
		role, _ = g.auth.Authenticate(tok) // the guard already accepted it
	}
	writeJSON(w, http.StatusOK, map[string]any{"role": role.String(), "auth": g.auth != nil})
}

// cameraView is a camera as the API returns it: credentials are never included.
type cameraView struct {
	ID          string   `json:"id"`
	URL         string   `json:"url"`
	Transport   string   `json:"transport"`
	Enabled     bool     `json:"enabled"`
	Stopped     bool     `json:"stopped"`
	ReadTimeout Duration `json:"readTimeout"`
	TLSInsecure bool     `json:"tlsInsecure,omitempty"`
	// Viewers counts the camera's WebRTC sessions (all variants); ViewersRaw and ViewersAnnotated split
	// them by track.
	Viewers          int                `json:"viewers"`
	ViewersRaw       int                `json:"viewersRaw"`
	ViewersAnnotated int                `json:"viewersAnnotated"`
	Status           media.SourceStatus `json:"status"`
	Rules            []rules.Config     `json:"rules,omitempty"`
	// Analytics is the camera's analytics status (absent when analytics is off or the camera disabled).
	Analytics *pipeline.Status `json:"analytics,omitempty"`
	// Annotated is what the camera's annotated track is doing (it runs only while watched).
	Annotated overlay.Stats `json:"annotated"`
}

// viewerCounts returns the WebRTC sessions per camera and variant.
func (g *Gateway) viewerCounts() map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, s := range g.rtc.Stats() {
		if n := s.Sessions.Total(); n > 0 {
			if out[s.Camera] == nil {
				out[s.Camera] = map[string]int{}
			}
			out[s.Camera][s.Variant] += n
		}
	}
	return out
}

func (g *Gateway) view(c *camera) cameraView { return g.viewWith(c, g.viewerCounts()) }

// viewWith builds c's view with per-variant viewer counts from viewerCounts.
func (g *Gateway) viewWith(c *camera, viewers map[string]map[string]int) cameraView {
	cfg, stopped, st := g.cameras.snapshot(c)
	return cameraView{
		ID:               cfg.ID,
		URL:              rtsp.Redact(cfg.URL),
		Transport:        cfg.Transport,
		Enabled:          cfg.IsEnabled(),
		Stopped:          stopped,
		ReadTimeout:      cfg.ReadTimeout,
		TLSInsecure:      cfg.TLSInsecure,
		Viewers:          g.rtc.Viewers(cfg.ID),
		ViewersRaw:       viewers[cfg.ID][webrtc.VariantRaw],
		ViewersAnnotated: viewers[cfg.ID][webrtc.VariantAnnotated],
		Status:           st,
		Rules:            cfg.Rules,
		Analytics:        g.cameras.analyticsStatus(c),
		Annotated:        g.cameras.annotatorStats(c),
	}
}

func (g *Gateway) listCameras(w http.ResponseWriter, r *http.Request) {
	cams := g.cameras.list()
	out := make([]cameraView, 0, len(cams))
	viewers := g.viewerCounts()
	for _, c := range cams {
		out = append(out, g.viewWith(c, viewers))
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
// With no http.allowOrigins (the default) no CORS header is sent: only same-origin pages may call.
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
				// WHEP and WHIP preflights also carry the ICE server Link headers (RFC 9725 §4.6):
				// let their handlers answer OPTIONS on their own routes.
				if !strings.HasPrefix(r.URL.Path, "/whep/") && !strings.HasPrefix(r.URL.Path, "/whip/") {
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
