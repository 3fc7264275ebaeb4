package webrtc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/pion/rtcp"
	pwebrtc "github.com/pion/webrtc/v4"
)

var errServerClosed = errors.New("webrtc server closed")

// session is one viewer: a PeerConnection sending the shared track of its (camera, variant).
type session struct {
	id, camera, variant string
	pc                  *pwebrtc.PeerConnection
	track               *sharedTrack
	remoteUfrag         string
	etag                string
	log                 *slog.Logger

	onClose   func()       // called once after teardown of a published session
	published atomic.Bool  // the session was answered and entered the map
	closing   bool         // guarded by Server.mu: teardown began; never enter the map
	cancelled bool         // guarded by Server.mu: CloseCamera ran during setup; never enter the map
	state     atomic.Int32 // the PeerConnection's state (pwebrtc.PeerConnectionState), for Stats
	closeOnce sync.Once
	// ctx ends when the session closes (the meta data channel's feed runs under it).
	ctx      context.Context
	cancel   context.CancelFunc
	rtcpDone chan struct{}
	done     chan struct{}
}

type sessionRequest struct {
	camera, variant string
	offer           string
	// trickle: answer at once and report local candidates through onCandidate (WebSocket); otherwise the
	// answer waits for gathering to complete and carries every candidate (WHEP).
	trickle     bool
	onCandidate func(*pwebrtc.ICECandidate)
	onClose     func()
}

func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// createSession resolves the stream, checks the offer, and answers it. Every error is an *apiError.
func (s *Server) createSession(ctx context.Context, req sessionRequest) (*session, string, error) {
	stream, err := s.streams.ResolveStream(req.camera, req.variant)
	if err != nil {
		if errors.Is(err, ErrUnknownCamera) {
			return nil, "", errf(http.StatusNotFound, "unknown_camera", "unknown camera %q", req.camera)
		}
		return nil, "", errf(http.StatusServiceUnavailable, "stream_unavailable",
			"camera %q has no %s stream: %v", req.camera, req.variant, err)
	}
	if stream == nil || stream.Closed() {
		return nil, "", errf(http.StatusServiceUnavailable, "stream_unavailable",
			"camera %q has no %s stream", req.camera, req.variant)
	}
	id := newSessionID()
	sess := &session{
		id: id, camera: req.camera, variant: req.variant,
		log:      s.log.With("camera", req.camera, "session", id, "variant", req.variant),
		onClose:  req.onClose,
		rtcpDone: make(chan struct{}), done: make(chan struct{}),
	}
	sess.ctx, sess.cancel = context.WithCancel(s.ctx)
	sess.state.Store(int32(pwebrtc.PeerConnectionStateNew))
	// From here on the session holds a slot of the caps; closeSession gives it back, whatever happens.
	if e := s.reserve(sess); e != nil {
		sess.cancel()
		return nil, "", e
	}
	fail := func(e *apiError) (*session, string, error) {
		s.closeSession(sess, "setup failed: "+e.msg)
		return nil, "", e
	}

	codec := stream.Params().Codec
	if codec == "" {
		codec = "H264" // before the camera's codec is known, assume H.264
	}
	info, aerr := parseOffer(req.offer, codec)
	if aerr != nil {
		return fail(aerr)
	}
	sess.remoteUfrag = info.ufrag
	offerSDP := req.offer
	if s.cfg.LoopbackOnly {
		if stripNonLoopbackCandidates(info.parsed) > 0 {
			b, err := info.parsed.Marshal()
			if err != nil {
				return fail(errf(http.StatusBadRequest, "malformed_sdp", "re-encode SDP offer: %v", err))
			}
			offerSDP = string(b)
		}
	}

	track, err := s.acquireTrack(trackKey{req.camera, req.variant}, stream)
	if err != nil {
		return fail(errf(http.StatusServiceUnavailable, "stream_unavailable", "camera %q: %v", req.camera, err))
	}
	sess.track = track

	pc, err := s.api.NewPeerConnection(pwebrtc.Configuration{ICEServers: s.iceSrv})
	if err != nil {
		return fail(errf(http.StatusInternalServerError, "internal", "create peer connection: %v", err))
	}
	sess.pc = pc
	sender, err := pc.AddTrack(track.local)
	if err != nil {
		close(sess.rtcpDone)
		return fail(errf(http.StatusInternalServerError, "internal", "add track: %v", err))
	}
	go sess.readRTCP(sender) // ends when the PeerConnection closes
	s.serveMeta(sess, pc)

	pc.OnICEConnectionStateChange(func(st pwebrtc.ICEConnectionState) {
		sess.log.Debug("ice connection state", "state", st.String())
		if st == pwebrtc.ICEConnectionStateFailed || st == pwebrtc.ICEConnectionStateClosed {
			s.goTracked(func() { s.closeSession(sess, "ice "+st.String()) })
		}
	})
	pc.OnConnectionStateChange(func(st pwebrtc.PeerConnectionState) {
		sess.state.Store(int32(st))
		if st == pwebrtc.PeerConnectionStateFailed {
			s.goTracked(func() { s.closeSession(sess, "peer connection failed") })
		}
	})
	if req.onCandidate != nil {
		pc.OnICECandidate(req.onCandidate)
	}

	if err := pc.SetRemoteDescription(pwebrtc.SessionDescription{Type: pwebrtc.SDPTypeOffer, SDP: offerSDP}); err != nil {
		return fail(errf(http.StatusBadRequest, "malformed_sdp", "apply SDP offer: %v", err))
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return fail(errf(http.StatusNotAcceptable, "unsupported_offer", "answer SDP offer: %v", err))
	}
	var gathered <-chan struct{}
	if !req.trickle {
		gathered = pwebrtc.GatheringCompletePromise(pc)
	}
	if err := pc.SetLocalDescription(answer); err != nil {
		return fail(errf(http.StatusNotAcceptable, "unsupported_offer", "set SDP answer: %v", err))
	}
	if !sendsVideo(pc) {
		return fail(errf(http.StatusNotAcceptable, "unsupported_codec", "no video m-line of the offer could carry the camera's codec"))
	}
	if gathered != nil {
		gctx, cancel := context.WithTimeout(ctx, gatherTimeout)
		select {
		case <-gathered:
		case <-gctx.Done():
			cancel()
			return fail(errf(http.StatusServiceUnavailable, "ice_gathering_timeout", "ICE gathering did not complete in %s", gatherTimeout))
		}
		cancel()
	}
	ld := pc.LocalDescription()
	if ld == nil {
		return fail(errf(http.StatusInternalServerError, "internal", "no local description"))
	}
	sess.etag = `"` + sdpUfrag(ld.SDP) + `"`

	s.mu.Lock()
	if s.closed || sess.closing || sess.cancelled {
		s.mu.Unlock()
		return fail(errf(http.StatusServiceUnavailable, "session_failed", "the session closed while it was being set up"))
	}
	delete(s.pending, id)
	s.sessions[id] = sess
	sess.published.Store(true)
	s.mu.Unlock()
	sess.log.Info("viewer session started")
	return sess, candidatesOnBundleTag(ld.SDP), nil
}

// sendsVideo reports whether some transceiver negotiated to send the shared track.
func sendsVideo(pc *pwebrtc.PeerConnection) bool {
	for _, tr := range pc.GetTransceivers() {
		if tr.Sender() == nil || tr.Sender().Track() == nil || tr.Mid() == "" {
			continue
		}
		d := tr.Direction()
		if d == pwebrtc.RTPTransceiverDirectionSendonly || d == pwebrtc.RTPTransceiverDirectionSendrecv {
			if len(tr.Sender().GetParameters().Codecs) > 0 {
				return true
			}
		}
	}
	return false
}

// readRTCP reads the viewer's RTCP: NACKs are answered from the track's packet history, PLI/FIR are
// forwarded as a keyframe request, rate-limited per track.
func (sess *session) readRTCP(sender *pwebrtc.RTPSender) {
	defer close(sess.rtcpDone)
	var ssrc uint32
	if enc := sender.GetParameters().Encodings; len(enc) > 0 {
		ssrc = uint32(enc[0].SSRC)
	}
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				sess.track.requestKeyframe()
			case *rtcp.TransportLayerNack:
				sess.track.local.resend(ssrc, p)
			}
		}
	}
}

// lookupSession returns the live session id of camera, or nil.
func (s *Server) lookupSession(camera, id string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.sessions[id]
	if sess == nil || sess.camera != camera {
		return nil
	}
	return sess
}

// closeSession tears a session down once: it leaves the map at once (and gives back its slot of the
// caps), its PeerConnection closes, its RTCP goroutine ends, and its reference on the shared track is
// dropped.
func (s *Server) closeSession(sess *session, reason string) {
	sess.closeOnce.Do(func() {
		s.mu.Lock()
		sess.closing = true
		if s.sessions[sess.id] == sess {
			delete(s.sessions, sess.id)
		}
		if s.pending[sess.id] == sess {
			delete(s.pending, sess.id)
		}
		s.unreserveLocked(sess.camera)
		s.mu.Unlock()
		sess.cancel()
		if sess.pc != nil {
			if err := sess.pc.Close(); err != nil {
				sess.log.Debug("close peer connection", "err", err)
			}
			<-sess.rtcpDone
		}
		if sess.track != nil {
			s.releaseTrack(sess.track)
		}
		sess.log.Debug("viewer session ended", "reason", reason)
		close(sess.done)
		if sess.onClose != nil && sess.published.Load() {
			sess.onClose()
		}
	})
	<-sess.done
}

// addRemoteCandidate adds one trickled remote candidate; LoopbackOnly drops non-loopback ones.
// An empty candidate marks the end of candidates.
func (s *Server) addRemoteCandidate(sess *session, init pwebrtc.ICECandidateInit) error {
	if init.Candidate != "" && s.cfg.LoopbackOnly && !candidateIsLoopback(init.Candidate) {
		sess.log.Debug("dropping non-loopback remote candidate (loopback-only mode)")
		return nil
	}
	return sess.pc.AddICECandidate(init)
}
