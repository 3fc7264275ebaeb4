// Package whipclient owns a WHIP (RFC 9725) publishing client for Sightline's tests: it posts a sendonly
// H.264 offer, then sends access units over pion/webrtc with the RTP timestamps its caller chooses, and
// counts the keyframe requests (PLI/FIR) the server sends back. In LoopbackOnly mode it never sends a
// packet to, or dials, a non-loopback address.
package whipclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"sightline/internal/rtcloop"
)

// Options configure a Client.
type Options struct {
	// LoopbackOnly keeps every packet on loopback (BROWSER.md): UDP4 on lo only, loopback candidates,
	// mDNS off, a socket bound to 127.0.0.1 that refuses to write elsewhere, and a URL whose host must be
	// a loopback address or "localhost".
	LoopbackOnly bool
	// Token, when set, is sent as "Authorization: Bearer <Token>" on every WHIP request.
	Token string
	// HTTPClient is used for the WHIP requests (default: a client with a 10 s timeout).
	HTTPClient *http.Client
	// Logger receives debug logs (default: discard).
	Logger *slog.Logger
}

// StatusError is a refused offer: the HTTP status and body.
type StatusError = rtcloop.StatusError

// mtu is the RTP payload size the client packetizes to.
const mtu = 1200

// Client is one WHIP publisher session.
type Client struct {
	opts     Options
	log      *slog.Logger
	pc       *webrtc.PeerConnection
	track    *webrtc.TrackLocalStaticRTP
	mux      ice.UDPMux
	http     *http.Client
	location string
	answer   string

	connected chan struct{}
	connOnce  sync.Once
	failed    chan struct{}
	failOnce  sync.Once

	wmu  sync.Mutex // WriteAccessUnit
	pay  codecs.H264Payloader
	seq  uint16
	plis atomic.Uint64

	closeOnce   sync.Once
	rtcpStarted bool
	rtcpDone    chan struct{}
}

// Dial negotiates a WHIP session with the endpoint at rawURL and returns once the answer is applied
// (ICE and DTLS continue in the background; see WaitConnected). A refused offer is a *StatusError.
func Dial(ctx context.Context, rawURL string, opts Options) (*Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("whip: parse url: %w", err)
	}
	if opts.LoopbackOnly && !rtcloop.IsLoopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("whip: LoopbackOnly refuses non-loopback host %q", u.Hostname())
	}
	c := &Client{opts: opts, log: opts.Logger, http: opts.HTTPClient, connected: make(chan struct{}),
		failed: make(chan struct{}), rtcpDone: make(chan struct{}), seq: 1000}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: 10 * time.Second}
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
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", RTCPFeedback: fb},
		PayloadType: 102,
	}, webrtc.RTPCodecTypeVideo); err != nil {
		return fmt.Errorf("whip: register H264: %w", err)
	}
	reg := &interceptor.Registry{}
	if err := webrtc.ConfigureNack(m, reg); err != nil { // answers the server's NACKs from a history
		return fmt.Errorf("whip: configure NACK: %w", err)
	}
	if err := webrtc.ConfigureRTCPReports(reg); err != nil { // sender reports: the server learns NTP time
		return fmt.Errorf("whip: configure RTCP reports: %w", err)
	}
	se := webrtc.SettingEngine{}
	if c.opts.LoopbackOnly {
		mux, err := rtcloop.Socket(&se, 0, 4<<20)
		if err != nil {
			return fmt.Errorf("whip: %w", err)
		}
		c.mux = mux
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return fmt.Errorf("whip: new peer connection: %w", err)
	}
	c.pc = pc
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000},
		"video", "sightline-whipclient")
	if err != nil {
		return fmt.Errorf("whip: new track: %w", err)
	}
	c.track = track
	sender, err := pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return fmt.Errorf("whip: add video transceiver: %w", err)
	}
	c.rtcpStarted = true
	go c.readRTCP(sender.Sender())
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		c.log.Debug("whip: connection state", "state", s.String())
		switch s {
		case webrtc.PeerConnectionStateConnected:
			c.connOnce.Do(func() { close(c.connected) })
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			c.failOnce.Do(func() { close(c.failed) })
		}
	})
	return nil
}

// readRTCP counts the server's keyframe requests; it ends when the PeerConnection closes.
func (c *Client) readRTCP(sender *webrtc.RTPSender) {
	defer close(c.rtcpDone)
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				c.plis.Add(1)
			}
		}
	}
}

func (c *Client) negotiate(ctx context.Context, u *url.URL) error {
	loc, answer, err := c.exchange().Negotiate(ctx, c.pc, u)
	if err != nil {
		return fmt.Errorf("whip: %w", err)
	}
	c.location = loc
	c.answer = answer
	return nil
}

// exchange is the client's signaling over HTTP.
func (c *Client) exchange() rtcloop.Exchange {
	return rtcloop.Exchange{HTTP: c.http, Token: c.opts.Token, LoopbackOnly: c.opts.LoopbackOnly}
}

// Location returns the session URL the server gave in its 201 answer ("" if none).
func (c *Client) Location() string { return c.location }

// Answer returns the server's SDP answer.
func (c *Client) Answer() string { return c.answer }

// PLIs returns how many keyframe requests (PLI or FIR) the server sent.
func (c *Client) PLIs() uint64 { return c.plis.Load() }

// WaitConnected waits until the PeerConnection is connected, fails, or ctx ends.
func (c *Client) WaitConnected(ctx context.Context) error {
	select {
	case <-c.connected:
		return nil
	case <-c.failed:
		return errors.New("whip: peer connection failed or closed")
	case <-ctx.Done():
		return fmt.Errorf("whip: wait for connection: %w", ctx.Err())
	}
}

// WriteAccessUnit packetizes one access unit (NAL units without start codes; AUDs are dropped by the
// payloader, SPS and PPS go out as a STAP-A, big NAL units as FU-A) and sends it with RTP timestamp
// rtpTime, the marker bit on its last packet.
func (c *Client) WriteAccessUnit(nalus [][]byte, rtpTime uint32) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var payloads [][]byte
	for _, n := range nalus {
		payloads = append(payloads, c.pay.Payload(mtu, append([]byte{0, 0, 0, 1}, n...))...)
	}
	for i, p := range payloads {
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: c.seq, Timestamp: rtpTime,
			Marker: i == len(payloads)-1}, Payload: p}
		c.seq++
		if err := c.track.WriteRTP(pkt); err != nil {
			return fmt.Errorf("whip: write RTP: %w", err)
		}
	}
	return nil
}

// Close ends the session: DELETE on the session URL (best effort, 2 s), then closes the PeerConnection.
func (c *Client) Close() error {
	var errs []error
	c.closeOnce.Do(func() {
		if c.location != "" {
			if err := c.exchange().Delete(c.location); err != nil {
				errs = append(errs, fmt.Errorf("whip: %w", err))
			}
		}
		errs = append(errs, c.closeTransport())
	})
	return errors.Join(errs...)
}

func (c *Client) closeTransport() error {
	var errs []error
	if c.pc != nil {
		if err := c.pc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("whip: close peer connection: %w", err))
		}
		if c.rtcpStarted {
			<-c.rtcpDone
		}
	}
	if c.mux != nil {
		_ = c.mux.Close()
	}
	return errors.Join(errs...)
}
