// Package rtsptest owns the RTSP peers that tests pull from: an in-process gortsplib server that loops an
// Annex-B H.264 asset and records exactly what it sent, and a launcher for GStreamer's RTSP server. Every
// peer listens on 127.0.0.1 only; this package is test tooling and must never be imported by production
// code.
package rtsptest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"

	"sightline/media"
)

// SentAU is one access unit the server sent.
type SentAU struct {
	Index    int // position in the asset (0-based, within one loop)
	Loop     int
	NALUs    [][]byte
	RTPTime  uint32
	Keyframe bool
}

// ServerConfig configures an in-process RTSP server.
type ServerConfig struct {
	// AnnexBPath is an H.264 Annex-B file with an access unit delimiter before every access unit (the
	// shared camera assets are).
	AnnexBPath string
	// FPS paces the stream; 0 means 25.
	FPS float64
	// UDP also serves the UDP transport, on loopback ports. Off: TCP only (SETUP over UDP gets 461).
	UDP bool
	// User and Pass, when User is set, are required from readers (basic or digest, as gortsplib offers).
	User, Pass string
	// Silent accepts PLAY but sends no packet until SetSending(true).
	Silent bool
	// OmitParams leaves SPS/PPS out of the SDP.
	OmitParams bool
	// Path is the mount, default "/cam1".
	Path string
	// BeforeWrite, when set, is called for every access unit just before its RTP packets are written,
	// with its index since the start (counting on across loops) and the wall-clock of that moment; it
	// returns the NAL units to send instead (benchmarks stamp each frame this way). The log of sent
	// access units records what was returned.
	BeforeWrite func(index uint64, nalus [][]byte, now time.Time) [][]byte
}

// Server is an in-process gortsplib RTSP server looping an asset in real time.
type Server struct {
	// URL is the stream's rtsp:// URL (with no credentials).
	URL string
	// Host is 127.0.0.1:port.
	Host string

	cfg    ServerConfig
	aus    [][][]byte
	srv    *gortsplib.Server
	stream *gortsplib.ServerStream
	medi   *description.Media

	mu      sync.Mutex
	sent    []SentAU
	sending bool

	done chan struct{}
	wg   sync.WaitGroup
}

// maxRecorded bounds the log of sent access units (about 6 minutes at 25 fps).
const maxRecorded = 10000

// SplitAUD splits an Annex-B stream into access units at each access unit delimiter (H.264 type 9).
func SplitAUD(annexB []byte) [][][]byte {
	var aus [][][]byte
	for _, nalu := range media.SplitAnnexB(annexB) {
		if media.NALUType(media.CodecH264, nalu) == 9 || len(aus) == 0 {
			aus = append(aus, nil)
		}
		aus[len(aus)-1] = append(aus[len(aus)-1], nalu)
	}
	return aus
}

// StartServer starts a server on 127.0.0.1 at a free port and stops it when the test ends.
func StartServer(t testing.TB, cfg ServerConfig) *Server {
	t.Helper()
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// NewServer starts a server on 127.0.0.1 at a free port. Close stops it.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.FPS == 0 {
		cfg.FPS = 25
	}
	if cfg.Path == "" {
		cfg.Path = "/cam1"
	}
	buf, err := os.ReadFile(cfg.AnnexBPath)
	if err != nil {
		return nil, err
	}
	aus := SplitAUD(buf)
	if len(aus) == 0 {
		return nil, fmt.Errorf("%s holds no access unit", cfg.AnnexBPath)
	}
	forma := &format.H264{PayloadTyp: 96, PacketizationMode: 1}
	if !cfg.OmitParams {
		for _, au := range aus {
			for _, n := range au {
				switch media.NALUType(media.CodecH264, n) {
				case 7:
					if forma.SPS == nil {
						forma.SPS = n
					}
				case 8:
					if forma.PPS == nil {
						forma.PPS = n
					}
				}
			}
		}
	}
	s := &Server{cfg: cfg, aus: aus, sending: !cfg.Silent, done: make(chan struct{})}
	s.medi = &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{forma}}

	for attempt := 0; ; attempt++ {
		host, rtp, err := freePorts(cfg.UDP)
		if err != nil {
			return nil, err
		}
		s.srv = &gortsplib.Server{Handler: s, RTSPAddress: host}
		if cfg.UDP {
			s.srv.UDPRTPAddress = fmt.Sprintf("127.0.0.1:%d", rtp)
			s.srv.UDPRTCPAddress = fmt.Sprintf("127.0.0.1:%d", rtp+1)
		}
		if err = s.srv.Start(); err == nil {
			s.Host = host
			break
		}
		if attempt == 5 {
			return nil, fmt.Errorf("start rtsp server: %w", err)
		}
	}
	s.URL = "rtsp://" + s.Host + cfg.Path
	s.stream = &gortsplib.ServerStream{Server: s.srv, Desc: &description.Session{Medias: []*description.Media{s.medi}}}
	if err := s.stream.Initialize(); err != nil {
		s.srv.Close()
		return nil, err
	}
	s.wg.Add(1)
	go s.pace(forma)
	return s, nil
}

// URLWithAuth returns the stream URL carrying user:pass@.
func (s *Server) URLWithAuth(user, pass string) string {
	return "rtsp://" + user + ":" + pass + "@" + s.Host + s.cfg.Path
}

// freePorts picks a free loopback TCP port, and with udp an even UDP port whose successor is free too.
func freePorts(udp bool) (host string, rtpPort int, err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", 0, err
	}
	host = l.Addr().String()
	l.Close()
	if !udp {
		return host, 0, nil
	}
	for i := 0; i < 50; i++ {
		c1, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", 0, err
		}
		p := c1.LocalAddr().(*net.UDPAddr).Port
		c1.Close()
		if p%2 != 0 || p >= 65535 {
			continue
		}
		c2, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p+1))
		if err != nil {
			continue
		}
		c2.Close()
		return host, p, nil
	}
	return "", 0, fmt.Errorf("no free UDP port pair on loopback")
}

// pace writes the asset's access units in real time, looping, with RTP timestamps i*90000/fps
// continuing across loops.
func (s *Server) pace(forma *format.H264) {
	defer s.wg.Done()
	enc, err := forma.CreateEncoder()
	if err != nil {
		panic(err) // static configuration: cannot fail
	}
	const tsBase = 1_000_000 // a non-zero start, so that tests see real values
	period := time.Duration(float64(time.Second) / s.cfg.FPS)
	start := time.Now()
	t := time.NewTimer(0)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		idx := i % len(s.aus)
		au := s.aus[idx]
		ts := uint32(tsBase + int64(float64(i)*media.VideoClockRate/s.cfg.FPS))
		s.mu.Lock()
		sending := s.sending
		s.mu.Unlock()
		if sending {
			now := time.Now()
			if s.cfg.BeforeWrite != nil {
				au = s.cfg.BeforeWrite(uint64(i), au, now)
			}
			s.mu.Lock()
			if len(s.sent) < maxRecorded {
				s.sent = append(s.sent, SentAU{Index: idx, Loop: i / len(s.aus), NALUs: au, RTPTime: ts,
					Keyframe: media.IsKeyframe(media.CodecH264, au)})
			}
			s.mu.Unlock()
			if pkts, err := enc.Encode(au); err == nil {
				for _, pkt := range pkts {
					pkt.Timestamp = ts
					_ = s.stream.WritePacketRTPWithNTP(s.medi, pkt, now)
				}
			}
		}
		t.Reset(time.Until(start.Add(time.Duration(i+1) * period)))
	}
}

// SetSending starts or stops sending packets (the stream's clock runs on either way).
func (s *Server) SetSending(on bool) {
	s.mu.Lock()
	s.sending = on
	s.mu.Unlock()
}

// Sent returns a copy of the log of sent access units, in order.
func (s *Server) Sent() []SentAU {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SentAU(nil), s.sent...)
}

// FindSent returns the sent access unit with RTP timestamp ts.
func (s *Server) FindSent(ts uint32) (SentAU, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.sent) - 1; i >= 0; i-- {
		if s.sent[i].RTPTime == ts {
			return s.sent[i], true
		}
	}
	return SentAU{}, false
}

// SameNALUs reports whether two access units hold byte-identical NAL units.
func SameNALUs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// Close stops the server, disconnecting every client. It is safe to call more than once.
func (s *Server) Close() {
	select {
	case <-s.done:
		return
	default:
	}
	close(s.done)
	s.wg.Wait()
	s.stream.Close()
	s.srv.Close()
}

func (s *Server) auth(req *base.Request, conn *gortsplib.ServerConn) (*base.Response, error) {
	if s.cfg.User == "" || conn.VerifyCredentials(req, s.cfg.User, s.cfg.Pass) {
		return nil, nil
	}
	return &base.Response{StatusCode: base.StatusUnauthorized}, liberrors.ErrServerAuth{}
}

// OnDescribe implements gortsplib.ServerHandlerOnDescribe.
func (s *Server) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if res, err := s.auth(ctx.Request, ctx.Conn); res != nil {
		return res, nil, err
	}
	if ctx.Path != s.cfg.Path {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, s.stream, nil
}

// OnSetup implements gortsplib.ServerHandlerOnSetup.
func (s *Server) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if res, err := s.auth(ctx.Request, ctx.Conn); res != nil {
		return res, nil, err
	}
	return &base.Response{StatusCode: base.StatusOK}, s.stream, nil
}

// OnPlay implements gortsplib.ServerHandlerOnPlay.
func (s *Server) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}
