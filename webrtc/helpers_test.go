package webrtc

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	pwebrtc "github.com/pion/webrtc/v4"

	"sightline/internal/testenv"
	"sightline/media"
)

// fakeResolver serves real media.Streams by camera name.
type fakeResolver struct {
	mu      sync.Mutex
	streams map[string]*media.Stream
	keyReqs atomic.Int64
}

func newFakeResolver(cameras ...string) *fakeResolver {
	r := &fakeResolver{streams: map[string]*media.Stream{}}
	for _, c := range cameras {
		st := media.NewStream(c)
		st.SetKeyframeRequester(func() { r.keyReqs.Add(1) })
		r.streams[c] = st
	}
	return r
}

func (r *fakeResolver) ResolveStream(camera, variant string) (*media.Stream, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, ok := r.streams[camera]
	if !ok {
		return nil, fmt.Errorf("resolve %q: %w", camera, ErrUnknownCamera)
	}
	if variant != VariantRaw {
		return nil, fmt.Errorf("camera %q has no %s variant yet", camera, variant)
	}
	return st, nil
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("SIGHTLINE_TEST_WEBRTC_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// checkGoroutines records the goroutine count and, at cleanup (registered first so it runs last),
// waits for it to come back down, dumping stacks if it does not.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

type testEnv struct {
	srv      *Server
	http     *httptest.Server
	resolver *fakeResolver
	client   *http.Client
}

func newTestEnv(t *testing.T, cfg Config, cameras ...string) *testEnv {
	t.Helper()
	cfg.LoopbackOnly = true
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	res := newFakeResolver(cameras...)
	srv, err := NewServer(cfg, res)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv.Register(mux)
	hs := httptest.NewServer(mux)
	tr := &http.Transport{}
	env := &testEnv{srv: srv, http: hs, resolver: res, client: &http.Client{Transport: tr, Timeout: 20 * time.Second}}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("server close: %v", err)
		}
		hs.Close()
		tr.CloseIdleConnections()
	})
	return env
}

// clientAPI is a pion API with the loopback-only settings of BROWSER.md.
func clientAPI(t testing.TB) *pwebrtc.API {
	t.Helper()
	me := &pwebrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := pwebrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		t.Fatal(err)
	}
	se := pwebrtc.SettingEngine{LoggerFactory: &slogLoggerFactory{log: testLogger(t)}}
	se.SetNetworkTypes([]pwebrtc.NetworkType{pwebrtc.NetworkTypeUDP4})
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return pwebrtc.NewAPI(pwebrtc.WithMediaEngine(me), pwebrtc.WithInterceptorRegistry(ir), pwebrtc.WithSettingEngine(se))
}

// receivedAU is one complete access unit as a viewer reassembled it.
type receivedAU struct {
	ts    uint32
	nalus [][]byte
}

// viewer is a pion WHEP/WS client that reassembles access units from the RTP it receives.
type viewer struct {
	pc       *pwebrtc.PeerConnection
	location string
	stall    bool // never read RTP (a dead viewer)
	stallCh  chan struct{}
	closeOne sync.Once

	mu   sync.Mutex
	pkts []*rtp.Packet
	ssrc uint32
	got  chan struct{} // signalled on every complete AU
	done chan struct{}
}

func newViewer(t *testing.T, stall bool) *viewer {
	t.Helper()
	pc, err := clientAPI(t).NewPeerConnection(pwebrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	v := &viewer{pc: pc, stall: stall, stallCh: make(chan struct{}), got: make(chan struct{}, 1), done: make(chan struct{})}
	if _, err := pc.AddTransceiverFromKind(pwebrtc.RTPCodecTypeVideo,
		pwebrtc.RTPTransceiverInit{Direction: pwebrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	pc.OnTrack(func(tr *pwebrtc.TrackRemote, _ *pwebrtc.RTPReceiver) {
		once.Do(func() {
			v.mu.Lock()
			v.ssrc = uint32(tr.SSRC())
			v.mu.Unlock()
			defer close(v.done)
			if v.stall {
				<-v.stallCh // reads nothing until the test closes the viewer
				return
			}
			v.readLoop(tr)
		})
	})
	return v
}

// readLoop keeps every RTP packet; received() reassembles them in sequence order, so that packets
// recovered by NACK retransmission (out of order) count.
func (v *viewer) readLoop(tr *pwebrtc.TrackRemote) {
	for {
		p, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		v.mu.Lock()
		v.pkts = append(v.pkts, p)
		v.mu.Unlock()
		if p.Marker {
			select {
			case v.got <- struct{}{}:
			default:
			}
		}
	}
}

// received returns the complete access units so far, in sequence order. An AU is complete when every
// sequence number from the packet after the previous AU's marker through its own marker is present.
func (v *viewer) received() []receivedAU {
	v.mu.Lock()
	pkts := append([]*rtp.Packet(nil), v.pkts...)
	v.mu.Unlock()
	if len(pkts) == 0 {
		return nil
	}
	// Unwrap sequence numbers relative to the first packet, dedupe, sort.
	first := pkts[0].SequenceNumber
	bySeq := map[int64]*rtp.Packet{}
	for _, p := range pkts {
		bySeq[int64(int16(p.SequenceNumber-first))] = p
	}
	keys := make([]int64, 0, len(bySeq))
	for k := range bySeq {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []receivedAU
	var cur []*rtp.Packet
	startOK := false // the packet before the current AU was a marker we saw
	prev := int64(math.MinInt64)
	for _, k := range keys {
		p := bySeq[k]
		if prev != math.MinInt64 && k != prev+1 {
			cur, startOK = nil, false // gap: drop the partial AU, and the next start is unknown
		}
		prev = k
		cur = append(cur, p)
		if !p.Marker {
			continue
		}
		if startOK {
			var depack codecs.H264Packet
			var buf []byte
			ok := true
			for _, q := range cur {
				b, err := depack.Unmarshal(q.Payload)
				if err != nil || q.Timestamp != p.Timestamp {
					ok = false
					break
				}
				buf = append(buf, b...)
			}
			if ok {
				out = append(out, receivedAU{ts: p.Timestamp, nalus: media.SplitAnnexB(buf)})
			}
		}
		cur, startOK = nil, true
	}
	return out
}

// whepConnect offers over WHEP (non-trickle: the offer carries all candidates) and applies the answer.
func (v *viewer) whepConnect(t *testing.T, env *testEnv, camera string) {
	t.Helper()
	offer, err := v.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := pwebrtc.GatheringCompletePromise(v.pc)
	if err := v.pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	resp, err := env.client.Post(env.http.URL+"/whep/"+camera, "application/sdp", strings.NewReader(v.pc.LocalDescription().SDP))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST offer: %d %s", resp.StatusCode, body)
	}
	v.location = resp.Header.Get("Location")
	if err := v.pc.SetRemoteDescription(pwebrtc.SessionDescription{Type: pwebrtc.SDPTypeAnswer, SDP: string(body)}); err != nil {
		t.Fatal(err)
	}
}

func (v *viewer) delete(t *testing.T, env *testEnv) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, env.http.URL+v.location, nil)
	resp, err := env.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (v *viewer) close() {
	v.closeOne.Do(func() { close(v.stallCh) })
	_ = v.pc.Close()
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, timeout, what, cond)
}

// streetAUs splits the street asset into access units at AUD boundaries, with 25 fps RTP times.
func streetAUs(t *testing.T) []*media.AccessUnit {
	t.Helper()
	data, err := os.ReadFile(testenv.Asset(t, "camera/cam_street_1280x720_25fps.h264"))
	if err != nil {
		t.Fatal(err)
	}
	var aus []*media.AccessUnit
	var cur [][]byte
	flush := func() {
		if len(cur) == 0 {
			return
		}
		i := len(aus)
		aus = append(aus, &media.AccessUnit{
			Codec: media.CodecH264, NALUs: cur, PTS: time.Duration(i) * 40 * time.Millisecond,
			RTPTime: 0x7fff0000 + uint32(i)*3600, Keyframe: media.IsKeyframe(media.CodecH264, cur),
		})
		cur = nil
	}
	for _, n := range media.SplitAnnexB(data) {
		if media.NALUType(media.CodecH264, n) == 9 {
			flush()
		}
		cur = append(cur, n)
	}
	flush()
	if len(aus) < 100 {
		t.Fatalf("asset split into %d access units only", len(aus))
	}
	return aus
}

// syntheticAUs makes n small H.264 access units with an IDR (SPS+PPS+IDR) every gop frames.
func syntheticAUs(n, gop int, base uint32) []*media.AccessUnit {
	rnd := rand.New(rand.NewPCG(1, 2))
	payload := func(hdr byte, size int) []byte {
		b := make([]byte, size)
		b[0] = hdr
		for i := 1; i < size; i++ {
			b[i] = byte(1 + rnd.IntN(255)) // never zero: no start code emulation
		}
		return b
	}
	var aus []*media.AccessUnit
	for i := 0; i < n; i++ {
		var nalus [][]byte
		key := i%gop == 0
		if key {
			nalus = [][]byte{{0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8}, {0x68, 0xce, 0x3c, 0x80}, payload(0x65, 3000)}
		} else {
			nalus = [][]byte{payload(0x41, 700)}
		}
		aus = append(aus, &media.AccessUnit{Codec: media.CodecH264, NALUs: nalus, RTPTime: base + uint32(i)*3600,
			PTS: time.Duration(i) * 40 * time.Millisecond, Keyframe: key})
	}
	return aus
}

// feed writes aus to st every interval, looping, until ctx ends.
func feed(ctx context.Context, st *media.Stream, aus []*media.AccessUnit, interval time.Duration, loop bool) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(interval)
		defer tk.Stop()
		for i := 0; ; i++ {
			if i == len(aus) {
				if !loop {
					return
				}
				i = 0
			}
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
			st.Write(aus[i])
		}
	}()
	return done
}

// stripAUD returns nalus without access unit delimiters and filler data, which RFC 6184 packetizers
// (pion's included) do not send.
func stripAUD(nalus [][]byte) [][]byte {
	var out [][]byte
	for _, n := range nalus {
		if t := media.NALUType(media.CodecH264, n); t == 9 || t == 12 {
			continue
		}
		out = append(out, n)
	}
	return out
}

// checkAUs compares received access units with what was written, by RTP timestamp.
func checkAUs(t *testing.T, got []receivedAU, sent []*media.AccessUnit, min int) {
	t.Helper()
	byTS := map[uint32]int{}
	for i, au := range sent {
		byTS[au.RTPTime] = i
	}
	// A viewer that joins mid-GOP (or whose first packets left before DTLS was up) starts decoding at
	// the next keyframe, as a browser does: skip what comes before it.
	for len(got) > 0 {
		if i, ok := byTS[got[0].ts]; ok && sent[i].Keyframe {
			break
		}
		got = got[1:]
	}
	if len(got) < min {
		t.Fatalf("received %d complete access units from the first keyframe on, want at least %d", len(got), min)
	}
	prev := -1
	for k, g := range got {
		i, ok := byTS[g.ts]
		if !ok {
			t.Fatalf("AU %d: RTP timestamp %d was never written", k, g.ts)
		}
		if i <= prev {
			t.Fatalf("AU %d: order broken: source index %d after %d", k, i, prev)
		}
		prev = i
		want := stripAUD(sent[i].NALUs)
		if len(g.nalus) != len(want) {
			t.Fatalf("AU %d (ts %d): %d NAL units, want %d", k, g.ts, len(g.nalus), len(want))
		}
		for j := range want {
			if !bytes.Equal(g.nalus[j], want[j]) {
				t.Fatalf("AU %d (ts %d) NAL %d differs (len %d vs %d)", k, g.ts, j, len(g.nalus[j]), len(want[j]))
			}
		}
		if sent[i].Keyframe {
			if media.NALUType(media.CodecH264, g.nalus[0]) != 7 || media.NALUType(media.CodecH264, g.nalus[1]) != 8 {
				t.Fatalf("keyframe AU %d does not start with SPS, PPS", k)
			}
		}
	}
	if !sent[byTS[got[0].ts]].Keyframe {
		t.Fatalf("first received AU is not a keyframe")
	}
}
