package webrtc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	pwebrtc "github.com/pion/webrtc/v4"
)

// maxBodyBytes caps WHEP request bodies (an SDP offer or a trickle fragment).
const maxBodyBytes = 64 << 10

const (
	contentTypeSDP     = "application/sdp"
	contentTypeTrickle = "application/trickle-ice-sdpfrag"
)

// Register adds the WHEP (RFC 9725) and WebSocket signaling routes to mux (Go 1.22 patterns):
//
//	POST    /whep/{camera}                 offer → 201 answer (variant raw)
//	POST    /whep/{camera}/annotated       offer → 201 answer (variant annotated)
//	PATCH   /whep/{camera}/sessions/{id}   trickle ICE (application/trickle-ice-sdpfrag) → 204
//	DELETE  /whep/{camera}/sessions/{id}   end the session → 204
//	OPTIONS on all of the above            Accept-Post / Allow and ICE server Link headers
//	GET     /ws/signal                     WebSocket signaling (see signal.go)
//	POST    /whip/{camera}                 WHIP publisher offer → 201 answer (see whip.go)
//	PATCH   /whip/{camera}/sessions/{id}   trickle ICE → 204
//	DELETE  /whip/{camera}/sessions/{id}   end the publisher session → 204
//	OPTIONS on the WHIP routes             as for WHEP
//
// CORS headers are the gateway's job (its middleware must expose Location, ETag and Link).
func (s *Server) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /whep/{camera}", s.handlePost(VariantRaw))
	mux.HandleFunc("POST /whep/{camera}/annotated", s.handlePost(VariantAnnotated))
	mux.HandleFunc("OPTIONS /whep/{camera}", s.handleOptionsEndpoint)
	mux.HandleFunc("OPTIONS /whep/{camera}/annotated", s.handleOptionsEndpoint)
	mux.HandleFunc("PATCH /whep/{camera}/sessions/{id}", s.handlePatch)
	mux.HandleFunc("DELETE /whep/{camera}/sessions/{id}", s.handleDelete)
	mux.HandleFunc("OPTIONS /whep/{camera}/sessions/{id}", s.handleOptionsSession)
	mux.HandleFunc("GET /ws/signal", s.handleSignal)
	mux.HandleFunc("POST /whip/{camera}", s.handleWHIPPost)
	mux.HandleFunc("OPTIONS /whip/{camera}", s.handleOptionsEndpoint)
	mux.HandleFunc("PATCH /whip/{camera}/sessions/{id}", s.handleWHIPPatch)
	mux.HandleFunc("DELETE /whip/{camera}/sessions/{id}", s.handleWHIPDelete)
	mux.HandleFunc("OPTIONS /whip/{camera}/sessions/{id}", s.handleOptionsSession)
}

// writeError writes {"error": msg, "code": code} with the error's status.
func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": e.msg, "code": e.code})
}

func asAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	return errf(http.StatusInternalServerError, "internal", "%v", err)
}

// checkContentType returns an error unless the request's media type is want.
func checkContentType(r *http.Request, want string) *apiError {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || !strings.EqualFold(mt, want) {
		return errf(http.StatusUnsupportedMediaType, "unsupported_media_type",
			"Content-Type must be %s, got %q", want, ct)
	}
	return nil
}

// readBody reads at most maxBodyBytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, *apiError) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errf(http.StatusRequestEntityTooLarge, "body_too_large", "request body exceeds %d bytes", maxBodyBytes)
		}
		return nil, errf(http.StatusBadRequest, "bad_request", "read request body: %v", err)
	}
	return body, nil
}

func sessionPath(camera, id string) string {
	return "/whep/" + url.PathEscape(camera) + "/sessions/" + id
}

func (s *Server) handlePost(variant string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		camera := r.PathValue("camera")
		offer, ok := readOffer(w, r)
		if !ok {
			return
		}
		sess, answer, err := s.createSession(r.Context(), sessionRequest{camera: camera, variant: variant, offer: offer})
		if err != nil {
			ae := asAPIError(err)
			s.log.Info("whep offer refused", "camera", camera, "variant", variant, "status", ae.status, "code", ae.code, "err", ae.msg)
			writeError(w, ae)
			return
		}
		s.writeAnswer(w, sessionPath(camera, sess.id), sess.etag, answer)
	}
}

// readOffer reads a POSTed SDP offer (WHEP or WHIP), answering the request itself when it cannot.
func readOffer(w http.ResponseWriter, r *http.Request) (string, bool) {
	if e := checkContentType(r, contentTypeSDP); e != nil {
		writeError(w, e)
		return "", false
	}
	body, e := readBody(w, r)
	if e != nil {
		writeError(w, e)
		return "", false
	}
	return string(body), true
}

// writeAnswer answers an accepted offer: 201 with the SDP answer, the session's Location and ETag, and
// the ICE server Link headers.
func (s *Server) writeAnswer(w http.ResponseWriter, location, etag, answer string) {
	h := w.Header()
	s.addLinkHeaders(h)
	h.Set("Content-Type", contentTypeSDP)
	h.Set("Location", location)
	h.Set("ETag", etag)
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer)
}

// addLinkHeaders advertises the configured ICE servers (RFC 9725 §4.6, RFC 8288 Link).
func (s *Server) addLinkHeaders(h http.Header) {
	for _, is := range s.cfg.ICEServers {
		for _, u := range is.URLs {
			v := "<" + u + `>; rel="ice-server"`
			if is.Username != "" || is.Credential != "" {
				v += fmt.Sprintf(`; username=%q; credential=%q; credential-type="password"`, is.Username, is.Credential)
			}
			h.Add("Link", v)
		}
	}
}

func (s *Server) handleOptionsEndpoint(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Accept-Post", contentTypeSDP)
	h.Set("Allow", "OPTIONS, POST")
	s.addLinkHeaders(h)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleOptionsSession(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Accept-Patch", contentTypeTrickle)
	h.Set("Allow", "OPTIONS, PATCH, DELETE")
	s.addLinkHeaders(h)
	w.WriteHeader(http.StatusNoContent)
}

// etagMatches implements If-Match (RFC 9110 §13.1.1): "*" or any listed tag equal to etag (weak
// prefixes ignored). An absent header matches, because several players never send it.
func etagMatches(header, etag string) bool {
	header = strings.TrimSpace(header)
	if header == "" || header == "*" {
		return true
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || strings.Trim(t, `"`) == strings.Trim(etag, `"`) {
			return true
		}
	}
	return false
}

// handlePatch adds trickled remote candidates (RFC 9725 §4.3.1, RFC 8840). ICE restarts (a fragment with
// a new ufrag, §4.3.2) are not supported and answer 501 Not Implemented.
func (s *Server) handlePatch(w http.ResponseWriter, r *http.Request) {
	sess := s.lookupSession(r.PathValue("camera"), r.PathValue("id"))
	if sess == nil {
		writeError(w, errf(http.StatusNotFound, "unknown_session", "no session %q for camera %q", r.PathValue("id"), r.PathValue("camera")))
		return
	}
	trickle(w, r, sess.etag, sess.remoteUfrag, func(c pwebrtc.ICECandidateInit) error { return s.addRemoteCandidate(sess, c) })
}

// trickle answers a PATCH of the session whose ETag is etag and whose remote ICE ufrag is remoteUfrag
// (a viewer's or a publisher's): it checks the request, parses the trickle-ice-sdpfrag body and hands
// each candidate to add; 204 with the ETag when all were added.
func trickle(w http.ResponseWriter, r *http.Request, etag, remoteUfrag string, add func(pwebrtc.ICECandidateInit) error) {
	if e := checkContentType(r, contentTypeTrickle); e != nil {
		writeError(w, e)
		return
	}
	if !etagMatches(r.Header.Get("If-Match"), etag) {
		writeError(w, errf(http.StatusPreconditionFailed, "etag_mismatch", "If-Match %q does not match the session's ETag %s", r.Header.Get("If-Match"), etag))
		return
	}
	body, e := readBody(w, r)
	if e != nil {
		writeError(w, e)
		return
	}
	frag, err := parseTrickleFrag(string(body))
	if err != nil {
		writeError(w, errf(http.StatusBadRequest, "malformed_sdpfrag", "parse trickle-ice-sdpfrag: %v", err))
		return
	}
	if frag.Ufrag != "" && remoteUfrag != "" && frag.Ufrag != remoteUfrag {
		writeError(w, errf(http.StatusNotImplemented, "ice_restart_unsupported", "ICE restart is not supported: start a new session"))
		return
	}
	for _, c := range frag.Candidates {
		mid, idx := c.Mid, c.MLineIndex
		init := pwebrtc.ICECandidateInit{Candidate: c.Candidate, SDPMLineIndex: &idx}
		if mid != "" {
			init.SDPMid = &mid
		}
		if err := add(init); err != nil {
			writeError(w, errf(http.StatusBadRequest, "malformed_candidate", "add candidate: %v", err))
			return
		}
	}
	w.Header().Set("ETag", etag)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	sess := s.lookupSession(r.PathValue("camera"), r.PathValue("id"))
	if sess == nil {
		writeError(w, errf(http.StatusNotFound, "unknown_session", "no session %q for camera %q", r.PathValue("id"), r.PathValue("camera")))
		return
	}
	s.closeSession(sess, "DELETE")
	w.WriteHeader(http.StatusNoContent)
}
