package webrtc

// WebSocket signaling (GET /ws/signal), for the web UI and any client that prefers one socket to WHEP.
// Messages are JSON text frames, one object each.
//
// Client → server:
//
//	{"type":"offer","camera":"demo","variant":"raw","sdp":"v=0..."}   start the socket's one session
//	                                                                   (variant "" means "raw")
//	{"type":"candidate","candidate":{"candidate":"candidate:...","sdpMid":"0","sdpMLineIndex":0}}
//	                                                                   a trickled remote candidate; an
//	                                                                   empty "candidate" ends them
//	{"type":"close"}                                                   end the session and the socket
//
// Server → client:
//
//	{"type":"answer","session":"<id>","sdp":"v=0..."}   sent before ICE gathering completes
//	{"type":"candidate","candidate":{...}}              trickled server candidates, always after the
//	                                                    answer; {"candidate":""} ends them
//	{"type":"error","code":"...","error":"..."}         codes as for WHEP (unknown_camera,
//	                                                    unsupported_codec, malformed_sdp, ...) plus
//	                                                    malformed_message, unknown_type, no_session,
//	                                                    session_exists; the socket stays usable
//	{"type":"close"}                                    the session ended (ICE failed, server closing)
//
// Closing the socket closes the session. One session per socket.

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
	pwebrtc "github.com/pion/webrtc/v4"
)

const (
	maxSignalMessage = 128 << 10
	signalWriteWait  = 5 * time.Second
	signalOutQueue   = 64
)

// signalMessage is every message of the protocol, in both directions.
type signalMessage struct {
	Type      string                    `json:"type"`
	Camera    string                    `json:"camera,omitempty"`
	Variant   string                    `json:"variant,omitempty"`
	SDP       string                    `json:"sdp,omitempty"`
	Session   string                    `json:"session,omitempty"`
	Candidate *pwebrtc.ICECandidateInit `json:"candidate,omitempty"`
	Code      string                    `json:"code,omitempty"`
	Error     string                    `json:"error,omitempty"`
}

// parseSignalMessage decodes and checks one client message.
func parseSignalMessage(data []byte) (*signalMessage, *apiError) {
	var m signalMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, errf(http.StatusBadRequest, "malformed_message", "decode message: %v", err)
	}
	switch m.Type {
	case "offer":
		if m.Camera == "" {
			return nil, errf(http.StatusBadRequest, "malformed_message", "offer without camera")
		}
		if m.SDP == "" {
			return nil, errf(http.StatusBadRequest, "malformed_message", "offer without sdp")
		}
		if m.Variant == "" {
			m.Variant = VariantRaw
		}
		if m.Variant != VariantRaw && m.Variant != VariantAnnotated {
			return nil, errf(http.StatusBadRequest, "malformed_message", "unknown variant %q (raw or annotated)", m.Variant)
		}
	case "candidate":
		if m.Candidate == nil {
			return nil, errf(http.StatusBadRequest, "malformed_message", "candidate message without candidate")
		}
	case "close":
	case "":
		return nil, errf(http.StatusBadRequest, "malformed_message", "message without type")
	default:
		return nil, errf(http.StatusBadRequest, "unknown_type", "unknown message type %q", m.Type)
	}
	return &m, nil
}

// signalConn is one signaling socket. A single writer goroutine owns writes so that messages keep their
// order; the server's candidates wait until the answer is queued.
type signalConn struct {
	s    *Server
	conn *websocket.Conn
	ctx  context.Context
	out  chan signalMessage

	mu          sync.Mutex
	sess        *session
	answered    bool
	pendingCand []signalMessage
}

func (c *signalConn) send(m signalMessage) {
	select {
	case c.out <- m:
	case <-c.ctx.Done():
	}
}

func (c *signalConn) sendError(e *apiError) {
	c.send(signalMessage{Type: "error", Code: e.code, Error: e.msg})
}

func (c *signalConn) writer() {
	for {
		select {
		case <-c.ctx.Done():
			return
		case m := <-c.out:
			if m.Type == "" {
				return // sentinel: everything before it is written
			}
			b, err := json.Marshal(m)
			if err != nil {
				continue
			}
			wctx, cancel := context.WithTimeout(c.ctx, signalWriteWait)
			err = c.conn.Write(wctx, websocket.MessageText, b)
			cancel()
			if err != nil {
				return
			}
		}
	}
}

func (c *signalConn) onCandidate(cand *pwebrtc.ICECandidate) {
	m := signalMessage{Type: "candidate", Candidate: &pwebrtc.ICECandidateInit{Candidate: ""}}
	if cand != nil {
		init := cand.ToJSON()
		m.Candidate = &init
	}
	c.mu.Lock()
	if !c.answered {
		c.pendingCand = append(c.pendingCand, m)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.send(m)
}

// handleSignal serves one signaling WebSocket.
func (s *Server) handleSignal(w http.ResponseWriter, r *http.Request) {
	// Browsers send Origin: only the server's own host and Config.AllowOrigins may open a socket, so a
	// page elsewhere cannot ride on a viewer's cookies or network position (the check is Accept's; the
	// pre-check only answers in the API's error shape).
	if !originAllowed(r, s.cfg.AllowOrigins) {
		writeError(w, errf(http.StatusForbidden, "origin_not_allowed",
			"WebSocket from origin %q is not allowed (same origin or AllowOrigins only)", r.Header.Get("Origin")))
		return
	}
	conn, err := websocket.Accept(w, r, s.accept)
	if err != nil {
		return // Accept already wrote the HTTP error
	}
	if s.ctx.Err() != nil {
		_ = conn.Close(websocket.StatusGoingAway, "server closing")
		return
	}
	conn.SetReadLimit(maxSignalMessage)
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(s.ctx, cancel) // Server.Close ends every socket
	defer stop()
	c := &signalConn{s: s, conn: conn, ctx: ctx, out: make(chan signalMessage, signalOutQueue)}
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); c.writer() }()
	defer func() {
		cancel()
		<-writerDone
		c.mu.Lock()
		sess := c.sess
		c.mu.Unlock()
		if sess != nil {
			s.closeSession(sess, "signaling socket closed")
		}
		_ = conn.Close(websocket.StatusNormalClosure, "")
	}()

	for {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			return
		}
		if typ != websocket.MessageText {
			c.sendError(errf(http.StatusBadRequest, "malformed_message", "binary messages are not part of the protocol"))
			continue
		}
		m, e := parseSignalMessage(data)
		if e != nil {
			c.sendError(e)
			continue
		}
		if !c.handle(m) {
			// Let the writer write everything queued (the close message), then end.
			c.send(signalMessage{}) // the writer stops at this sentinel
			select {
			case <-writerDone:
			case <-time.After(time.Second):
			}
			return
		}
	}
}

// handle acts on one message; it returns false when the socket should close.
func (c *signalConn) handle(m *signalMessage) bool {
	s := c.s
	switch m.Type {
	case "offer":
		c.mu.Lock()
		exists := c.sess != nil
		c.mu.Unlock()
		if exists {
			c.sendError(errf(http.StatusConflict, "session_exists", "this socket already has a session; open another socket"))
			return true
		}
		sess, answer, err := s.createSession(c.ctx, sessionRequest{
			camera: m.Camera, variant: m.Variant, offer: m.SDP, trickle: true,
			onCandidate: c.onCandidate,
			onClose:     func() { c.send(signalMessage{Type: "close"}) },
		})
		if err != nil {
			c.sendError(asAPIError(err))
			return true
		}
		c.mu.Lock()
		c.sess = sess
		c.answered = true
		pending := c.pendingCand
		c.pendingCand = nil
		c.send(signalMessage{Type: "answer", Session: sess.id, SDP: answer})
		for _, pm := range pending {
			c.send(pm)
		}
		c.mu.Unlock()
	case "candidate":
		c.mu.Lock()
		sess := c.sess
		c.mu.Unlock()
		if sess == nil {
			c.sendError(errf(http.StatusConflict, "no_session", "send an offer before candidates"))
			return true
		}
		if err := s.addRemoteCandidate(sess, *m.Candidate); err != nil {
			c.sendError(errf(http.StatusBadRequest, "malformed_candidate", "add candidate: %v", err))
		}
	case "close":
		c.mu.Lock()
		sess := c.sess
		c.sess = nil
		c.mu.Unlock()
		if sess != nil {
			s.closeSession(sess, "client close")
		} else {
			c.send(signalMessage{Type: "close"})
		}
		return false
	default:
		c.sendError(errf(http.StatusBadRequest, "unknown_type", "unknown message type %q", m.Type))
	}
	return true
}
