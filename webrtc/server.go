// Package webrtc owns everything github.com/pion/webrtc/v4: the WHEP endpoint, WHIP ingest (publishers
// pushing H.264 into a camera's stream), WebSocket signaling and the passthrough fan-out of a camera's
// media.Stream to many viewers over one shared ICE UDP port. It never decodes or re-encodes video and
// never blocks a camera or one viewer on another.
package webrtc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/report"
	pwebrtc "github.com/pion/webrtc/v4"

	"sightline/media"
)

// ICEServer is a STUN or TURN server given to pion and advertised to WHEP players in Link headers
// (RFC 9725 §4.6).
type ICEServer struct {
	URLs       []string `yaml:"urls"`
	Username   string   `yaml:"username"`
	Credential string   `yaml:"credential"`
}

// Config configures a Server.
type Config struct {
	// UDPPort is the one UDP port every peer shares (ICE UDP mux); 0 picks an ephemeral port (tests).
	UDPPort int
	// ListenAddress is the IP the UDP mux binds; "" binds all addresses (LoopbackOnly forces 127.0.0.1).
	ListenAddress string
	// LoopbackOnly is the test mode of BROWSER.md: UDP4 only, interface lo, loopback candidates only,
	// mDNS off, and every remote candidate that is not 127/8 or ::1 is stripped from offers and trickles.
	LoopbackOnly bool
	// NAT1To1IPs are public IPs announced as host candidates instead of the local addresses (1:1 NAT).
	NAT1To1IPs []string
	// AdditionalHosts are extra host candidate IPs announced beside the local addresses (or beside
	// NAT1To1IPs). They share the mux port, so they must route to it (port forwarding, a second NIC).
	AdditionalHosts []string
	// ICEServers are STUN/TURN servers used by pion and advertised in WHEP Link headers.
	ICEServers []ICEServer
	// MaxSessions caps live sessions; 0 is unlimited. Over the limit a new session gets 503.
	MaxSessions int
	// MaxSessionsPerCamera caps the live sessions of one camera (all variants together); 0 is
	// unlimited. Over the limit a new session gets 503 too_many_sessions. Sessions being set up count,
	// so concurrent offers can never exceed either cap.
	MaxSessionsPerCamera int
	// AllowOrigins lists the browser origins other than the server's own host that may open the
	// signaling WebSocket: "https://host[:port]" entries, or "*" for any. Empty means same origin only
	// (the semantics of the gateway's http.allowOrigins).
	AllowOrigins []string
	// FanoutShards is how many writer goroutines share a (camera, variant)'s viewers; 0 is GOMAXPROCS.
	FanoutShards int
	Logger       *slog.Logger
}

// StreamResolver finds the media.Stream a viewer asks for. variant is "raw" now ("annotated" later).
type StreamResolver interface {
	// ResolveStream returns the camera's stream. An unknown camera is an error wrapping ErrUnknownCamera;
	// a known camera that is not streaming yet is not an error (its stream is returned).
	ResolveStream(camera, variant string) (*media.Stream, error)
}

// ErrUnknownCamera is wrapped by StreamResolver errors for cameras that do not exist.
var ErrUnknownCamera = errors.New("unknown camera")

// Variants a viewer can ask for.
const (
	VariantRaw       = "raw"
	VariantAnnotated = "annotated"
)

// ICE timeouts: a disconnected peer is given up after iceFailedTimeout.
const (
	iceDisconnectedTimeout = 5 * time.Second
	iceFailedTimeout       = 10 * time.Second
	iceKeepalive           = 2 * time.Second
	gatherTimeout          = 5 * time.Second
)

// udpSocketBuffer is the send and receive buffer asked for on the shared ICE UDP socket.
const udpSocketBuffer = 8 << 20

// Server serves WHEP and WebSocket signaling, fanning each (camera, variant) out to its viewers.
type Server struct {
	cfg     Config
	log     *slog.Logger
	streams StreamResolver
	api     *pwebrtc.API
	whipAPI *pwebrtc.API // receives WHIP publishers (NACK generator, receiver reports)
	udpAddr net.Addr
	udpMux  ice.UDPMux
	iceSrv  []pwebrtc.ICEServer
	shards  int
	accept  *websocket.AcceptOptions // the signaling socket's Origin check

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // session closers, socket handlers

	mu         sync.Mutex
	closed     bool
	sessions   map[string]*session       // answered sessions
	pending    map[string]*session       // sessions being set up
	publishers map[string]*publisher     // WHIP publisher sessions, being set up or answered
	counted    map[string]int            // per camera: pending + answered sessions (the caps' count)
	total      int                       // pending + answered sessions of every camera
	tracks     map[trackKey]*sharedTrack // the current shared track of each (camera, variant)
	live       map[*sharedTrack]struct{} // every running track, current or retired, until it stopped
	drops      map[trackKey]dropCounts   // what stopped tracks dropped, so counters never go back
}

// NewServer opens the shared UDP mux and builds the pion API.
func NewServer(cfg Config, streams StreamResolver) (*Server, error) {
	if streams == nil {
		return nil, errors.New("webrtc: nil StreamResolver")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "webrtc")
	if cfg.UDPPort < 0 || cfg.UDPPort > 65535 {
		return nil, fmt.Errorf("webrtc: udp port %d out of range", cfg.UDPPort)
	}
	host := cfg.ListenAddress
	if cfg.LoopbackOnly {
		host = "127.0.0.1"
	}
	if host != "" && net.ParseIP(host) == nil {
		return nil, fmt.Errorf("webrtc: listen address %q is not an IP", host)
	}
	if err := checkAllowOrigins(cfg.AllowOrigins); err != nil {
		return nil, err
	}
	for _, ip := range append(append([]string(nil), cfg.NAT1To1IPs...), cfg.AdditionalHosts...) {
		if net.ParseIP(ip) == nil {
			return nil, fmt.Errorf("webrtc: announced address %q is not an IP", ip)
		}
	}
	iceServers := make([]pwebrtc.ICEServer, 0, len(cfg.ICEServers))
	for _, is := range cfg.ICEServers {
		srv := pwebrtc.ICEServer{URLs: is.URLs, Username: is.Username, Credential: is.Credential}
		if is.Username != "" || is.Credential != "" {
			srv.CredentialType = pwebrtc.ICECredentialTypePassword
		}
		iceServers = append(iceServers, srv)
	}

	lf := &slogLoggerFactory{log: log}
	mux, addr, err := listenUDPMux(cfg, host, lf)
	if err != nil {
		return nil, err
	}

	api, err := newAPI(cfg, mux, lf)
	if err != nil {
		_ = mux.Close()
		return nil, err
	}
	se, err := newSettingEngine(cfg, mux, lf)
	if err != nil {
		_ = mux.Close()
		return nil, err
	}
	whipAPI, err := newWHIPAPI(se)
	if err != nil {
		_ = mux.Close()
		return nil, err
	}
	shards := cfg.FanoutShards
	if shards <= 0 {
		shards = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg: cfg, log: log, streams: streams, api: api, whipAPI: whipAPI, udpAddr: addr, udpMux: mux, iceSrv: iceServers,
		shards: shards, accept: acceptOptions(cfg.AllowOrigins),
		ctx: ctx, cancel: cancel,
		sessions:   make(map[string]*session),
		pending:    make(map[string]*session),
		publishers: make(map[string]*publisher),
		counted:    make(map[string]int),
		tracks:     make(map[trackKey]*sharedTrack),
		live:       make(map[*sharedTrack]struct{}),
		drops:      make(map[trackKey]dropCounts),
	}
	log.Info("webrtc server ready", "udp", addr.String(), "loopback_only", cfg.LoopbackOnly)
	return s, nil
}

// UDPAddr returns the address of the shared ICE UDP socket.
func (s *Server) UDPAddr() net.Addr { return s.udpAddr }

// newAPI builds the pion API: H.264/H.265 only (an audio m-line is answered rejected, port 0), the one
// interceptor a send-only passthrough needs (RTCP sender reports), the shared UDP mux and the ICE settings.
//
// pion's default set is not used: its NACK responder copies every packet into a 1024-packet buffer per
// viewer (1.5 MB each, and a copy per packet and viewer); fanoutTrack answers NACKs from one history per
// track instead. The NACK generator, receiver reports and TWCC feedback only act on media the server
// receives (it receives none); the stats interceptor records every packet for GetStats, which nothing
// here calls; TWCC header extensions would only serve a sender-side congestion controller, which a
// passthrough of the camera's bitrate does not have.
func newAPI(cfg Config, mux ice.UDPMux, lf *slogLoggerFactory) (*pwebrtc.API, error) {
	me := &pwebrtc.MediaEngine{}
	if err := registerVideoCodecs(me); err != nil {
		return nil, fmt.Errorf("webrtc: register codecs: %w", err)
	}
	ir := &interceptor.Registry{}
	sr, err := report.NewSenderInterceptor()
	if err != nil {
		return nil, fmt.Errorf("webrtc: sender report interceptor: %w", err)
	}
	ir.Add(sr)
	se, err := newSettingEngine(cfg, mux, lf)
	if err != nil {
		return nil, err
	}
	return pwebrtc.NewAPI(pwebrtc.WithMediaEngine(me), pwebrtc.WithInterceptorRegistry(ir),
		pwebrtc.WithSettingEngine(se)), nil
}

// newSettingEngine holds the ICE settings every PeerConnection shares (viewers and WHIP publishers
// alike): the one UDP mux, timeouts, loopback-only mode and announced addresses.
func newSettingEngine(cfg Config, mux ice.UDPMux, lf *slogLoggerFactory) (pwebrtc.SettingEngine, error) {
	se := pwebrtc.SettingEngine{LoggerFactory: lf}
	se.SetICEUDPMux(mux)
	se.SetICETimeouts(iceDisconnectedTimeout, iceFailedTimeout, iceKeepalive)
	// Host candidates only come from the mux; with no STUN/TURN configured gathering is instant.
	if cfg.LoopbackOnly {
		se.SetNetworkTypes([]pwebrtc.NetworkType{pwebrtc.NetworkTypeUDP4})
		se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
		se.SetIncludeLoopbackCandidate(true)
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
		// Refuse to ever talk to a non-loopback remote (BROWSER.md §3); peer-reflexive remotes are
		// accepted because they can only arrive on the 127.0.0.1 socket.
		se.SetRemoteIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	} else {
		se.SetNetworkTypes([]pwebrtc.NetworkType{pwebrtc.NetworkTypeUDP4, pwebrtc.NetworkTypeUDP6})
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	}
	if rules := rewriteRules(cfg); len(rules) > 0 {
		if err := se.SetICEAddressRewriteRules(rules...); err != nil {
			return se, fmt.Errorf("webrtc: address rewrite rules: %w", err)
		}
	}
	return se, nil
}

// rewriteRules maps NAT1To1IPs and AdditionalHosts onto pion's address rewrite rules (the successor of
// SetNAT1To1IPs). NAT1To1IPs replace the local host addresses; AdditionalHosts are appended to them (or
// to the NAT addresses). Rewriting is used rather than an interface filter because an extra host address
// is usually not configured on any local interface (a port-forward, a load balancer), so no filter could
// produce it. One rule per address family, since a catch-all rule applies to one family.
func rewriteRules(cfg Config) []pwebrtc.ICEAddressRewriteRule {
	var rules []pwebrtc.ICEAddressRewriteRule
	for _, v4 := range []bool{true, false} {
		var nat, extra []string
		for _, ip := range cfg.NAT1To1IPs {
			if (net.ParseIP(ip).To4() != nil) == v4 {
				nat = append(nat, ip)
			}
		}
		for _, ip := range cfg.AdditionalHosts {
			if (net.ParseIP(ip).To4() != nil) == v4 {
				extra = append(extra, ip)
			}
		}
		switch {
		case len(nat) > 0:
			rules = append(rules, pwebrtc.ICEAddressRewriteRule{
				External: append(nat, extra...), AsCandidateType: pwebrtc.ICECandidateTypeHost,
				Mode: pwebrtc.ICEAddressRewriteReplace,
			})
		case len(extra) > 0:
			rules = append(rules, pwebrtc.ICEAddressRewriteRule{
				External: extra, AsCandidateType: pwebrtc.ICECandidateTypeHost,
				Mode: pwebrtc.ICEAddressRewriteAppend,
			})
		}
	}
	return rules
}

// Payload types of the codecs the server sends (the answer reuses the offer's numbers where they match).
func registerVideoCodecs(me *pwebrtc.MediaEngine) error {
	fb := []pwebrtc.RTCPFeedback{{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"}}
	codecs := []pwebrtc.RTPCodecParameters{
		{RTPCodecCapability: pwebrtc.RTPCodecCapability{MimeType: pwebrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", RTCPFeedback: fb}, PayloadType: 106},
		{RTPCodecCapability: pwebrtc.RTPCodecCapability{MimeType: pwebrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f", RTCPFeedback: fb}, PayloadType: 102},
		{RTPCodecCapability: pwebrtc.RTPCodecCapability{MimeType: pwebrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f", RTCPFeedback: fb}, PayloadType: 108},
		{RTPCodecCapability: pwebrtc.RTPCodecCapability{MimeType: pwebrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640032", RTCPFeedback: fb}, PayloadType: 112},
		{RTPCodecCapability: pwebrtc.RTPCodecCapability{MimeType: pwebrtc.MimeTypeH265, ClockRate: 90000, RTCPFeedback: fb}, PayloadType: 116},
	}
	for _, c := range codecs {
		if err := me.RegisterCodec(c, pwebrtc.RTPCodecTypeVideo); err != nil {
			return err
		}
	}
	return nil
}

// Viewers returns the number of live sessions for camera (all variants).
func (s *Server) Viewers(camera string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, sess := range s.sessions {
		if sess.camera == camera {
			n++
		}
	}
	return n
}

// SentFrames returns the last (up to 256) frames sent on the shared track of (camera, variant), oldest
// first: each frame's RTP timestamp and the wall-clock when its first packet was written. Nil when
// nobody watches.
func (s *Server) SentFrames(camera, variant string) []SentFrame {
	s.mu.Lock()
	t := s.tracks[trackKey{camera, variant}]
	s.mu.Unlock()
	if t == nil {
		return nil
	}
	return t.SentFrames()
}

// Close closes every session and the UDP mux, and waits for every goroutine it started.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	sessions := make([]*session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	pubs := make([]*publisher, 0, len(s.publishers))
	for _, p := range s.publishers {
		pubs = append(pubs, p)
	}
	s.mu.Unlock()
	s.cancel()
	for _, sess := range sessions {
		s.closeSession(sess, "server closed")
	}
	for _, p := range pubs {
		s.closePublisher(p, "server closed")
	}
	s.wg.Wait()
	return s.udpMux.Close() // closes its sockets too
}

// listenUDPMux opens the one UDP port every viewer shares. Listening on all addresses with a fixed
// port uses one socket per local address (pion's multi-socket mux), so that replies leave from the
// address the viewer's checks reached and pion does not have to guess local addresses for an unspecified
// socket; a specific listen address, loopback-only mode or port 0 (tests) use a single socket.
func listenUDPMux(cfg Config, host string, lf *slogLoggerFactory) (ice.UDPMux, net.Addr, error) {
	if host == "" && !cfg.LoopbackOnly && cfg.UDPPort != 0 {
		mux, err := ice.NewMultiUDPMuxFromPort(cfg.UDPPort,
			ice.UDPMuxFromPortWithReadBufferSize(udpSocketBuffer),
			ice.UDPMuxFromPortWithWriteBufferSize(udpSocketBuffer),
			ice.UDPMuxFromPortWithLogger(lf.NewLogger("ice-mux")))
		if err != nil {
			return nil, nil, fmt.Errorf("webrtc: listen udp port %d on every local address: %w", cfg.UDPPort, err)
		}
		return mux, &net.UDPAddr{Port: cfg.UDPPort}, nil
	}
	network := "udp"
	if cfg.LoopbackOnly {
		network = "udp4"
	}
	laddr := net.JoinHostPort(host, strconv.Itoa(cfg.UDPPort))
	conn, err := net.ListenPacket(network, laddr)
	if err != nil {
		return nil, nil, fmt.Errorf("webrtc: listen udp %s: %w", laddr, err)
	}
	// Every viewer shares this socket: a burst (a keyframe to hundreds of viewers, their RTCP) must not
	// overflow its buffers. The kernel caps both at net.core.{w,r}mem_max.
	if uc, ok := conn.(*net.UDPConn); ok {
		_ = uc.SetWriteBuffer(udpSocketBuffer)
		_ = uc.SetReadBuffer(udpSocketBuffer)
	}
	return pwebrtc.NewICEUDPMux(lf.NewLogger("ice-mux"), conn), conn.LocalAddr(), nil
}

// goTracked runs fn in a goroutine that Close waits for; it reports false (and does not run fn) once
// the server is closed.
func (s *Server) goTracked(fn func()) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		fn()
	}()
	return true
}
