package whepclient

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"sightline/internal/stamp"
	smedia "sightline/media"
)

// testServer is a minimal loopback-only pion WHEP server (pion's examples/whip-whep pattern): one shared
// sample track, POST → 201 + Location, DELETE ends the session.
type testServer struct {
	t       *testing.T
	track   *webrtc.TrackLocalStaticSample
	api     *webrtc.API
	conn    net.PacketConn
	mux     ice.UDPMux
	http    *httptest.Server
	mu      sync.Mutex
	pcs     map[string]*webrtc.PeerConnection
	n       int
	plis    atomic.Int32
	deletes atomic.Int32
	token   atomic.Value // last Authorization header
	wg      sync.WaitGroup
}

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	s := &testServer{t: t, pcs: map[string]*webrtc.PeerConnection{}}
	var err error
	s.track, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000}, "video", "test")
	if err != nil {
		t.Fatal(err)
	}
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetInterfaceFilter(func(n string) bool { return n == "lo" })
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	s.conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s.mux = webrtc.NewICEUDPMux(nil, s.conn)
	se.SetICEUDPMux(s.mux)
	s.api = webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se))

	mux := http.NewServeMux()
	mux.HandleFunc("POST /whep", s.post)
	mux.HandleFunc("DELETE /whep/sessions/{id}", s.del)
	s.http = httptest.NewServer(mux) // listens on 127.0.0.1
	return s
}

func (s *testServer) post(w http.ResponseWriter, r *http.Request) {
	s.token.Store(r.Header.Get("Authorization"))
	offer, _ := io.ReadAll(r.Body)
	pc, err := s.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	sender, err := pc.AddTrack(s.track)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			pkts, _, err := sender.ReadRTCP()
			if err != nil {
				return
			}
			for _, p := range pkts {
				if _, ok := p.(*rtcp.PictureLossIndication); ok {
					s.plis.Add(1)
				}
			}
		}
	}()
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(offer)}); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	<-gathered
	s.mu.Lock()
	s.n++
	id := fmt.Sprint(s.n)
	s.pcs[id] = pc
	s.mu.Unlock()
	w.Header().Set("Location", "/whep/sessions/"+id)
	w.Header().Set("Content-Type", "application/sdp")
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, pc.LocalDescription().SDP)
}

func (s *testServer) del(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	pc := s.pcs[r.PathValue("id")]
	delete(s.pcs, r.PathValue("id"))
	s.mu.Unlock()
	if pc == nil {
		http.NotFound(w, r)
		return
	}
	s.deletes.Add(1)
	_ = pc.Close()
	w.WriteHeader(http.StatusNoContent)
}

func (s *testServer) close() {
	s.http.Close()
	s.mu.Lock()
	for id, pc := range s.pcs {
		_ = pc.Close()
		delete(s.pcs, id)
	}
	s.mu.Unlock()
	s.wg.Wait()
	_ = s.mux.Close()
	_ = s.conn.Close()
}

// synthetic access units: AUD, SPS, PPS, a large IDR (fragmented) every 10th frame, P slices otherwise.
func testAU(i int) [][]byte {
	aud := []byte{0x09, 0xf0}
	if i%10 == 0 {
		idr := make([]byte, 6000)
		idr[0] = 0x65
		for j := 1; j < len(idr); j++ {
			idr[j] = byte(j%200 + 16)
		}
		return [][]byte{aud, {0x67, 0x42, 0xc0, 0x1f, 0xda}, {0x68, 0xce, 0x3c, 0x80}, idr}
	}
	return [][]byte{aud, {0x41, 0x9a, byte(i%200 + 16), 0x42}}
}

func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d > %d at start\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestDialReceiveClose(t *testing.T) {
	base := runtime.NumGoroutine()
	srv := newTestServer(t)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Dial(ctx, srv.http.URL+"/whep", Options{LoopbackOnly: true, SendPLI: true, Token: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	if got := srv.token.Load(); got != "Bearer secret" {
		t.Errorf("Authorization = %q", got)
	}

	// Publish stamped frames until the client has seen 30 of them in order.
	stop := make(chan struct{})
	var pubWG sync.WaitGroup
	pubWG.Add(1)
	go func() {
		defer pubWG.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			au := stamp.Insert(testAU(i), uint64(i), time.Now())
			_ = srv.track.WriteSample(media.Sample{Data: smedia.JoinAnnexB(au), Duration: 10 * time.Millisecond})
		}
	}()

	seen := 0
	var last uint64
	sawKey := false
	for seen < 30 {
		select {
		case f := <-c.Frames():
			idx, ts, ok := stamp.Find(f.NALUs)
			if !ok {
				t.Fatalf("frame without stamp: %x", f.NALUs)
			}
			if seen > 0 && idx <= last {
				t.Fatalf("index %d after %d", idx, last)
			}
			last = idx
			want := testAU(int(idx))
			// pion's payloader drops AUDs; everything else must arrive byte for byte.
			for _, n := range want[1:] {
				found := false
				for _, g := range f.NALUs {
					if string(g) == string(n) {
						found = true
					}
				}
				if !found {
					t.Fatalf("frame %d: NALU %x missing", idx, n[:2])
				}
			}
			if f.Keyframe != (idx%10 == 0) {
				t.Fatalf("frame %d keyframe = %v", idx, f.Keyframe)
			}
			sawKey = sawKey || f.Keyframe
			if f.CompleteAt.Before(f.FirstPacketAt) || f.FirstPacketAt.Before(ts) {
				t.Fatalf("frame %d times: stamp %v first %v complete %v", idx, ts, f.FirstPacketAt, f.CompleteAt)
			}
			seen++
		case <-ctx.Done():
			t.Fatalf("received %d frames before timeout; stats %+v", seen, c.Stats())
		}
	}
	close(stop)
	pubWG.Wait()
	if !sawKey {
		t.Error("no keyframe seen")
	}
	if srv.plis.Load() == 0 {
		t.Error("server saw no PLI")
	}
	st := c.Stats()
	if st.Frames < 30 || st.Packets < st.Frames {
		t.Errorf("stats %+v", st)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if srv.deletes.Load() != 1 {
		t.Errorf("DELETEs = %d, want 1", srv.deletes.Load())
	}
	for range c.Frames() { // closed after Close
	}
	srv.close()
	waitGoroutines(t, base)
}

func TestDialErrors(t *testing.T) {
	base := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := Dial(ctx, "http://192.0.2.1/whep", Options{LoopbackOnly: true}); err == nil {
		t.Error("LoopbackOnly dialled a non-loopback host")
	}
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"unknown camera","code":"not_found"}`, http.StatusNotFound)
	}))
	defer refusing.Close()
	if _, err := Dial(ctx, refusing.URL+"/whep/nope", Options{LoopbackOnly: true}); err == nil {
		t.Error("404 accepted")
	}
	refusing.Close()
	waitGoroutines(t, base)
}
