package webrtc

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/rtcp"
	pwebrtc "github.com/pion/webrtc/v4"
)

// TestWHEPPassthroughStreet: a pion WHEP viewer receives the street asset byte for byte, with the
// camera's RTP timestamps, starting at a keyframe that carries SPS/PPS.
func TestWHEPPassthroughStreet(t *testing.T) {
	checkGoroutines(t)
	aus := streetAUs(t)
	env := newTestEnv(t, Config{}, "street")
	v := newViewer(t, false)
	defer v.close()
	v.whepConnect(t, env, "street")

	ctx, cancel := context.WithCancel(context.Background())
	fed := feed(ctx, env.resolver.streams["street"], aus, 40*time.Millisecond, true) // real time: keyframes are ~100 packets
	defer func() { cancel(); <-fed }()
	waitFor(t, 30*time.Second, "130 access units", func() bool { return len(v.received()) >= 130 })
	cancel()
	<-fed
	checkAUs(t, v.received(), aus, 50)
	if sf := env.srv.SentFrames("street", VariantRaw); len(sf) == 0 || sf[len(sf)-1].SentAt.IsZero() {
		t.Fatalf("SentFrames = %d entries", len(sf))
	}
	if code := v.delete(t, env); code != 204 {
		t.Fatalf("DELETE %d", code)
	}
	if env.srv.Viewers("street") != 0 || env.resolver.streams["street"].Stats().Readers != 0 {
		t.Fatalf("viewers %d readers %d after DELETE", env.srv.Viewers("street"), env.resolver.streams["street"].Stats().Readers)
	}
}

// TestSignalPassthrough: the same over /ws/signal with trickle ICE in both directions.
func TestSignalPassthrough(t *testing.T) {
	checkGoroutines(t)
	aus := syntheticAUs(200, 25, 1000)
	env := newTestEnv(t, Config{}, "cam1")
	v := newViewer(t, false)
	defer v.close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(env.http.URL, "http")+"/ws/signal", &websocket.DialOptions{HTTPClient: env.client})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	var wmu sync.Mutex
	send := func(m any) {
		b, _ := json.Marshal(m)
		wmu.Lock()
		defer wmu.Unlock()
		if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
			t.Errorf("ws write: %v", err)
		}
	}
	read := func() signalMessage {
		_, b, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("ws read: %v", err)
		}
		var m signalMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}

	// A malformed message gets an error and the socket stays usable.
	send(map[string]any{"type": "bogus"})
	if m := read(); m.Type != "error" || m.Code != "unknown_type" {
		t.Fatalf("%+v", m)
	}
	send(map[string]any{"type": "offer", "camera": "nope", "sdp": "v=0"})
	if m := read(); m.Type != "error" || m.Code != "unknown_camera" {
		t.Fatalf("%+v", m)
	}

	// Candidates gathered before the offer is sent wait for it, as a real client's queue would.
	var cmu sync.Mutex
	offerSent := false
	var queued []pwebrtc.ICECandidateInit
	v.pc.OnICECandidate(func(c *pwebrtc.ICECandidate) {
		if c == nil {
			return
		}
		cmu.Lock()
		defer cmu.Unlock()
		if !offerSent {
			queued = append(queued, c.ToJSON())
			return
		}
		send(map[string]any{"type": "candidate", "candidate": c.ToJSON()})
	})
	offer, err := v.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	cmu.Lock()
	send(map[string]any{"type": "offer", "camera": "cam1", "variant": "raw", "sdp": offer.SDP})
	for _, c := range queued {
		send(map[string]any{"type": "candidate", "candidate": c})
	}
	offerSent = true
	cmu.Unlock()
	m := read()
	if m.Type != "answer" || m.Session == "" {
		t.Fatalf("want answer, got %+v", m)
	}
	if err := v.pc.SetRemoteDescription(pwebrtc.SessionDescription{Type: pwebrtc.SDPTypeAnswer, SDP: m.SDP}); err != nil {
		t.Fatal(err)
	}
	readerDone := make(chan struct{})
	closeSeen := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				return
			}
			var m signalMessage
			_ = json.Unmarshal(b, &m)
			switch m.Type {
			case "candidate":
				if m.Candidate != nil && m.Candidate.Candidate != "" {
					_ = v.pc.AddICECandidate(*m.Candidate)
				}
			case "close":
				close(closeSeen)
				return
			}
		}
	}()

	fctx, fcancel := context.WithCancel(context.Background())
	fed := feed(fctx, env.resolver.streams["cam1"], aus, 10*time.Millisecond, true)
	waitFor(t, 30*time.Second, "80 access units", func() bool { return len(v.received()) >= 80 })
	fcancel()
	<-fed
	checkAUs(t, v.received(), aus, 40)
	if env.srv.Viewers("cam1") != 1 {
		t.Fatalf("Viewers = %d", env.srv.Viewers("cam1"))
	}
	send(map[string]any{"type": "close"})
	select {
	case <-closeSeen:
	case <-time.After(10 * time.Second):
		t.Fatal("no close message")
	}
	<-readerDone
	waitFor(t, 10*time.Second, "session removal", func() bool { return env.srv.Viewers("cam1") == 0 })
}

// TestFanOut: 20 viewers of one camera spread over 3 shards, one of which never reads, all others get
// every frame.
func TestFanOut(t *testing.T) {
	checkGoroutines(t)
	const nViewers = 20
	env := newTestEnv(t, Config{FanoutShards: 3}, "cam1")
	st := env.resolver.streams["cam1"]
	warm := syntheticAUs(10000, 10, 0)
	viewers := make([]*viewer, nViewers)
	for i := range viewers {
		viewers[i] = newViewer(t, i == 0) // viewer 0 stalls
		defer viewers[i].close()
		viewers[i].whepConnect(t, env, "cam1")
	}
	if env.srv.Viewers("cam1") != nViewers || st.Stats().Readers != 1 {
		t.Fatalf("viewers %d, stream readers %d (want %d, 1: one shared reader)", env.srv.Viewers("cam1"), st.Stats().Readers, nViewers)
	}
	env.srv.mu.Lock()
	shards := env.srv.tracks[trackKey{"cam1", VariantRaw}].local.stats()
	env.srv.mu.Unlock()
	if len(shards) != 3 {
		t.Fatalf("%d shards, want 3", len(shards))
	}
	for i, sh := range shards {
		if sh.Viewers < nViewers/3 || sh.Viewers > nViewers/3+1 {
			t.Fatalf("shard %d has %d viewers; want the %d viewers spread evenly over 3 shards: %+v", i, sh.Viewers, nViewers, shards)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	fed := feed(ctx, st, warm, 20*time.Millisecond, false)
	waitFor(t, 60*time.Second, "every reading viewer to get frames", func() bool {
		for _, v := range viewers[1:] {
			if len(v.received()) < 3 {
				return false
			}
		}
		return true
	})
	cancel()
	<-fed

	// Now a measured burst that starts with a keyframe: every reading viewer must get all of it.
	burst := syntheticAUs(50, 10, 900_000_000)
	ctx2, cancel2 := context.WithCancel(context.Background())
	fed2 := feed(ctx2, st, burst, 20*time.Millisecond, false)
	<-fed2
	cancel2()
	want := map[uint32]bool{}
	for _, au := range burst {
		want[au.RTPTime] = true
	}
	count := func(v *viewer) int {
		n := 0
		for _, au := range v.received() {
			if want[au.ts] {
				n++
			}
		}
		return n
	}
	waitFor(t, 30*time.Second, "every reading viewer to get the whole burst", func() bool {
		for _, v := range viewers[1:] {
			if count(v) < len(burst) {
				return false
			}
		}
		return true
	})
	for i, v := range viewers[1:] {
		var got []receivedAU
		for _, au := range v.received() {
			if want[au.ts] {
				got = append(got, au)
			}
		}
		if len(got) != len(burst) {
			t.Fatalf("viewer %d got %d of %d", i+1, len(got), len(burst))
		}
		checkAUs(t, got, burst, len(burst))
	}
	for _, v := range viewers {
		if code := v.delete(t, env); code != 204 {
			t.Fatalf("DELETE %d", code)
		}
	}
	if env.srv.Viewers("cam1") != 0 || st.Stats().Readers != 0 {
		t.Fatalf("after DELETE: viewers %d, readers %d", env.srv.Viewers("cam1"), st.Stats().Readers)
	}
}

// TestPLIRequestsKeyframe: a PLI from a viewer reaches the stream's keyframe requester.
func TestPLIRequestsKeyframe(t *testing.T) {
	checkGoroutines(t)
	env := newTestEnv(t, Config{}, "cam1")
	v := newViewer(t, false)
	defer v.close()
	v.whepConnect(t, env, "cam1")
	ctx, cancel := context.WithCancel(context.Background())
	fed := feed(ctx, env.resolver.streams["cam1"], syntheticAUs(10000, 25, 0), 20*time.Millisecond, false)
	defer func() { cancel(); <-fed }()
	waitFor(t, 30*time.Second, "frames", func() bool { return len(v.received()) >= 1 })
	time.Sleep(keyframeMinPeriod + 100*time.Millisecond) // past the rate limit of the join request
	before := env.resolver.keyReqs.Load()
	v.mu.Lock()
	ssrc := v.ssrc
	v.mu.Unlock()
	waitFor(t, 10*time.Second, "keyframe request after PLI", func() bool {
		_ = v.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
		return env.resolver.keyReqs.Load() > before
	})
}

// TestViewerStartRequestsKeyframe: each viewer asks the producer for a keyframe when its sender is bound
// (DTLS up, so the IDR is not lost), without sending a PLI; two viewers joining inside one rate-limit
// period get two requests (the second deferred to the period's end), not one.
func TestViewerStartRequestsKeyframe(t *testing.T) {
	checkGoroutines(t)
	env := newTestEnv(t, Config{}, "cam1")
	ctx, cancel := context.WithCancel(context.Background())
	fed := feed(ctx, env.resolver.streams["cam1"], syntheticAUs(10000, 25, 0), 20*time.Millisecond, false)
	defer func() { cancel(); <-fed }()
	first := newViewer(t, false)
	defer first.close()
	first.whepConnect(t, env, "cam1")
	waitFor(t, 30*time.Second, "the first viewer's request", func() bool { return env.resolver.keyReqs.Load() >= 1 })
	time.Sleep(keyframeMinPeriod + 100*time.Millisecond)
	before := env.resolver.keyReqs.Load()
	a, b := newViewer(t, false), newViewer(t, false)
	defer a.close()
	defer b.close()
	a.whepConnect(t, env, "cam1")
	b.whepConnect(t, env, "cam1")
	waitFor(t, 10*time.Second, "a keyframe request for each joining viewer", func() bool {
		return env.resolver.keyReqs.Load() >= before+2
	})
}
