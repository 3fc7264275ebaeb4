// Package rtcloop holds the pion set-up that Sightline's test and benchmark WebRTC clients share: ICE on
// one 127.0.0.1 UDP socket that refuses to send anywhere else (tests talk to loopback only), and the
// WHEP/WHIP offer → 201 answer exchange over HTTP.
package rtcloop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
)

// Socket configures se for loopback-only ICE on one new 127.0.0.1 UDP socket (readBuf/writeBuf > 0 set
// its kernel buffers) and returns the ICE mux, whose Close closes the socket too.
func Socket(se *webrtc.SettingEngine, readBuf, writeBuf int) (ice.UDPMux, error) {
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("listen on loopback: %w", err)
	}
	if readBuf > 0 {
		_ = conn.SetReadBuffer(readBuf)
	}
	if writeBuf > 0 {
		_ = conn.SetWriteBuffer(writeBuf)
	}
	mux := webrtc.NewICEUDPMux(nil, loopbackConn{conn})
	se.SetICEUDPMux(mux)
	return mux, nil
}

// loopbackConn refuses to write to anything but a loopback address.
type loopbackConn struct{ *net.UDPConn }

// ErrNotLoopback is what a loopback socket answers a write to another address with.
var ErrNotLoopback = errors.New("refusing to send to a non-loopback address")

func (l loopbackConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if ua, ok := addr.(*net.UDPAddr); !ok || !ua.IP.IsLoopback() {
		return 0, ErrNotLoopback
	}
	return l.UDPConn.WriteTo(p, addr)
}

// IsLoopbackHost reports whether a URL host names this machine's loopback (localhost, 127/8, ::1).
func IsLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// StatusError is a signaling answer other than 201 Created.
type StatusError struct {
	Code int
	Body string
}

func (e *StatusError) Error() string { return fmt.Sprintf("status %d: %s", e.Code, e.Body) }

// Exchange is one WHEP/WHIP offer/answer over HTTP.
type Exchange struct {
	HTTP  *http.Client
	Token string // sent as Authorization: Bearer
	// LoopbackOnly refuses a non-loopback Location and drops non-loopback candidates of the answer.
	LoopbackOnly bool
}

// Negotiate creates pc's offer, waits for its candidates, POSTs it to u and applies the 201 answer. It
// returns the session URL (Location, "" when absent) and the answer as the server sent it. A status
// other than 201 is a *StatusError.
func (x Exchange) Negotiate(ctx context.Context, pc *webrtc.PeerConnection, u *url.URL) (location, answer string, err error) {
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return "", "", fmt.Errorf("create offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return "", "", fmt.Errorf("set local description: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", "", fmt.Errorf("gather candidates: %w", ctx.Err())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(pc.LocalDescription().SDP))
	if err != nil {
		return "", "", fmt.Errorf("build offer request: %w", err)
	}
	req.Header.Set("Content-Type", "application/sdp")
	resp, err := x.do(req)
	if err != nil {
		return "", "", fmt.Errorf("post offer to %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", "", fmt.Errorf("read answer from %s: %w", u.Redacted(), err)
	}
	if resp.StatusCode != http.StatusCreated {
		return "", "", fmt.Errorf("post offer to %s: %w", u.Redacted(), &StatusError{Code: resp.StatusCode, Body: string(bytes.TrimSpace(body))})
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		lu, err := u.Parse(loc)
		if err != nil {
			return "", "", fmt.Errorf("parse Location %q: %w", loc, err)
		}
		if x.LoopbackOnly && !IsLoopbackHost(lu.Hostname()) {
			return "", "", fmt.Errorf("LoopbackOnly refuses non-loopback Location host %q", lu.Hostname())
		}
		location = lu.String()
	}
	answer = string(body)
	applied := answer
	if x.LoopbackOnly {
		applied = KeepLoopbackCandidates(answer)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: applied}); err != nil {
		return "", "", fmt.Errorf("set remote description: %w", err)
	}
	return location, answer, nil
}

// Delete ends the session at location (DELETE, best effort within 2 s); a status other than 2xx is an
// error.
func (x Exchange) Delete(location string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, location, nil)
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	resp, err := x.do(req)
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("delete session: status %d", resp.StatusCode)
	}
	return nil
}

// do sends req with the exchange's token on its HTTP client (http.DefaultClient when unset).
func (x Exchange) do(req *http.Request) (*http.Response, error) {
	if x.Token != "" {
		req.Header.Set("Authorization", "Bearer "+x.Token)
	}
	hc := x.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	return hc.Do(req)
}

// KeepLoopbackCandidates drops a=candidate lines whose address is not a loopback IP.
func KeepLoopbackCandidates(sdp string) string {
	lines := strings.SplitAfter(sdp, "\n")
	out := lines[:0]
	for _, l := range lines {
		if strings.HasPrefix(l, "a=candidate:") {
			f := strings.Fields(l)
			if len(f) < 6 {
				continue
			}
			if ip := net.ParseIP(f[4]); ip == nil || !ip.IsLoopback() {
				continue
			}
		}
		out = append(out, l)
	}
	return strings.Join(out, "")
}
