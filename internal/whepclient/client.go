// Package whepclient owns a WHEP (RFC 9725) receiving client for Sightline's tests and benchmarks: it
// posts a recvonly offer, receives H.264 over pion/webrtc and reassembles whole access units. It only
// receives; in LoopbackOnly mode it must never send a packet to, or dial, a non-loopback address.
package whepclient

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

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"sightline/internal/rtcloop"
)

// Frame is one H.264 access unit as received.
type Frame struct {
	// NALUs of the access unit, without start codes or length prefixes.
	NALUs [][]byte
	// RTPTime is the RTP timestamp the sender gave the access unit.
	RTPTime uint32
	// Keyframe is true when the access unit holds an IDR slice.
	Keyframe bool
	// FirstPacketAt is when the first RTP packet of the access unit was read; CompleteAt when the last.
	FirstPacketAt, CompleteAt time.Time
	// Packets is the number of RTP packets the access unit arrived in.
	Packets int
}

// Options configure a Client.
type Options struct {
	// LoopbackOnly keeps every packet on loopback (BROWSER.md): UDP4 on lo only, loopback candidates,
	// mDNS off, a socket bound to 127.0.0.1 that refuses to write elsewhere, and a WHEP URL whose host
	// must be a loopback address or "localhost".
	LoopbackOnly bool
	// SendPLI sends a Picture Loss Indication when the video track starts, asking for a keyframe.
	SendPLI bool
	// Token, when set, is sent as "Authorization: Bearer <Token>" on every WHEP request.
	Token string
	// Audio also offers a recvonly Opus transceiver (its packets are read and discarded).
	Audio bool
	// OnFrame, when set, is called with every complete access unit on the receiving goroutine (keep it
	// short). When nil, frames go to the Frames channel instead.
	OnFrame func(Frame)
	// FrameBuffer is the capacity of the Frames channel (default 256). A full channel drops the frame
	// and counts it in Stats.Dropped; the receiver never blocks.
	FrameBuffer int
	// HTTPClient is used for the WHEP requests (default: a client with a 10 s timeout).
	HTTPClient *http.Client
	// Logger receives debug logs (default: discard).
	Logger *slog.Logger
}

// Stats are running counters of a Client.
type Stats struct {
	Packets    uint64 // RTP packets read on the video track
	Lost       uint64 // RTP packets missing by sequence number gaps
	Frames     uint64 // complete access units delivered (or dropped on a full channel)
	Incomplete uint64 // access units discarded because a packet of theirs was lost or unparsable
	Dropped    uint64 // frames dropped because the Frames channel was full
	Keyframes  uint64 // keyframes among Frames
}

// Client is one WHEP viewer session.
type Client struct {
	opts     Options
	log      *slog.Logger
	pc       *webrtc.PeerConnection
	mux      ice.UDPMux
	http     *http.Client
	location string
	frames   chan Frame

	connected chan struct{}
	connOnce  sync.Once
	failed    chan struct{}
	failOnce  sync.Once

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup

	packets, lost, nFrames, incomplete, dropped, keyframes atomic.Uint64
}

// Dial negotiates a WHEP session with the endpoint at rawURL and returns once the answer is applied
// (ICE and DTLS continue in the background; see WaitConnected).
func Dial(ctx context.Context, rawURL string, opts Options) (*Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("whep: parse url: %w", err)
	}
	if opts.LoopbackOnly && !rtcloop.IsLoopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("whep: LoopbackOnly refuses non-loopback host %q", u.Hostname())
	}
	c := &Client{
		opts:      opts,
		log:       opts.Logger,
		http:      opts.HTTPClient,
		connected: make(chan struct{}),
		failed:    make(chan struct{}),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.OnFrame == nil {
		n := opts.FrameBuffer
		if n <= 0 {
			n = 256
		}
		c.frames = make(chan Frame, n)
	}
	if err := c.newPeerConnection(); err != nil {
		c.closeTransport()
		return nil, err
	}
	if err := c.negotiate(ctx, u); err != nil {
		c.closeTransport()
		return nil, err
	}
	return c, nil
}

func (c *Client) newPeerConnection() error {
	m := &webrtc.MediaEngine{}
	fb := []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}}
	for _, v := range []struct {
		pt   webrtc.PayloadType
		fmtp string
	}{
		{106, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"},
		{102, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f"},
		{127, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f"},
		{112, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f"},
	} {
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{
				MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: v.fmtp, RTCPFeedback: fb,
			},
			PayloadType: v.pt,
		}, webrtc.RTPCodecTypeVideo); err != nil {
			return fmt.Errorf("whep: register H264: %w", err)
		}
	}
	if c.opts.Audio {
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{
				MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1",
			},
			PayloadType: 111,
		}, webrtc.RTPCodecTypeAudio); err != nil {
			return fmt.Errorf("whep: register Opus: %w", err)
		}
	}
	reg := &interceptor.Registry{}
	if err := webrtc.ConfigureNack(m, reg); err != nil {
		return fmt.Errorf("whep: configure NACK: %w", err)
	}
	if err := webrtc.ConfigureRTCPReports(reg); err != nil {
		return fmt.Errorf("whep: configure RTCP reports: %w", err)
	}

	se := webrtc.SettingEngine{}
	if c.opts.LoopbackOnly {
		// Keyframes arrive as bursts of ~100 packets; the default receive buffer (208 KiB of skb truesize)
		// overflows on loopback. The kernel caps this at net.core.rmem_max.
		mux, err := rtcloop.Socket(&se, 4<<20, 0)
		if err != nil {
			return fmt.Errorf("whep: %w", err)
		}
		c.mux = mux
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return fmt.Errorf("whep: new peer connection: %w", err)
	}
	c.pc = pc
	recvonly := webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, recvonly); err != nil {
		return fmt.Errorf("whep: add video transceiver: %w", err)
	}
	if c.opts.Audio {
		if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, recvonly); err != nil {
			return fmt.Errorf("whep: add audio transceiver: %w", err)
		}
	}
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		c.log.Debug("whep: connection state", "state", s.String())
		switch s {
		case webrtc.PeerConnectionStateConnected:
			c.connOnce.Do(func() { close(c.connected) })
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			c.failOnce.Do(func() { close(c.failed) })
		}
	})
	pc.OnTrack(c.onTrack)
	return nil
}

func (c *Client) negotiate(ctx context.Context, u *url.URL) error {
	loc, _, err := c.exchange().Negotiate(ctx, c.pc, u)
	if err != nil {
		return fmt.Errorf("whep: %w", err)
	}
	c.location = loc
	return nil
}

// exchange is the client's signaling over HTTP.
func (c *Client) exchange() rtcloop.Exchange {
	return rtcloop.Exchange{HTTP: c.http, Token: c.opts.Token, LoopbackOnly: c.opts.LoopbackOnly}
}

// Location returns the session URL the server gave in its 201 answer ("" if none).
func (c *Client) Location() string { return c.location }

// Frames returns the channel of complete access units (nil when Options.OnFrame is set). It is closed by
// Close once the receiver has stopped.
func (c *Client) Frames() <-chan Frame { return c.frames }

// Connected is closed once the PeerConnection reaches the connected state.
func (c *Client) Connected() <-chan struct{} { return c.connected }

// WaitConnected waits until the PeerConnection is connected, fails, or ctx ends.
func (c *Client) WaitConnected(ctx context.Context) error {
	select {
	case <-c.connected:
		return nil
	case <-c.failed:
		return errors.New("whep: peer connection failed or closed")
	case <-ctx.Done():
		return fmt.Errorf("whep: wait for connection: %w", ctx.Err())
	}
}

// Stats returns the running counters.
func (c *Client) Stats() Stats {
	return Stats{
		Packets:    c.packets.Load(),
		Lost:       c.lost.Load(),
		Frames:     c.nFrames.Load(),
		Incomplete: c.incomplete.Load(),
		Dropped:    c.dropped.Load(),
		Keyframes:  c.keyframes.Load(),
	}
}

func (c *Client) onTrack(track *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.wg.Add(1)
	c.mu.Unlock()
	defer c.wg.Done()

	if track.Kind() != webrtc.RTPCodecTypeVideo || !strings.EqualFold(track.Codec().MimeType, webrtc.MimeTypeH264) {
		c.log.Debug("whep: discarding track", "kind", track.Kind().String(), "codec", track.Codec().MimeType)
		buf := make([]byte, 1500)
		for {
			if _, _, err := track.Read(buf); err != nil {
				return
			}
		}
	}
	if c.opts.SendPLI {
		if err := c.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(track.SSRC())}}); err != nil {
			c.log.Debug("whep: send PLI", "err", err)
		}
	}
	a := newAssembler(c.deliver)
	for {
		pkt, _, err := track.ReadRTP()
		if err != nil {
			return
		}
		c.packets.Add(1)
		a.push(pkt, time.Now())
		c.lost.Store(a.lost)
		c.incomplete.Store(a.incomplete)
	}
}

func (c *Client) deliver(f Frame) {
	c.nFrames.Add(1)
	if f.Keyframe {
		c.keyframes.Add(1)
	}
	if c.opts.OnFrame != nil {
		c.opts.OnFrame(f)
		return
	}
	select {
	case c.frames <- f:
	default:
		c.dropped.Add(1)
	}
}

// Close ends the session: DELETE on the session URL (best effort, 2 s), then closes the PeerConnection and
// waits for the receiving goroutines. The Frames channel is closed afterwards.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()

	var errs []error
	if c.location != "" {
		if err := c.exchange().Delete(c.location); err != nil {
			errs = append(errs, fmt.Errorf("whep: %w", err))
		}
	}
	errs = append(errs, c.closeTransport())
	c.wg.Wait()
	if c.frames != nil {
		close(c.frames)
	}
	return errors.Join(errs...)
}

func (c *Client) closeTransport() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	var errs []error
	if c.pc != nil {
		if err := c.pc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("whep: close peer connection: %w", err))
		}
	}
	if c.mux != nil {
		_ = c.mux.Close()
	}
	return errors.Join(errs...)
}
