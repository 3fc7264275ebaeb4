package webrtc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	pwebrtc "github.com/pion/webrtc/v4"

	"sightline/media"
)

// WHIP ingest (RFC 9725): a publisher POSTs a sendonly H.264 offer to /whip/{camera}; its access units
// are written to the camera's raw media.Stream exactly as an RTSP source writes them, so viewers,
// analytics and the annotated track cannot tell the two apart.

// WHIPResolver finds the WHIPSource of a camera. The StreamResolver given to NewServer may implement
// it; without it every WHIP request answers 404.
type WHIPResolver interface {
	// ResolveWHIP returns the camera's WHIP source. An unknown camera is an error wrapping
	// ErrUnknownCamera, a camera that is not fed by WHIP one wrapping ErrNotWHIPCamera, and a disabled
	// camera one wrapping ErrCameraNotRunning.
	ResolveWHIP(camera string) (*WHIPSource, error)
}

// Errors of a WHIPResolver.
var (
	ErrNotWHIPCamera    = errors.New("camera is not fed by WHIP")
	ErrCameraNotRunning = errors.New("camera is not running")
)

// WHIPSource is the source of a camera fed by WHIP publishers: while Run runs, one publisher at a time
// may push H.264 into the camera's stream; without one the source waits. It implements the source
// interface of the gateway's camera registry (Run, Status).
type WHIPSource struct {
	stream *media.Stream
	status *media.StatusTracker
	log    *slog.Logger

	mu         sync.Mutex
	running    bool
	pub        *publisher
	publishers int // publishers so far (the second and later count as restarts)
}

// NewWHIPSource returns the source of a WHIP camera writing to stream.
func NewWHIPSource(stream *media.Stream, log *slog.Logger) *WHIPSource {
	if log == nil {
		log = slog.Default()
	}
	return &WHIPSource{
		stream: stream,
		status: media.NewStatusTracker(media.SourceStatus{Transport: "whip", Codec: media.CodecH264}),
		log:    log.With("component", "whip"),
	}
}

// Run accepts publishers until ctx ends, then disconnects the current one.
func (w *WHIPSource) Run(ctx context.Context) error {
	w.mu.Lock()
	w.running = true
	w.mu.Unlock()
	w.status.SetState(media.StateWaiting)
	w.stream.SetKeyframeRequester(w.requestKeyframe)
	<-ctx.Done()
	w.mu.Lock()
	w.running = false
	pub := w.pub
	w.mu.Unlock()
	if pub != nil {
		pub.close("camera stopped")
	}
	w.stream.SetKeyframeRequester(nil)
	w.status.Update(func(st *media.SourceStatus) { st.Publisher = "" })
	w.status.SetState(media.StateStopped)
	return ctx.Err()
}

// Status returns the source's status: waiting, connecting (a publisher negotiates) or streaming, with
// the publisher's address.
func (w *WHIPSource) Status() media.SourceStatus { return w.status.Status() }

// attach makes p the camera's publisher.
func (w *WHIPSource) attach(p *publisher) *apiError {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.running {
		return errf(http.StatusServiceUnavailable, "camera_stopped", "camera %q is stopped", p.camera)
	}
	if w.pub != nil {
		return errf(http.StatusConflict, "publisher_exists", "camera %q already has a publisher", p.camera)
	}
	w.pub = p
	w.publishers++
	restart := w.publishers > 1
	w.status.Update(func(st *media.SourceStatus) {
		st.Publisher = p.remote
		st.LastError = ""
		if restart {
			st.RestartCount++
		}
	})
	w.status.SetState(media.StateConnecting)
	w.status.ResetRates()
	return nil
}

// detach forgets p (if it is the current publisher): the camera waits for the next one.
func (w *WHIPSource) detach(p *publisher, reason string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pub != p {
		return
	}
	w.pub = nil
	w.status.Update(func(st *media.SourceStatus) {
		st.Publisher = ""
		st.LastError = "publisher left: " + reason
	})
	if w.running {
		w.status.SetState(media.StateWaiting)
	}
}

// write hands one access unit of p to the stream, if p is still the publisher.
func (w *WHIPSource) write(p *publisher, au *media.AccessUnit) {
	w.mu.Lock()
	current := w.pub == p
	w.mu.Unlock()
	if !current {
		return
	}
	var params media.Params
	for _, n := range au.NALUs {
		switch n[0] & 0x1f {
		case nalSPS:
			params.SPS = n
		case nalPPS:
			params.PPS = n
		}
	}
	if !params.Empty() {
		params.Codec = media.CodecH264
		w.stream.SetParams(params)
	}
	w.status.SetState(media.StateStreaming)
	w.status.Wrote(au.Size(), au.Received)
	w.stream.Write(au)
}

// requestKeyframe is the stream's keyframe requester: a PLI to the publisher, if any.
func (w *WHIPSource) requestKeyframe() {
	w.mu.Lock()
	p := w.pub
	w.mu.Unlock()
	if p != nil {
		p.requestKeyframe()
	}
}

// publisher is one WHIP session: a PeerConnection receiving the publisher's video.
type publisher struct {
	id, camera  string
	src         *WHIPSource
	pc          *pwebrtc.PeerConnection
	remote      string // the publisher's address (HTTP client)
	remoteUfrag string
	etag        string
	log         *slog.Logger
	close       func(reason string) // Server.closePublisher

	ssrc     atomic.Uint32 // the video track's SSRC once it started
	tracking atomic.Bool   // a video track is being read
	keyLast  atomic.Int64  // unix ns of the last PLI
	keyPend  atomic.Bool   // a deferred PLI is scheduled

	srMu  sync.Mutex
	srOK  bool
	srNTP time.Time // capture time of srRTP, from the last sender report
	srRTP uint32

	readers   sync.WaitGroup // track and RTCP readers
	closeOnce sync.Once
	done      chan struct{}
	closing   bool // guarded by Server.mu
}

// requestKeyframe sends a PLI at most once per keyframeMinPeriod; a request inside the period is
// deferred to its end (one for all that come meanwhile).
func (p *publisher) requestKeyframe() {
	now := time.Now().UnixNano()
	last := p.keyLast.Load()
	if last == 0 || now-last >= int64(keyframeMinPeriod) {
		if p.keyLast.CompareAndSwap(last, now) {
			p.sendPLI()
		}
		return
	}
	if p.keyPend.CompareAndSwap(false, true) {
		time.AfterFunc(time.Duration(last+int64(keyframeMinPeriod)-now), func() {
			p.keyLast.Store(time.Now().UnixNano())
			p.keyPend.Store(false)
			p.sendPLI()
		})
	}
}

func (p *publisher) sendPLI() {
	ssrc := p.ssrc.Load()
	if ssrc == 0 {
		return
	}
	if err := p.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}); err != nil {
		p.log.Debug("send PLI to publisher", "err", err)
	}
}

// ntpOf maps an RTP timestamp to the capture wall-clock of the last sender report (zero without one).
func (p *publisher) ntpOf(ts uint32) time.Time {
	p.srMu.Lock()
	defer p.srMu.Unlock()
	if !p.srOK {
		return time.Time{}
	}
	return p.srNTP.Add(time.Duration(int32(ts-p.srRTP)) * time.Second / media.VideoClockRate)
}

// onTrack reads the publisher's first H.264 video track into the camera's stream; anything else is
// drained and discarded.
func (p *publisher) onTrack(track *pwebrtc.TrackRemote, recv *pwebrtc.RTPReceiver) {
	if track.Kind() != pwebrtc.RTPCodecTypeVideo || !strings.EqualFold(track.Codec().MimeType, pwebrtc.MimeTypeH264) ||
		!p.tracking.CompareAndSwap(false, true) {
		p.log.Debug("discarding publisher track", "kind", track.Kind().String(), "codec", track.Codec().MimeType)
		for {
			if _, _, err := track.ReadRTP(); err != nil {
				return
			}
		}
	}
	ssrc := uint32(track.SSRC())
	p.ssrc.Store(ssrc)
	p.readers.Add(1) // inside a reader already, so never after closePublisher's Wait began
	go func() {      // sender reports (NTP time), and the interceptors need RTCP to be read
		defer p.readers.Done()
		for {
			pkts, _, err := recv.ReadRTCP()
			if err != nil {
				return
			}
			for _, pkt := range pkts {
				if sr, ok := pkt.(*rtcp.SenderReport); ok && sr.SSRC == ssrc {
					p.srMu.Lock()
					p.srOK, p.srNTP, p.srRTP = true, ntpTime(sr.NTPTime), sr.RTPTime
					p.srMu.Unlock()
				}
			}
		}
	}()
	p.log.Info("publisher track started", "ssrc", ssrc, "codec", track.Codec().SDPFmtpLine)
	d := NewH264Depacketizer()
	d.OnKeyframeNeeded = p.requestKeyframe
	for {
		pkt, _, err := track.ReadRTP()
		if err != nil {
			st := d.Stats()
			p.log.Debug("publisher track ended", "err", err, "packets", st.Packets, "lost", st.Lost,
				"access_units", st.AccessUnit, "discarded", st.Discarded)
			return
		}
		for _, au := range d.Push(pkt, time.Now()) {
			au.NTP = p.ntpOf(au.RTPTime)
			p.src.write(p, au)
		}
	}
}

// ntpTime converts a 64-bit NTP timestamp (RFC 3550 §4) to a time.Time.
func ntpTime(v uint64) time.Time {
	const ntpToUnix = 2208988800
	sec, frac := int64(v>>32)-ntpToUnix, v&0xffffffff
	return time.Unix(sec, int64(frac*1e9>>32))
}

// newWHIPAPI builds the receiving side's pion API: every common H.264 profile in packetization modes 1
// and 0 (the answer names the one codec the offer prefers, see chooseH264), no audio (an audio m-line is
// answered rejected), a NACK generator so losses are repaired by retransmission, and receiver reports.
func newWHIPAPI(se pwebrtc.SettingEngine) (*pwebrtc.API, error) {
	me := &pwebrtc.MediaEngine{}
	pt := pwebrtc.PayloadType(96)
	for _, mode := range []string{"1", "0"} {
		for _, profile := range []string{"42e01f", "42001f", "42c01f", "4d001f", "4d401f", "64001f", "640c1f", "f4001f"} {
			c := pwebrtc.RTPCodecParameters{RTPCodecCapability: pwebrtc.RTPCodecCapability{MimeType: pwebrtc.MimeTypeH264,
				ClockRate: media.VideoClockRate, RTCPFeedback: whipFeedback,
				SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=" + mode + ";profile-level-id=" + profile,
			}, PayloadType: pt}
			if err := me.RegisterCodec(c, pwebrtc.RTPCodecTypeVideo); err != nil {
				return nil, fmt.Errorf("webrtc: register H.264 for WHIP: %w", err)
			}
			pt++
		}
	}
	ir := &interceptor.Registry{}
	gen, err := nack.NewGeneratorInterceptor()
	if err != nil {
		return nil, fmt.Errorf("webrtc: NACK generator: %w", err)
	}
	ir.Add(gen)
	rr, err := report.NewReceiverInterceptor()
	if err != nil {
		return nil, fmt.Errorf("webrtc: receiver report interceptor: %w", err)
	}
	ir.Add(rr)
	return pwebrtc.NewAPI(pwebrtc.WithMediaEngine(me), pwebrtc.WithInterceptorRegistry(ir),
		pwebrtc.WithSettingEngine(se)), nil
}

// whipFeedback is the RTCP feedback the receiving side supports.
var whipFeedback = []pwebrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}}

// whipOffer is what the server needs from a publisher's offer.
type whipOffer struct {
	parsed *sdp.SessionDescription
	ufrag  string
	codec  pwebrtc.RTPCodecParameters // the H.264 codec the answer picks
}

// parseWHIPOffer checks a publisher's offer: it must parse and send video (sendonly or sendrecv) with
// H.264 in packetization mode 0 or 1 on its first active video m-line.
func parseWHIPOffer(body string) (*whipOffer, *apiError) {
	sd, e := parseSDPOffer(body)
	if e != nil {
		return nil, e
	}
	o := &whipOffer{parsed: sd, ufrag: iceUfrag(sd)}
	var video *sdp.MediaDescription
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Media == "video" && md.MediaName.Port.Value != 0 {
			video = md
			break
		}
	}
	if video == nil {
		return nil, errf(406, "no_video", "SDP offer has no active video m-line; WHIP ingest takes H.264 video")
	}
	for _, dir := range []string{"recvonly", "inactive"} {
		if _, ok := video.Attribute(dir); ok {
			return nil, errf(406, "no_video", "SDP offer's video m-line is %s; a publisher must send", dir)
		}
	}
	best, bestScore := -1, -1
	cs := mediaCodecs(video)
	var offered []string
	for i, c := range cs {
		offered = append(offered, c.Name)
		if !strings.EqualFold(c.Name, "H264") || c.ClockRate != media.VideoClockRate {
			continue
		}
		mode, profile := fmtpValue(c.Fmtp, "packetization-mode"), strings.ToLower(fmtpValue(c.Fmtp, "profile-level-id"))
		score := 0
		switch mode {
		case "1":
			score += 4
		case "", "0":
		default:
			continue // interleaved mode (2) is not supported
		}
		switch {
		case strings.HasPrefix(profile, "42e0"):
			score += 2
		case strings.HasPrefix(profile, "42"):
			score++
		}
		if score > bestScore {
			best, bestScore = i, score
		}
	}
	if best < 0 {
		return nil, errf(406, "unsupported_codec", "WHIP ingest takes H.264 (packetization-mode 0 or 1), the offer's video codecs are [%s]",
			strings.Join(dedupe(offered), " "))
	}
	c := cs[best]
	o.codec = pwebrtc.RTPCodecParameters{PayloadType: pwebrtc.PayloadType(c.PayloadType),
		RTPCodecCapability: pwebrtc.RTPCodecCapability{MimeType: pwebrtc.MimeTypeH264, ClockRate: c.ClockRate,
			SDPFmtpLine: c.Fmtp, RTCPFeedback: whipFeedback}}
	return o, nil
}

// fmtpValue returns the value of key in an a=fmtp parameter list ("" when absent).
func fmtpValue(fmtp, key string) string {
	for _, kv := range strings.Split(fmtp, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if strings.EqualFold(k, key) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func whipSessionPath(camera, id string) string {
	return "/whip/" + url.PathEscape(camera) + "/sessions/" + id
}

// createPublisher answers a publisher's offer for camera. Every error is an *apiError.
func (s *Server) createPublisher(ctx context.Context, camera, offer, remote string) (*publisher, string, error) {
	wr, ok := s.streams.(WHIPResolver)
	if !ok {
		return nil, "", errf(http.StatusNotFound, "unknown_camera", "unknown camera %q", camera)
	}
	src, err := wr.ResolveWHIP(camera)
	switch {
	case errors.Is(err, ErrUnknownCamera):
		return nil, "", errf(http.StatusNotFound, "unknown_camera", "unknown camera %q", camera)
	case errors.Is(err, ErrNotWHIPCamera):
		return nil, "", errf(http.StatusConflict, "not_whip_camera", "camera %q pulls its video (its url is not whip:); it takes no publisher", camera)
	case err != nil:
		return nil, "", errf(http.StatusServiceUnavailable, "camera_stopped", "camera %q: %v", camera, err)
	}
	info, aerr := parseWHIPOffer(offer)
	if aerr != nil {
		return nil, "", aerr
	}
	offerSDP := offer
	if s.cfg.LoopbackOnly && stripNonLoopbackCandidates(info.parsed) > 0 {
		b, err := info.parsed.Marshal()
		if err != nil {
			return nil, "", errf(http.StatusBadRequest, "malformed_sdp", "re-encode SDP offer: %v", err)
		}
		offerSDP = string(b)
	}
	id := newSessionID()
	p := &publisher{
		id: id, camera: camera, src: src, remote: remote, remoteUfrag: info.ufrag,
		log:  s.log.With("camera", camera, "publisher", id, "remote", remote),
		done: make(chan struct{}),
	}
	p.close = func(reason string) { s.closePublisher(p, reason) }
	if e := src.attach(p); e != nil {
		return nil, "", e
	}
	fail := func(e *apiError) (*publisher, string, error) {
		s.closePublisher(p, "setup failed: "+e.msg)
		return nil, "", e
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fail(errf(http.StatusServiceUnavailable, "session_failed", "server closing"))
	}
	s.publishers[id] = p
	s.mu.Unlock()

	pc, err := s.whipAPI.NewPeerConnection(pwebrtc.Configuration{ICEServers: s.iceSrv})
	if err != nil {
		return fail(errf(http.StatusInternalServerError, "internal", "create peer connection: %v", err))
	}
	s.mu.Lock()
	if p.closing {
		s.mu.Unlock()
		_ = pc.Close()
		return fail(errf(http.StatusServiceUnavailable, "session_failed", "the session closed while it was being set up"))
	}
	p.pc = pc
	s.mu.Unlock()
	pc.OnTrack(func(t *pwebrtc.TrackRemote, r *pwebrtc.RTPReceiver) {
		// Readers join under the lock closePublisher sets closing under, so none joins after its Wait.
		s.mu.Lock()
		if p.closing {
			s.mu.Unlock()
			return
		}
		p.readers.Add(1)
		s.mu.Unlock()
		defer p.readers.Done()
		p.onTrack(t, r)
	})
	pc.OnICEConnectionStateChange(func(st pwebrtc.ICEConnectionState) {
		p.log.Debug("ice connection state", "state", st.String())
		if st == pwebrtc.ICEConnectionStateFailed || st == pwebrtc.ICEConnectionStateClosed {
			s.goTracked(func() { s.closePublisher(p, "ice "+st.String()) })
		}
	})
	pc.OnConnectionStateChange(func(st pwebrtc.PeerConnectionState) {
		if st == pwebrtc.PeerConnectionStateFailed || st == pwebrtc.PeerConnectionStateClosed {
			s.goTracked(func() { s.closePublisher(p, "peer connection "+st.String()) })
		}
	})
	if err := pc.SetRemoteDescription(pwebrtc.SessionDescription{Type: pwebrtc.SDPTypeOffer, SDP: offerSDP}); err != nil {
		return fail(errf(http.StatusBadRequest, "malformed_sdp", "apply SDP offer: %v", err))
	}
	var video *pwebrtc.RTPTransceiver
	for _, tr := range pc.GetTransceivers() {
		if tr.Kind() == pwebrtc.RTPCodecTypeVideo {
			video = tr
			break
		}
	}
	if video == nil {
		return fail(errf(http.StatusNotAcceptable, "unsupported_codec", "no video m-line of the offer can carry H.264"))
	}
	// Answer with exactly the one H.264 codec chosen from the offer, with the offer's payload type.
	if err := video.SetCodecPreferences([]pwebrtc.RTPCodecParameters{info.codec}); err != nil {
		return fail(errf(http.StatusNotAcceptable, "unsupported_codec", "choose H.264: %v", err))
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return fail(errf(http.StatusNotAcceptable, "unsupported_offer", "answer SDP offer: %v", err))
	}
	gathered := pwebrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return fail(errf(http.StatusNotAcceptable, "unsupported_offer", "set SDP answer: %v", err))
	}
	if d := video.Direction(); d != pwebrtc.RTPTransceiverDirectionRecvonly && d != pwebrtc.RTPTransceiverDirectionSendrecv {
		return fail(errf(http.StatusNotAcceptable, "no_video", "the offer's video m-line could not be received (%s)", d))
	}
	gctx, cancel := context.WithTimeout(ctx, gatherTimeout)
	defer cancel()
	select {
	case <-gathered:
	case <-gctx.Done():
		return fail(errf(http.StatusServiceUnavailable, "ice_gathering_timeout", "ICE gathering did not complete in %s", gatherTimeout))
	}
	ld := pc.LocalDescription()
	if ld == nil {
		return fail(errf(http.StatusInternalServerError, "internal", "no local description"))
	}
	s.mu.Lock()
	p.etag = `"` + sdpUfrag(ld.SDP) + `"`
	closing := p.closing
	s.mu.Unlock()
	if closing {
		return nil, "", errf(http.StatusServiceUnavailable, "session_failed", "the session closed while it was being set up")
	}
	p.log.Info("publisher session started", "codec", info.codec.SDPFmtpLine, "payload_type", info.codec.PayloadType)
	return p, candidatesOnBundleTag(ld.SDP), nil
}

// closePublisher tears a publisher session down once: it leaves the map, its PeerConnection closes, its
// readers end, and the camera goes back to waiting.
func (s *Server) closePublisher(p *publisher, reason string) {
	p.closeOnce.Do(func() {
		s.mu.Lock()
		p.closing = true
		if s.publishers[p.id] == p {
			delete(s.publishers, p.id)
		}
		pc := p.pc
		s.mu.Unlock()
		if pc != nil {
			if err := pc.Close(); err != nil {
				p.log.Debug("close peer connection", "err", err)
			}
		}
		p.readers.Wait()
		p.src.detach(p, reason)
		p.log.Info("publisher session ended", "reason", reason)
		close(p.done)
	})
	<-p.done
}

func (s *Server) lookupPublisher(camera, id string) *publisher {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.publishers[id]
	if p == nil || p.camera != camera || p.etag == "" {
		return nil
	}
	return p
}

func (s *Server) handleWHIPPost(w http.ResponseWriter, r *http.Request) {
	camera := r.PathValue("camera")
	offer, ok := readOffer(w, r)
	if !ok {
		return
	}
	p, answer, err := s.createPublisher(r.Context(), camera, offer, r.RemoteAddr)
	if err != nil {
		ae := asAPIError(err)
		s.log.Info("whip offer refused", "camera", camera, "status", ae.status, "code", ae.code, "err", ae.msg)
		writeError(w, ae)
		return
	}
	s.writeAnswer(w, whipSessionPath(camera, p.id), p.etag, answer)
}

// handleWHIPPatch adds trickled remote candidates (RFC 9725 §4.3.1); ICE restarts answer 501.
func (s *Server) handleWHIPPatch(w http.ResponseWriter, r *http.Request) {
	p := s.lookupPublisher(r.PathValue("camera"), r.PathValue("id"))
	if p == nil {
		writeError(w, errf(http.StatusNotFound, "unknown_session", "no publisher session %q for camera %q", r.PathValue("id"), r.PathValue("camera")))
		return
	}
	trickle(w, r, p.etag, p.remoteUfrag, func(c pwebrtc.ICECandidateInit) error {
		if s.cfg.LoopbackOnly && !candidateIsLoopback(c.Candidate) {
			return nil // as the offer's: loopback-only mode ignores other addresses
		}
		return p.pc.AddICECandidate(c)
	})
}

func (s *Server) handleWHIPDelete(w http.ResponseWriter, r *http.Request) {
	p := s.lookupPublisher(r.PathValue("camera"), r.PathValue("id"))
	if p == nil {
		writeError(w, errf(http.StatusNotFound, "unknown_session", "no publisher session %q for camera %q", r.PathValue("id"), r.PathValue("camera")))
		return
	}
	s.closePublisher(p, "DELETE")
	w.WriteHeader(http.StatusNoContent)
}
