// Package rtsp owns pulling one RTSP/RTSPS camera into a media.Stream: connecting, depacketizing H.264
// and H.265 into access units, watching for silence and reconnecting with backoff; it must never log or
// report a URL's credentials, and never block on the Stream's readers.
package rtsp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/pion/rtp"

	"sightline/media"
)

// Transport choices of Config.Transport.
const (
	TransportAuto = "auto"
	TransportTCP  = "tcp"
	TransportUDP  = "udp"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultReadTimeout = 5 * time.Second
	DefaultDialTimeout = 5 * time.Second
	DefaultBackoffMin  = 200 * time.Millisecond
	DefaultBackoffMax  = 5 * time.Second
)

// udpReadBufferSize is the socket buffer asked for RTP over UDP: a 1080p keyframe arrives as a burst of
// a hundred packets or more, which the OS default (208 KiB on Linux) can overflow. Linux caps it at
// net.core.rmem_max.
const udpReadBufferSize = 4 << 20

// healthyAfter is how long a session must stream before the reconnect backoff starts again from
// BackoffMin: a camera that drops right after connecting is retried ever more slowly.
const healthyAfter = 10 * time.Second

// Config configures a Source.
type Config struct {
	// URL is rtsp:// or rtsps://, optionally with user:pass@ (digest or basic auth, whichever the
	// camera asks for). It is never logged or reported as is: see Redact.
	URL string
	// Transport is "auto" (default: UDP, falling back to TCP when the camera refuses UDP or no UDP
	// packet arrives within 3 s, as gortsplib does), "tcp" or "udp".
	Transport string
	// ReadTimeout is the watchdog: connected and playing but no access unit for this long is a failure
	// that causes a reconnect. Default 5 s.
	ReadTimeout time.Duration
	// DialTimeout bounds the TCP (and TLS) connection to the camera. Default 5 s.
	DialTimeout time.Duration
	// BackoffMin and BackoffMax bound the reconnect delay, which doubles after each failure (with ±20 %
	// jitter) and starts again from BackoffMin after a session that streamed for 10 s. Defaults 200 ms
	// and 5 s.
	BackoffMin time.Duration
	BackoffMax time.Duration
	// TLSInsecure skips verification of an rtsps:// camera's certificate (most cameras present a
	// self-signed one). When false, the certificate must chain to the system roots and match the host,
	// which is gortsplib's default.
	TLSInsecure bool
	// Logger receives the source's logs; the caller sets the "camera" field. nil means slog.Default().
	Logger *slog.Logger
}

// Source pulls one camera into a media.Stream, reconnecting forever until its context ends.
type Source struct {
	cfg Config
	out *media.Stream
	log *slog.Logger

	status  *media.StatusTracker
	lastAU  atomic.Int64 // unix nanoseconds of the last access unit decoded, for the watchdog
	running atomic.Bool
}

// New returns a Source that writes access units to out. out is kept across reconnects: its readers
// receive frames again from the next keyframe after a reconnect. Run starts it.
func New(cfg Config, out *media.Stream) *Source {
	if cfg.Transport == "" {
		cfg.Transport = TransportAuto
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = DefaultBackoffMin
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = DefaultBackoffMax
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = cfg.BackoffMin
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Source{cfg: cfg, out: out, log: log.With("url", Redact(cfg.URL)), status: media.NewStatusTracker(media.SourceStatus{})}
}

// Status returns a snapshot of the source's health. LastError never contains credentials.
func (s *Source) Status() media.SourceStatus { return s.status.Status() }

// Run pulls the camera until ctx ends, reconnecting after every failure with capped exponential
// backoff. It returns nil when ctx ends, and an error at once (without retrying) only when the
// configuration can never work: an invalid URL or transport, or a second concurrent Run.
func (s *Source) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("rtsp source is already running")
	}
	defer s.running.Store(false)

	u, transport, err := s.checkConfig()
	if err != nil {
		s.status.Update(func(st *media.SourceStatus) {
			st.State, st.LastError, st.Since = media.StateStopped, err.Error(), time.Now()
		})
		return err
	}

	backoff := s.cfg.BackoffMin
	state := media.StateConnecting
	for {
		s.status.SetState(state)
		streamedFor, err := s.session(ctx, u, transport)
		if ctx.Err() != nil {
			s.status.SetState(media.StateStopped)
			return nil
		}
		if streamedFor >= healthyAfter {
			backoff = s.cfg.BackoffMin
		}
		msg := s.scrub(err.Error())
		delay := jitter(backoff)
		s.status.Update(func(st *media.SourceStatus) {
			st.LastError = msg
			st.RestartCount++
			st.State, st.Since = media.StateReconnecting, time.Now()
		})
		s.status.ResetRates()
		s.log.Warn("rtsp source failed, reconnecting", "error", msg, "retry_in", delay.Round(time.Millisecond))
		state = media.StateReconnecting
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			s.status.SetState(media.StateStopped)
			return nil
		case <-t.C:
		}
		backoff = min(backoff*2, s.cfg.BackoffMax)
	}
}

func (s *Source) checkConfig() (*base.URL, *gortsplib.Transport, error) {
	if err := ValidateURL(s.cfg.URL); err != nil {
		return nil, nil, err
	}
	u, err := base.ParseURL(s.cfg.URL)
	if err != nil {
		return nil, nil, fmt.Errorf("url %s does not parse", Redact(s.cfg.URL))
	}
	u.Scheme = strings.ToLower(u.Scheme)
	switch strings.ToLower(s.cfg.Transport) {
	case TransportAuto:
		return u, nil, nil
	case TransportTCP:
		v := gortsplib.TransportTCP
		return u, &v, nil
	case TransportUDP:
		v := gortsplib.TransportUDP
		return u, &v, nil
	}
	return nil, nil, fmt.Errorf("transport %q is not one of auto, tcp, udp", s.cfg.Transport)
}

// jitter spreads d by ±20 % so that many cameras behind one failed switch do not reconnect in step.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// scrub removes the URL's credentials from a message, whatever a library put into it.
func (s *Source) scrub(msg string) string {
	u, err := base.ParseURL(s.cfg.URL)
	if err != nil || u.User == nil {
		return strings.ReplaceAll(msg, s.cfg.URL, Redact(s.cfg.URL))
	}
	msg = strings.ReplaceAll(msg, s.cfg.URL, Redact(s.cfg.URL))
	if ui := u.User.String(); ui != "" {
		msg = strings.ReplaceAll(msg, ui, "***")
	}
	if p, ok := u.User.Password(); ok && p != "" {
		msg = strings.ReplaceAll(msg, p, "***")
	}
	return msg
}

// videoTrack is the one video format a session reads, with its depacketizer.
type videoTrack struct {
	codec  media.Codec
	medi   *description.Media
	forma  format.Format
	decode func(*rtp.Packet) ([][]byte, error)
	params media.Params
}

func findVideo(desc *description.Session) (*videoTrack, error) {
	var h264 *format.H264
	if medi := desc.FindFormat(&h264); medi != nil {
		dec, err := h264.CreateDecoder()
		if err != nil {
			return nil, err
		}
		sps, pps := h264.SafeParams()
		return &videoTrack{
			codec: media.CodecH264, medi: medi, forma: h264, decode: dec.Decode,
			params: media.Params{Codec: media.CodecH264, SPS: sps, PPS: pps},
		}, nil
	}
	var h265 *format.H265
	if medi := desc.FindFormat(&h265); medi != nil {
		dec, err := h265.CreateDecoder()
		if err != nil {
			return nil, err
		}
		vps, sps, pps := h265.SafeParams()
		return &videoTrack{
			codec: media.CodecH265, medi: medi, forma: h265, decode: dec.Decode,
			params: media.Params{Codec: media.CodecH265, VPS: vps, SPS: sps, PPS: pps},
		}, nil
	}
	return nil, nil
}

// isNormalDecodeErr reports the depacketizer errors that only mean "wait for more packets".
func isNormalDecodeErr(err error) bool {
	return errors.Is(err, rtph264.ErrMorePacketsNeeded) ||
		errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) ||
		errors.Is(err, rtph265.ErrMorePacketsNeeded) ||
		errors.Is(err, rtph265.ErrNonStartingPacketAndNoPrevious)
}

// session runs one connection: DESCRIBE, SETUP of the video media, PLAY, then reading until an error,
// the watchdog or ctx. It returns how long it streamed and why it ended.
func (s *Source) session(ctx context.Context, u *base.URL, transport *gortsplib.Transport) (time.Duration, error) {
	redacted := Redact(s.cfg.URL)
	var localIP atomic.Value // net.IP of our end of the RTSP connection
	dialer := &net.Dialer{Timeout: s.cfg.DialTimeout}
	c := &gortsplib.Client{
		Scheme:    u.Scheme,
		Host:      u.Host,
		Transport: transport,
		// gortsplib's own read timeout (for RTSP responses, and for silent TCP/UDP transports) is kept
		// above the watchdog so that silence is reported by the watchdog, in its words.
		ReadTimeout:       s.cfg.ReadTimeout + s.cfg.DialTimeout,
		UDPReadBufferSize: udpReadBufferSize,
		WriteTimeout:      s.cfg.DialTimeout,
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			conn, err := dialer.DialContext(ctx, network, address)
			if err == nil {
				if a, ok := conn.LocalAddr().(*net.TCPAddr); ok {
					localIP.Store(a.IP)
				}
			}
			return conn, err
		},
		// A camera on loopback sends RTP to loopback: bind the UDP ports there too, not on every
		// interface.
		ListenPacket: func(network, address string) (net.PacketConn, error) {
			if ip, ok := localIP.Load().(net.IP); ok && ip.IsLoopback() {
				if _, port, err := net.SplitHostPort(address); err == nil {
					address = net.JoinHostPort(ip.String(), port)
				}
			}
			return net.ListenPacket(network, address)
		},
		OnTransportSwitch: func(err error) {
			s.log.Info("rtsp transport switched", "reason", err.Error())
			s.status.Update(func(st *media.SourceStatus) { st.Transport = "tcp" })
			s.lastAU.Store(time.Now().UnixNano()) // give the new transport a full watchdog period
		},
		OnPacketsLost: func(lost uint64) { s.log.Debug("rtp packets lost", "count", lost) },
		OnDecodeError: func(err error) { s.log.Debug("rtp decode error", "error", s.scrub(err.Error())) },
	}
	if s.cfg.TLSInsecure {
		c.TLSConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // opt-in for self-signed cameras
	}
	if err := c.Start2(); err != nil {
		return 0, fmt.Errorf("start client for %s: %w", redacted, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, c.Close) // unblocks Describe/Setup/Play on cancel
	defer stop()

	s.log.Debug("rtsp connecting")
	desc, _, err := c.Describe(u)
	if err != nil {
		return 0, fmt.Errorf("describe %s: %w", redacted, err)
	}
	vt, err := findVideo(desc)
	if err != nil {
		return 0, fmt.Errorf("video track of %s: %w", redacted, err)
	}
	if vt == nil {
		return 0, fmt.Errorf("no H.264/H.265 video track in %s", redacted)
	}
	res, err := c.Setup(desc.BaseURL, vt.medi, 0, 0)
	if err != nil {
		return 0, fmt.Errorf("setup %s: %w", redacted, err)
	}
	tname := transportName(res)
	s.status.Update(func(st *media.SourceStatus) { st.Codec, st.Transport = vt.codec, tname })
	if !vt.params.Empty() {
		s.out.SetParams(vt.params)
	}

	var firstAU sync.Once
	var streamingSince atomic.Int64
	asm := assembler{}
	seenKeyframe := false // touched only by gortsplib's packet goroutine
	var firstPacket sync.Once
	c.OnPacketRTP(vt.medi, vt.forma, func(pkt *rtp.Packet) {
		firstPacket.Do(func() { s.log.Debug("first rtp packet") })
		// PacketPTS2 must see every packet, not only those that complete an access unit.
		pts, ptsOK := c.PacketPTS2(vt.medi, pkt)
		ntp, ntpOK := c.PacketNTP(vt.medi, pkt)
		if !ntpOK {
			ntp = time.Time{}
		}
		nalus, err := vt.decode(pkt)
		info := pktInfo{ts: pkt.Timestamp, pts: pts, ptsOK: ptsOK, ntp: ntp}
		at, complete := asm.next(info, pkt, err)
		if err != nil {
			if !isNormalDecodeErr(err) {
				s.log.Debug("depacketize", "error", err.Error())
			}
			return
		}
		if !complete {
			s.log.Debug("dropped an incomplete access unit", "rtp_time", at.ts)
			return
		}
		now := time.Now()
		s.lastAU.Store(now.UnixNano())
		if !at.ptsOK {
			return // before the first frame gortsplib can time (it waits for one with PTS = DTS)
		}
		keyframe := media.IsKeyframe(vt.codec, nalus)
		if !keyframe && !seenKeyframe {
			// Frames before this session's first keyframe reference pictures the readers never got (or
			// got from the previous connection): drop them, so a reconnect resumes at a keyframe.
			return
		}
		seenKeyframe = true
		au := &media.AccessUnit{
			Codec:    vt.codec,
			NALUs:    nalus,
			PTS:      time.Duration(at.pts) * time.Second / media.VideoClockRate,
			RTPTime:  at.ts,
			NTP:      at.ntp,
			Received: now,
			Keyframe: keyframe,
		}
		s.status.Wrote(au.Size(), now)
		firstAU.Do(func() {
			streamingSince.Store(now.UnixNano())
			s.status.SetState(media.StateStreaming)
			s.log.Info("rtsp source streaming", "codec", vt.codec, "transport", tname)
		})
		s.out.Write(au)
	})

	if _, err := c.Play(nil); err != nil {
		return 0, fmt.Errorf("play %s: %w", redacted, err)
	}
	s.log.Debug("rtsp playing", "transport", tname)
	s.lastAU.Store(time.Now().UnixNano())

	waitErr := make(chan error, 1)
	go func() { waitErr <- c.Wait() }()
	defer func() { c.Close(); <-waitErr }()

	streamed := func() time.Duration {
		if ns := streamingSince.Load(); ns != 0 {
			return time.Since(time.Unix(0, ns))
		}
		return 0
	}
	tick := time.NewTicker(min(s.cfg.ReadTimeout/10, 250*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return streamed(), ctx.Err()
		case err := <-waitErr:
			waitErr <- err // for the deferred receive
			return streamed(), fmt.Errorf("read %s: %w", redacted, err)
		case <-tick.C:
			if time.Since(time.Unix(0, s.lastAU.Load())) >= s.cfg.ReadTimeout {
				return streamed(), fmt.Errorf("no frames for %s from %s", s.cfg.ReadTimeout, redacted)
			}
		}
	}
}

// transportName reads the transport the camera accepted from the SETUP response.
func transportName(res *base.Response) string {
	if res == nil {
		return ""
	}
	var th headers.Transport
	if err := th.Unmarshal(res.Header["Transport"]); err != nil {
		return ""
	}
	if th.Protocol == headers.TransportProtocolTCP {
		return "tcp"
	}
	if th.Delivery != nil && *th.Delivery == headers.TransportDeliveryMulticast {
		return "udp-multicast"
	}
	return "udp"
}

// pktInfo is the timing of one RTP packet.
type pktInfo struct {
	ts    uint32
	pts   int64
	ptsOK bool
	ntp   time.Time
}

// assembler tracks which packet opened the access unit the depacketizer is assembling, so that an
// access unit gets its own RTP timestamp even when the depacketizer only notices its end at the next
// packet (cameras that never set the RTP marker bit: the unit is flushed when the timestamp changes).
type assembler struct {
	pending pktInfo
	has     bool
	corrupt bool // a packet of the pending unit was lost or undecodable: drop the unit when it completes
}

// next is called after the depacketizer saw pkt and answered err; it returns the timing of the access
// unit completed by this packet, and false when that unit is incomplete and must be dropped.
func (a *assembler) next(info pktInfo, pkt *rtp.Packet, err error) (pktInfo, bool) {
	if a.has && a.pending.ts == info.ts {
		// Packets of one unit share its timestamp, but gortsplib can time only some of them (those that
		// start an IDR, SPS or PPS, until the first such packet): keep what any of them told.
		if !a.pending.ptsOK && info.ptsOK {
			a.pending.pts, a.pending.ptsOK = info.pts, true
		}
		if a.pending.ntp.IsZero() {
			a.pending.ntp = info.ntp
		}
	}
	switch {
	case err == nil:
		corrupt := a.corrupt
		a.corrupt = false
		if a.has && a.pending.ts != pkt.Timestamp {
			// Flushed by a timestamp change: the unit is the previous one, and this packet now opens
			// the next unit (the depacketizer returns before looking at its marker).
			done := a.pending
			a.pending = info
			return done, !corrupt
		}
		done := info
		if a.has {
			done = a.pending
		}
		a.has = false
		return done, !corrupt
	case isNormalDecodeErr(err):
		if errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) ||
			errors.Is(err, rtph265.ErrNonStartingPacketAndNoPrevious) {
			return pktInfo{}, false
		}
		if !a.has {
			a.pending, a.has = info, true
		}
		return pktInfo{}, false
	default:
		// A lost or malformed packet: the depacketizer dropped part of the unit it is assembling.
		a.corrupt = true
		if !a.has {
			a.pending, a.has = info, true
		}
		return pktInfo{}, false
	}
}
