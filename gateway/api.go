package gateway

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"

	"sightline/rtsp"
)

//go:embed openapi.json
var openAPIDoc []byte

func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIDoc)
}

// apiError is an error answer: status, machine code, message, and the field at fault when there is one.
type apiError struct {
	status int
	code   string
	msg    string
	field  string
}

func (e *apiError) write(w http.ResponseWriter) {
	body := map[string]string{"error": e.msg, "code": e.code}
	if e.field != "" {
		body["field"] = e.field
	}
	writeJSON(w, e.status, body)
}

// decodeCamera reads a camera JSON body: application/json only (415), at most limits.maxBodyBytes
// (413), well-formed with known fields only (400), and valid by the config rules (422, naming the
// field). Messages never echo credentials.
func (g *Gateway) decodeCamera(w http.ResponseWriter, r *http.Request) (CameraConfig, *apiError) {
	var c CameraConfig
	body, e := g.readJSONBody(w, r)
	if e != nil {
		return c, e
	}
	if e := decodeCameraJSON(body, &c); e != nil {
		return c, e
	}
	return c, nil
}

// decodeJSONBody reads a JSON body into v as decodeCamera does; known lists v's fields for the
// unknown-field message.
func (g *Gateway) decodeJSONBody(w http.ResponseWriter, r *http.Request, v any, known string) *apiError {
	body, e := g.readJSONBody(w, r)
	if e != nil {
		return e
	}
	return decodeStrictJSON(body, v, known)
}

// readJSONBody checks the Content-Type (415) and reads at most limits.maxBodyBytes (413).
func (g *Gateway) readJSONBody(w http.ResponseWriter, r *http.Request) ([]byte, *apiError) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, &apiError{http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json", ""}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.cfg.Limits.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &apiError{http.StatusRequestEntityTooLarge, "body_too_large",
				fmt.Sprintf("request body exceeds %d bytes (limits.maxBodyBytes)", g.cfg.Limits.MaxBodyBytes), ""}
		}
		return nil, &apiError{http.StatusBadRequest, "bad_request", "read request body: " + err.Error(), ""}
	}
	return body, nil
}

// decodeCameraJSON parses a camera body strictly: one object, no unknown fields.
func decodeCameraJSON(body []byte, c *CameraConfig) *apiError {
	return decodeStrictJSON(body, c, "id, url, transport, enabled, username, password, readTimeout, tlsInsecure, rules")
}

// decodeStrictJSON parses one JSON object into v with no unknown fields (known names v's fields).
func decodeStrictJSON(body []byte, v any, known string) *apiError {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			return &apiError{http.StatusBadRequest, "bad_json", fmt.Sprintf("%s: want a JSON %s", te.Field, te.Type), te.Field}
		case errors.As(err, &se), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return &apiError{http.StatusBadRequest, "bad_json", "request body is not a JSON object", ""}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return &apiError{http.StatusBadRequest, "bad_json", "unknown field " + quote(f) + " (known: " + known + ")", f}
		default:
			// Errors from Duration.UnmarshalJSON and the like: the value was readable but wrong.
			return &apiError{http.StatusUnprocessableEntity, "invalid_value", err.Error(), ""}
		}
	}
	if dec.More() {
		return &apiError{http.StatusBadRequest, "bad_json", "request body has data after the JSON object", ""}
	}
	return nil
}

// checkCamera applies the config's camera rules and the API's URL policy.
func (g *Gateway) checkCamera(r *http.Request, c *CameraConfig) *apiError {
	*c = withCameraDefaults(*c)
	for _, check := range []func() error{
		func() error { return g.cfg.validateCamera(c, "") },
		func() error { return g.cfg.checkAPICamera(r.Context(), *c) },
	} {
		if err := check(); err != nil {
			var ce *ConfigError
			if errors.As(err, &ce) {
				return &apiError{http.StatusUnprocessableEntity, "invalid_value", ce.Error(), ce.Key}
			}
			return &apiError{http.StatusUnprocessableEntity, "invalid_value", err.Error(), ""}
		}
	}
	return nil
}

// change runs one API change: the new state is saved first (atomically), then applied; if applying
// fails the old state is saved back. g.stateMu serializes changes.
func (g *Gateway) change(edit func(*runtimeState), apply func() error) *apiError {
	if !g.ready.Load() {
		return &apiError{http.StatusServiceUnavailable, "unavailable", "the server is not running (starting or shutting down)", ""}
	}
	next := g.state.clone()
	edit(next)
	if err := next.save(g.statePath); err != nil {
		g.log.Error("save runtime state", "state_file", g.statePath, "err", err)
		return &apiError{http.StatusServiceUnavailable, "state_not_saved", "could not save the change; nothing was changed", ""}
	}
	if err := apply(); err != nil {
		if rerr := g.state.save(g.statePath); rerr != nil {
			g.log.Error("restore runtime state", "state_file", g.statePath, "err", rerr)
		}
		switch {
		case errors.Is(err, errCameraExists):
			return &apiError{http.StatusConflict, "camera_exists", rtsp.Redact(err.Error()), "id"}
		case errors.Is(err, errNoCamera):
			return &apiError{http.StatusNotFound, "unknown_camera", err.Error(), ""}
		}
		return &apiError{http.StatusInternalServerError, "internal", rtsp.Redact(err.Error()), ""}
	}
	g.state = next
	return nil
}

func (g *Gateway) createCamera(w http.ResponseWriter, r *http.Request) {
	c, e := g.decodeCamera(w, r)
	if e == nil {
		e = g.checkCamera(r, &c)
	}
	if e != nil {
		e.write(w)
		return
	}
	g.stateMu.Lock()
	defer g.stateMu.Unlock()
	if _, ok := g.cameras.get(c.ID); ok {
		(&apiError{http.StatusConflict, "camera_exists", "a camera with id " + quote(c.ID) + " already exists", "id"}).write(w)
		return
	}
	if e := g.change(func(st *runtimeState) { st.upsert(c) }, func() error { return g.cameras.add(c, false) }); e != nil {
		e.write(w)
		return
	}
	g.log.Info("camera created", "camera", c.ID, "url", rtsp.Redact(c.URL))
	cam, _ := g.cameras.get(c.ID)
	w.Header().Set("Location", "/api/v1/cameras/"+c.ID)
	writeJSON(w, http.StatusCreated, g.view(cam))
}

func (g *Gateway) updateCamera(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	c, e := g.decodeCamera(w, r)
	if e != nil {
		e.write(w)
		return
	}
	if c.ID == "" {
		c.ID = id
	}
	if c.ID != id {
		(&apiError{http.StatusUnprocessableEntity, "invalid_value", "id: the body's id differs from the path's; a camera's id cannot change", "id"}).write(w)
		return
	}
	g.stateMu.Lock()
	defer g.stateMu.Unlock()
	cam, ok := g.cameras.get(id)
	if !ok {
		writeError(w, http.StatusNotFound, "unknown_camera", "no camera with id "+quote(id))
		return
	}
	old, _, _ := g.cameras.snapshot(cam)
	// The API never returns credentials, so a client that sends back the redacted URL or omits the
	// password keeps the stored ones.
	if c.URL == rtsp.Redact(old.URL) {
		c.URL = old.URL
	}
	if c.Password == "" && c.Username != "" && c.Username == old.Username {
		c.Password = old.Password
	}
	if e := g.checkCamera(r, &c); e != nil {
		e.write(w)
		return
	}
	if e := g.change(func(st *runtimeState) { st.upsert(c) }, func() error { return g.cameras.replace(c) }); e != nil {
		e.write(w)
		return
	}
	g.log.Info("camera updated", "camera", id, "url", rtsp.Redact(c.URL))
	writeJSON(w, http.StatusOK, g.view(cam))
}

func (g *Gateway) deleteCamera(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	g.stateMu.Lock()
	defer g.stateMu.Unlock()
	if _, ok := g.cameras.get(id); !ok {
		writeError(w, http.StatusNotFound, "unknown_camera", "no camera with id "+quote(id))
		return
	}
	inFile := slices.ContainsFunc(g.cfg.Cameras, func(c CameraConfig) bool { return c.ID == id })
	if e := g.change(func(st *runtimeState) { st.remove(id, inFile) }, func() error { return g.cameras.remove(id) }); e != nil {
		e.write(w)
		return
	}
	g.rtc.CloseCamera(id) // its viewers end now, not when they notice the stream went quiet
	if g.analytics != nil {
		g.analytics.metrics.Forget(id) // its stage histograms and counters leave /metrics with it
	}
	g.log.Info("camera deleted", "camera", id)
	w.WriteHeader(http.StatusNoContent)
}

func (g *Gateway) startCamera(w http.ResponseWriter, r *http.Request) { g.setStopped(w, r, false) }
func (g *Gateway) stopCamera(w http.ResponseWriter, r *http.Request)  { g.setStopped(w, r, true) }

func (g *Gateway) setStopped(w http.ResponseWriter, r *http.Request, stopped bool) {
	id := r.PathValue("id")
	g.stateMu.Lock()
	defer g.stateMu.Unlock()
	cam, ok := g.cameras.get(id)
	if !ok {
		writeError(w, http.StatusNotFound, "unknown_camera", "no camera with id "+quote(id))
		return
	}
	if e := g.change(func(st *runtimeState) { st.setStopped(id, stopped) }, func() error { return g.cameras.setStopped(id, stopped) }); e != nil {
		e.write(w)
		return
	}
	g.log.Info("camera switched", "camera", id, "stopped", stopped)
	writeJSON(w, http.StatusOK, g.view(cam))
}
