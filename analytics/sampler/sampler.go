// Package sampler owns the choice of which decoded frames of one camera go to the detector: an fps cap
// on the frames' presentation times, an optional motion gate (skip inference while nothing moves, but
// force a frame every so often) and keyframe-only sampling. It never decodes, detects or keeps frames.
package sampler

import (
	"fmt"
	"math"
	"time"
)

// DefaultFPS is the sampling rate of a camera when none is configured.
const DefaultFPS = 5

// DefaultForceEvery is how often the motion gate lets a frame through although nothing moves.
const DefaultForceEvery = 2 * time.Second

// Config tunes a Sampler. Zero values take the defaults noted.
type Config struct {
	// FPS caps analysed frames per second of video time; default 5.
	FPS float64
	// MotionGate skips frames in which the motion detector saw nothing, except one every ForceEvery.
	MotionGate bool
	// ForceEvery is the longest time the gate keeps the detector idle; default 2 s.
	ForceEvery time.Duration
	// KeyframesOnly samples keyframes only (the decoder then skips every other picture); the fps cap
	// still applies.
	KeyframesOnly bool
}

// Validate checks cfg (names are the gateway's keys).
func (c Config) Validate() error {
	if math.IsNaN(c.FPS) || c.FPS < 0 || c.FPS > 120 {
		return fmt.Errorf("fps: %v is out of range (0 for the default %d, up to 120)", c.FPS, DefaultFPS)
	}
	if c.ForceEvery < 0 {
		return fmt.Errorf("forceEvery: %v must not be negative", c.ForceEvery)
	}
	return nil
}

// Stats counts a Sampler's decisions.
type Stats struct {
	Frames   uint64 // frames offered to Due
	Due      uint64 // frames that passed the fps cap / keyframe filter
	Gated    uint64 // due frames the motion gate skipped
	Forced   uint64 // due frames the gate let through without motion (ForceEvery)
	Selected uint64 // frames selected for the detector
}

// Sampler decides, frame by frame, what one camera analyses. Not safe for concurrent use.
type Sampler struct {
	cfg      Config
	interval time.Duration
	next     time.Duration // earliest PTS of the next due frame
	started  bool
	lastSel  time.Duration // PTS of the last selected frame
	selected bool
	stats    Stats
}

// New returns a Sampler for cfg (invalid values are replaced by defaults; check with Config.Validate).
func New(cfg Config) *Sampler {
	if !(cfg.FPS > 0) || cfg.FPS > 120 {
		cfg.FPS = DefaultFPS
	}
	if cfg.ForceEvery <= 0 {
		cfg.ForceEvery = DefaultForceEvery
	}
	return &Sampler{cfg: cfg, interval: time.Duration(float64(time.Second) / cfg.FPS)}
}

// Config returns the configuration in use (defaults filled in).
func (s *Sampler) Config() Config { return s.cfg }

// Due reports whether the frame at pts passes the fps cap (and, in keyframe-only mode, is a keyframe).
// Frames are due on a fixed grid of 1/FPS from the first one, with a tolerance of a tenth of the interval
// for jittery timestamps; a jump back in time (a source that restarted) or a gap restarts the grid.
func (s *Sampler) Due(pts time.Duration, keyframe bool) bool {
	s.stats.Frames++
	if s.cfg.KeyframesOnly && !keyframe {
		return false
	}
	tol := s.interval / 10
	if s.started && pts < s.next-s.interval-time.Second {
		s.started = false // timestamps went back: a new source run
	}
	if s.started && pts < s.next-tol {
		return false
	}
	if !s.started || pts > s.next+s.interval {
		s.next = pts // first frame, or after a gap: restart the grid here
	}
	s.started = true
	s.next += s.interval
	s.stats.Due++
	return true
}

// Select applies the motion gate to a due frame: moving says whether the motion detector saw anything
// (ignored without MotionGate). It reports whether the frame goes to the detector.
func (s *Sampler) Select(pts time.Duration, moving bool) bool {
	if s.cfg.MotionGate && !moving {
		if s.selected && pts >= s.lastSel && pts-s.lastSel < s.cfg.ForceEvery {
			s.stats.Gated++
			return false
		}
		s.stats.Forced++
	}
	s.lastSel, s.selected = pts, true
	s.stats.Selected++
	return true
}

// Stats returns the counters.
func (s *Sampler) Stats() Stats { return s.stats }
