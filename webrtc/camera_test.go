package webrtc

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pwebrtc "github.com/pion/webrtc/v4"

	"sightline/media"
)

// ended reports whether it saw its session end: "closed" when the server's DTLS close_notify arrived,
// else "disconnected" (then "failed") once ICE consent stops being answered — close_notify is a single
// UDP datagram that a loaded machine may drop.
func ended(st *atomic.Int32) bool {
	switch pwebrtc.PeerConnectionState(st.Load()) {
	case pwebrtc.PeerConnectionStateClosed, pwebrtc.PeerConnectionStateFailed, pwebrtc.PeerConnectionStateDisconnected:
		return true
	}
	return false
}

// watchState records a client PeerConnection's state changes.
func watchState(v *viewer) *atomic.Int32 {
	var st atomic.Int32
	st.Store(int32(pwebrtc.PeerConnectionStateNew))
	v.pc.OnConnectionStateChange(func(s pwebrtc.PeerConnectionState) { st.Store(int32(s)) })
	return &st
}

func statsOf(s *Server, camera, variant string) (CameraStats, bool) {
	for _, cs := range s.Stats() {
		if cs.Camera == camera && cs.Variant == variant {
			return cs, true
		}
	}
	return CameraStats{}, false
}

// TestCloseCamera: CloseCamera ends every session of the camera at once (the server forgets them before
// it returns, the shared track and its stream reader are gone, and the viewers' PeerConnections see the
// end), leaves the other cameras' viewers playing, and a later viewer of the same name gets a fresh track
// on the stream the resolver returns then (a replaced stream).
func TestCloseCamera(t *testing.T) {
	checkGoroutines(t)
	env := newTestEnv(t, Config{FanoutShards: 2}, "cam1", "cam2")
	aus := syntheticAUs(10000, 10, 0)
	ctx, cancel := context.WithCancel(context.Background())
	fed1 := feed(ctx, env.resolver.streams["cam1"], aus, 20*time.Millisecond, true)
	fed2 := feed(ctx, env.resolver.streams["cam2"], aus, 20*time.Millisecond, true)
	defer func() { cancel(); <-fed1; <-fed2 }()

	var doomed []*viewer
	var states []*atomic.Int32
	for i := 0; i < 3; i++ {
		v := newViewer(t, false)
		defer v.close()
		states = append(states, watchState(v))
		v.whepConnect(t, env, "cam1")
		doomed = append(doomed, v)
	}
	other := newViewer(t, false)
	defer other.close()
	other.whepConnect(t, env, "cam2")
	waitFor(t, 30*time.Second, "frames on every viewer", func() bool {
		for _, v := range append(doomed, other) {
			if len(v.received()) < 3 {
				return false
			}
		}
		return true
	})
	if cs, _ := statsOf(env.srv, "cam1", VariantRaw); cs.Sessions.Connected != 3 || cs.Sessions.Total() != 3 {
		t.Fatalf("cam1 sessions before CloseCamera: %+v", cs.Sessions)
	}

	env.srv.CloseCamera("cam1")
	if n := env.srv.Viewers("cam1"); n != 0 {
		t.Fatalf("Viewers(cam1) = %d right after CloseCamera", n)
	}
	if n := env.resolver.streams["cam1"].Stats().Readers; n != 0 {
		t.Fatalf("cam1 stream still has %d readers: its shared track was not freed", n)
	}
	env.srv.mu.Lock()
	_, tracked := env.srv.tracks[trackKey{"cam1", VariantRaw}]
	live := len(env.srv.live)
	env.srv.mu.Unlock()
	if tracked || live != 1 {
		t.Fatalf("after CloseCamera: cam1 track still mapped %v, %d running tracks (want cam2's only)", tracked, live)
	}
	if cs, ok := statsOf(env.srv, "cam1", VariantRaw); ok {
		t.Fatalf("Stats still lists cam1: %+v", cs)
	}
	for i, st := range states {
		waitFor(t, 15*time.Second, "the client PeerConnection to see the end", func() bool { return ended(st) })
		t.Logf("viewer %d: %s", i, pwebrtc.PeerConnectionState(st.Load()))
		if code := doomed[i].delete(t, env); code != http.StatusNotFound {
			t.Fatalf("DELETE of a closed session: %d, want 404", code)
		}
	}
	// cam2 plays on.
	n := len(other.received())
	waitFor(t, 10*time.Second, "cam2 frames after CloseCamera(cam1)", func() bool { return len(other.received()) > n+5 })
	if env.srv.Viewers("cam2") != 1 {
		t.Fatalf("cam2 lost its viewer")
	}

	// The camera comes back with another stream: a new viewer plays it.
	fresh := media.NewStream("cam1-new")
	env.resolver.mu.Lock()
	env.resolver.streams["cam1"] = fresh
	env.resolver.mu.Unlock()
	fed3 := feed(ctx, fresh, syntheticAUs(10000, 10, 5_000_000), 20*time.Millisecond, true)
	defer func() { cancel(); <-fed3 }()
	again := newViewer(t, false)
	defer again.close()
	again.whepConnect(t, env, "cam1")
	waitFor(t, 30*time.Second, "frames of the replaced stream", func() bool { return len(again.received()) >= 3 })
	if fresh.Stats().Readers != 1 {
		t.Fatalf("replaced stream readers = %d", fresh.Stats().Readers)
	}
}

// TestStreamCloseEndsSessions: when a camera's stream closes (the camera was deleted) its sessions end by
// themselves, even without CloseCamera, and no new session can start on the closed stream.
func TestStreamCloseEndsSessions(t *testing.T) {
	checkGoroutines(t)
	env := newTestEnv(t, Config{}, "cam1")
	st := env.resolver.streams["cam1"]
	ctx, cancel := context.WithCancel(context.Background())
	fed := feed(ctx, st, syntheticAUs(10000, 10, 0), 20*time.Millisecond, true)
	v := newViewer(t, false)
	defer v.close()
	state := watchState(v)
	v.whepConnect(t, env, "cam1")
	waitFor(t, 30*time.Second, "frames", func() bool { return len(v.received()) >= 3 })
	cancel()
	<-fed
	st.Close()
	waitFor(t, 10*time.Second, "the session to end with its stream", func() bool { return env.srv.Viewers("cam1") == 0 })
	waitFor(t, 15*time.Second, "the client to see the end", func() bool { return ended(state) })
	rec := (&handlerEnv{srv: env.srv, mux: env.http.Config.Handler.(*http.ServeMux)}).do("POST", "/whep/cam1", "application/sdp",
		fixture(t, "chromium_offer_audio_video.sdp"), nil)
	requireJSONError(t, rec, http.StatusServiceUnavailable, "stream_unavailable")
}

// TestSessionCapsUnderConcurrentOffers: concurrent offers never get more sessions than
// MaxSessionsPerCamera for one camera or MaxSessions in all; the refused ones get 503 too_many_sessions,
// and a freed slot can be taken again.
func TestSessionCapsUnderConcurrentOffers(t *testing.T) {
	checkGoroutines(t)
	const perCamera, total, offers = 3, 5, 16
	env := newTestEnv(t, Config{MaxSessionsPerCamera: perCamera, MaxSessions: total}, "cam1", "cam2")
	h := &handlerEnv{srv: env.srv, mux: env.http.Config.Handler.(*http.ServeMux)}
	offer := fixture(t, "chromium_offer_audio_video.sdp")

	var maxSeen atomic.Int32
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			env.srv.mu.Lock()
			n := 0
			for _, s := range env.srv.sessions {
				if s.camera == "cam1" {
					n++
				}
			}
			env.srv.mu.Unlock()
			if int32(n) > maxSeen.Load() {
				maxSeen.Store(int32(n))
			}
			select {
			case <-stopWatch:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	burst := func(camera string) (created []string, refused int) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < offers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				rec := h.do("POST", "/whep/"+camera, "application/sdp", offer, nil)
				mu.Lock()
				defer mu.Unlock()
				switch rec.Code {
				case http.StatusCreated:
					created = append(created, rec.Header().Get("Location"))
				case http.StatusServiceUnavailable:
					requireJSONError(t, rec, http.StatusServiceUnavailable, "too_many_sessions")
					refused++
				default:
					t.Errorf("offer: %d %s", rec.Code, rec.Body.String())
				}
			}()
		}
		close(start)
		wg.Wait()
		return created, refused
	}
	cam1, refused1 := burst("cam1")
	if len(cam1) != perCamera || refused1 != offers-perCamera {
		t.Fatalf("cam1: %d created, %d refused; want %d and %d", len(cam1), refused1, perCamera, offers-perCamera)
	}
	cam2, refused2 := burst("cam2")
	if len(cam2) != total-perCamera || refused2 != offers-(total-perCamera) {
		t.Fatalf("cam2: %d created, %d refused; want %d (the total cap) and %d", len(cam2), refused2, total-perCamera, offers-(total-perCamera))
	}
	close(stopWatch)
	<-watched
	if m := maxSeen.Load(); m > perCamera {
		t.Fatalf("cam1 had %d sessions at once, cap %d", m, perCamera)
	}
	if env.srv.Viewers("cam1") != perCamera || env.srv.Viewers("cam2") != total-perCamera {
		t.Fatalf("viewers cam1 %d cam2 %d", env.srv.Viewers("cam1"), env.srv.Viewers("cam2"))
	}
	// Free one slot of cam1: one more cam1 viewer fits, then the cap holds again.
	if rec := h.do("DELETE", cam1[0], "", "", nil); rec.Code != http.StatusNoContent {
		t.Fatalf("DELETE: %d", rec.Code)
	}
	if rec := h.do("POST", "/whep/cam1", "application/sdp", offer, nil); rec.Code != http.StatusCreated {
		t.Fatalf("offer after a freed slot: %d %s", rec.Code, rec.Body.String())
	}
	requireJSONError(t, h.do("POST", "/whep/cam1", "application/sdp", offer, nil), http.StatusServiceUnavailable, "too_many_sessions")
	env.srv.mu.Lock()
	counted, all := env.srv.counted["cam1"], env.srv.total
	env.srv.mu.Unlock()
	if counted != perCamera || all != total {
		t.Fatalf("slot accounting: cam1 %d, total %d", counted, all)
	}
	env.srv.CloseCamera("cam1")
	env.srv.CloseCamera("cam2")
	env.srv.mu.Lock()
	counted, all = len(env.srv.counted), env.srv.total
	env.srv.mu.Unlock()
	if counted != 0 || all != 0 {
		t.Fatalf("slots left after closing every session: %d cameras, total %d", counted, all)
	}
}

// TestStatsDrops: a viewer whose shard is stuck makes the shard drop access units; Stats reports them
// per (camera, variant), keeps them after the track stops (a counter never goes back), and forgets the
// camera on CloseCamera.
func TestStatsDrops(t *testing.T) {
	checkGoroutines(t)
	env := newTestEnv(t, Config{FanoutShards: 1}, "cam1")
	h := &handlerEnv{srv: env.srv, mux: env.http.Config.Handler.(*http.ServeMux)}
	rec := h.do("POST", "/whep/cam1", "application/sdp", fixture(t, "chromium_offer_audio_video.sdp"), nil)
	if rec.Code != http.StatusCreated {
		t.Fatalf("POST: %d %s", rec.Code, rec.Body.String())
	}
	cs, ok := statsOf(env.srv, "cam1", VariantRaw)
	if !ok || cs.Sessions.Total() != 1 || cs.Sessions.Connected != 0 || cs.FanoutDropped != 0 {
		t.Fatalf("stats of an unconnected session: %+v", cs)
	}
	env.srv.mu.Lock()
	tr := env.srv.tracks[trackKey{"cam1", VariantRaw}]
	env.srv.mu.Unlock()
	stuck := &fakeSender{id: "stuck", ssrc: 7, block: make(chan struct{})}
	release := sync.OnceFunc(func() { close(stuck.block) })
	defer release()
	if _, err := tr.local.Bind(stuck); err != nil {
		t.Fatal(err)
	}
	st := env.resolver.streams["cam1"]
	aus := syntheticAUs(10000, 10, 0)
	i := 0
	waitFor(t, 20*time.Second, "the stuck shard to drop", func() bool {
		for j := 0; j < 10; j++ {
			st.Write(aus[i%len(aus)])
			i++
		}
		cs, _ := statsOf(env.srv, "cam1", VariantRaw)
		return cs.FanoutDropped > 0
	})
	release()
	before, _ := statsOf(env.srv, "cam1", VariantRaw)
	if rec := h.do("DELETE", rec.Header().Get("Location"), "", "", nil); rec.Code != http.StatusNoContent {
		t.Fatalf("DELETE: %d", rec.Code)
	}
	after, ok := statsOf(env.srv, "cam1", VariantRaw)
	if !ok || after.FanoutDropped < before.FanoutDropped || after.ReaderDropped < before.ReaderDropped || after.Sessions.Total() != 0 {
		t.Fatalf("after the track stopped: %+v (before %+v)", after, before)
	}
	env.srv.CloseCamera("cam1")
	if cs, ok := statsOf(env.srv, "cam1", VariantRaw); ok {
		t.Fatalf("CloseCamera left stats: %+v", cs)
	}
}
