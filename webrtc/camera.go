package webrtc

// Per-camera control: the session caps, closing every session of a camera at once, and the counters the
// gateway's /metrics reads.

import (
	"cmp"
	"net/http"
	"slices"
	"sync"

	pwebrtc "github.com/pion/webrtc/v4"
)

// reserve takes a slot of the caps for sess (MaxSessions, MaxSessionsPerCamera) and records it as being
// set up, in one critical section, so that concurrent offers can never exceed a cap. closeSession gives
// the slot back.
func (s *Server) reserve(sess *session) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errf(http.StatusServiceUnavailable, "server_closed", "%v", errServerClosed)
	}
	if max := s.cfg.MaxSessions; max > 0 && s.total >= max {
		return errf(http.StatusServiceUnavailable, "too_many_sessions",
			"the server already serves its maximum of %d sessions", max)
	}
	if max := s.cfg.MaxSessionsPerCamera; max > 0 && s.counted[sess.camera] >= max {
		return errf(http.StatusServiceUnavailable, "too_many_sessions",
			"camera %q already has its maximum of %d sessions", sess.camera, max)
	}
	s.total++
	s.counted[sess.camera]++
	s.pending[sess.id] = sess
	return nil
}

// unreserveLocked gives back a session's slot (s.mu held).
func (s *Server) unreserveLocked(camera string) {
	s.total--
	if s.counted[camera]--; s.counted[camera] <= 0 {
		delete(s.counted, camera)
	}
}

// CloseCamera ends every session of camera (every variant) at once and retires its shared tracks, which
// stop as their last session goes. Sessions of the camera still being set up fail instead of starting.
// The gateway calls it when a camera is deleted or its stream replaced; a later viewer of the same name
// gets a fresh track on whatever stream the resolver then returns. It returns when the sessions are
// closed (their PeerConnections too), and does nothing for a camera nobody watches.
func (s *Server) CloseCamera(camera string) {
	s.mu.Lock()
	var sessions []*session
	for _, sess := range s.sessions {
		if sess.camera == camera {
			sessions = append(sessions, sess)
		}
	}
	for _, sess := range s.pending {
		if sess.camera == camera {
			sess.cancelled = true
		}
	}
	for key := range s.tracks {
		if key.camera == camera {
			delete(s.tracks, key)
		}
	}
	for t := range s.live {
		if t.key.camera == camera {
			t.forgotten = true // its drops are not kept when it stops
		}
	}
	for key := range s.drops {
		if key.camera == camera {
			delete(s.drops, key)
		}
	}
	s.mu.Unlock()
	s.closeAll(sessions, "camera closed")
}

// closeTrackSessions ends the sessions of one track (its stream closed: nothing more will come).
func (s *Server) closeTrackSessions(t *sharedTrack) {
	s.mu.Lock()
	var sessions []*session
	for _, sess := range s.sessions {
		if sess.track == t {
			sessions = append(sessions, sess)
		}
	}
	for _, sess := range s.pending {
		if sess.track == t {
			sess.cancelled = true
		}
	}
	if s.tracks[t.key] == t {
		delete(s.tracks, t.key)
	}
	s.mu.Unlock()
	s.closeAll(sessions, "stream closed")
}

// closeAll closes sessions concurrently (each PeerConnection close waits for its own transports) and
// returns when all are closed.
func (s *Server) closeAll(sessions []*session, reason string) {
	if len(sessions) > 0 {
		s.log.Info("closing sessions", "camera", sessions[0].camera, "sessions", len(sessions), "reason", reason)
	}
	var wg sync.WaitGroup
	for _, sess := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.closeSession(sess, reason)
		}()
	}
	wg.Wait()
}

// SessionCounts counts live (answered) sessions by the state of their PeerConnection, which follows
// ICE and DTLS together. Closed sessions leave at once and are not counted.
type SessionCounts struct {
	New, Connecting, Connected, Disconnected, Failed int
}

// Total is the number of sessions counted.
func (c SessionCounts) Total() int {
	return c.New + c.Connecting + c.Connected + c.Disconnected + c.Failed
}

func (c *SessionCounts) add(st pwebrtc.PeerConnectionState) {
	switch st {
	case pwebrtc.PeerConnectionStateConnecting:
		c.Connecting++
	case pwebrtc.PeerConnectionStateConnected:
		c.Connected++
	case pwebrtc.PeerConnectionStateDisconnected:
		c.Disconnected++
	case pwebrtc.PeerConnectionStateFailed:
		c.Failed++
	case pwebrtc.PeerConnectionStateClosed:
	default:
		c.New++
	}
}

// CameraStats is a snapshot of one (camera, variant)'s WebRTC fan-out.
type CameraStats struct {
	Camera, Variant string
	Sessions        SessionCounts
	// FanoutDropped counts access units the fan-out shards dropped because their viewers fell behind
	// (summed over shards; each shard drops for its own viewers). ReaderDropped counts access units the
	// shared track's media.Reader lost because the packetizer fell behind the camera. Both are counters
	// over the server's life: they keep what stopped tracks dropped, until CloseCamera forgets the camera.
	FanoutDropped, ReaderDropped uint64
}

// dropCounts are a track's drop counters.
type dropCounts struct{ fanout, reader uint64 }

func (t *sharedTrack) drops() dropCounts {
	var d dropCounts
	for _, sh := range t.local.stats() {
		d.fanout += sh.Dropped
	}
	if t.reader != nil {
		d.reader = t.reader.Dropped()
	}
	return d
}

// Stats returns, for every (camera, variant) with live sessions, running tracks or past drops, its
// session states and drop counters, sorted by camera then variant.
func (s *Server) Stats() []CameraStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	byKey := map[trackKey]*CameraStats{}
	get := func(k trackKey) *CameraStats {
		cs := byKey[k]
		if cs == nil {
			cs = &CameraStats{Camera: k.camera, Variant: k.variant}
			byKey[k] = cs
		}
		return cs
	}
	for _, sess := range s.sessions {
		get(trackKey{sess.camera, sess.variant}).Sessions.add(pwebrtc.PeerConnectionState(sess.state.Load()))
	}
	for k, d := range s.drops {
		cs := get(k)
		cs.FanoutDropped += d.fanout
		cs.ReaderDropped += d.reader
	}
	for t := range s.live {
		d := t.drops()
		cs := get(t.key)
		cs.FanoutDropped += d.fanout
		cs.ReaderDropped += d.reader
	}
	out := make([]CameraStats, 0, len(byKey))
	for _, cs := range byKey {
		out = append(out, *cs)
	}
	slices.SortFunc(out, func(a, b CameraStats) int {
		return cmp.Or(cmp.Compare(a.Camera, b.Camera), cmp.Compare(a.Variant, b.Variant))
	})
	return out
}
