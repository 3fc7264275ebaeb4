package rtcloop

import (
	"errors"
	"net"
	"testing"

	"github.com/pion/webrtc/v4"
)

func TestKeepLoopbackCandidates(t *testing.T) {
	in := "v=0\r\na=candidate:1 1 udp 2130706431 192.168.1.5 5000 typ host\r\na=candidate:2 1 udp 2130706431 127.0.0.1 5000 typ host\r\na=candidate:bad\r\na=end-of-candidates\r\n"
	want := "v=0\r\na=candidate:2 1 udp 2130706431 127.0.0.1 5000 typ host\r\na=end-of-candidates\r\n"
	if got := KeepLoopbackCandidates(in); got != want {
		t.Errorf("got %q", got)
	}
}

func TestIsLoopbackHost(t *testing.T) {
	for h, want := range map[string]bool{"localhost": true, "LOCALHOST": true, "127.0.0.1": true, "127.3.2.1": true,
		"::1": true, "192.0.2.1": false, "example.com": false, "": false} {
		if got := IsLoopbackHost(h); got != want {
			t.Errorf("IsLoopbackHost(%q) = %v", h, got)
		}
	}
}

// The socket sends to loopback and refuses every other address.
func TestSocketSendsToLoopbackOnly(t *testing.T) {
	se := webrtc.SettingEngine{}
	mux, err := Socket(&se, 1<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer mux.Close()
	addrs := mux.GetListenAddresses()
	if len(addrs) != 1 || !addrs[0].(*net.UDPAddr).IP.IsLoopback() {
		t.Fatalf("listens on %v, want one loopback address", addrs)
	}
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	conn := loopbackConn{mustConn(t)}
	defer conn.Close()
	if _, err := conn.WriteTo([]byte("x"), peer.LocalAddr()); err != nil {
		t.Fatalf("write to loopback: %v", err)
	}
	if _, err := conn.WriteTo([]byte("x"), &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 9}); !errors.Is(err, ErrNotLoopback) {
		t.Fatalf("write to 192.0.2.1: %v, want ErrNotLoopback", err)
	}
}

func mustConn(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
