// Package track owns multi-object tracking for one camera: ByteTrack-style association of detections to
// tracks (high-score boxes first, then low-score ones to keep tracks through partial occlusion) by IoU
// against Kalman constant-velocity predictions, track birth and death with hysteresis, stable integer ids,
// and prediction of every live track to any later timestamp. It never runs a model or reads frames.
package track

import (
	"sort"
	"sync"
	"time"

	"sightline/analytics"
)

// Config tunes a Tracker. Zero values take the defaults noted.
type Config struct {
	// HighScore splits detections: at or above it they are matched first and may start tracks; default 0.5.
	HighScore float32
	// LowScore drops detections below it; those between LowScore and HighScore only extend tracks
	// (ByteTrack's second association); default 0.1.
	LowScore float32
	// MatchIoU is the least IoU between a predicted track and a high-score detection to match; default 0.2.
	MatchIoU float32
	// LowMatchIoU is the least IoU for low-score detections; default 0.5.
	LowMatchIoU float32
	// BirthHits is how many consecutive matched updates make a new track confirmed (and give it an id);
	// default 2.
	BirthHits int
	// MaxLost is how long a confirmed track survives without a match (coasting on its prediction) before
	// it dies; default 1.5 s.
	MaxLost time.Duration
	// AnyClass lets detections of another class continue a track (default: classes must agree).
	AnyClass bool
}

// Track is a confirmed object as of a timestamp.
type Track struct {
	// ID is stable for the life of the track and never reused by the Tracker.
	ID    int64
	Class int
	Label string
	// Score is the score of the last matched detection.
	Score float32
	// Box is the filtered (or predicted) box, normalized to the frame.
	Box analytics.Box
	// VX, VY are the centre's velocity in frame widths/heights per second.
	VX, VY float32
	// Seen is the timestamp of the last matched detection; Lost is true while the track coasts.
	Seen time.Duration
	Lost bool
}

type state struct {
	id        int64 // 0 while tentative
	class     int
	label     string
	score     float32
	kf        kalman
	t         time.Duration // time of the filter state
	seen      time.Duration
	hits      int
	confirmed bool
	lost      bool
	pred      analytics.Box // box predicted to the current update's time
	matched   bool
}

// Tracker follows objects of one camera. Update and Predict may be called from different goroutines
// (the analytics loop and the overlay).
type Tracker struct {
	cfg Config

	mu     sync.Mutex
	tracks []*state
	nextID int64
	last   time.Duration
	primed bool
	// scratch, reused across updates
	pairs   []pair
	high    []int
	low     []int
	usedDet []bool
}

type pair struct {
	t, d int
	iou  float32
}

// New returns a Tracker; ids start at 1.
func New(cfg Config) *Tracker {
	if cfg.HighScore <= 0 {
		cfg.HighScore = 0.5
	}
	if cfg.LowScore <= 0 {
		cfg.LowScore = 0.1
	}
	if cfg.MatchIoU <= 0 {
		cfg.MatchIoU = 0.2
	}
	if cfg.LowMatchIoU <= 0 {
		cfg.LowMatchIoU = 0.5
	}
	if cfg.BirthHits <= 0 {
		cfg.BirthHits = 2
	}
	if cfg.MaxLost <= 0 {
		cfg.MaxLost = 1500 * time.Millisecond
	}
	return &Tracker{cfg: cfg, nextID: 1}
}

func toZ(b analytics.Box) [4]float64 {
	return [4]float64{float64(b.X + b.W/2), float64(b.Y + b.H/2), float64(b.W), float64(b.H)}
}

func fromZ(z [4]float64) analytics.Box {
	return analytics.Box{X: float32(z[0] - z[2]/2), Y: float32(z[1] - z[3]/2), W: float32(z[2]), H: float32(z[3])}
}

// Update feeds the detections of the frame at ts (a timestamp of the camera's clock, e.g. its PTS;
// non-decreasing) and returns the confirmed tracks matched in this frame, in detection order.
// Detections of an earlier ts than the last update are ignored.
func (t *Tracker) Update(ts time.Duration, dets []analytics.Detection) []Track {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.primed && ts < t.last {
		return nil
	}
	t.primed, t.last = true, ts

	// Predict every track to ts.
	for _, s := range t.tracks {
		s.kf.predict((ts - s.t).Seconds())
		s.t = ts
		s.pred = fromZ(s.kf.at(0))
		s.matched = false
	}
	t.high, t.low = t.high[:0], t.low[:0]
	for i, d := range dets {
		switch {
		case d.Score >= t.cfg.HighScore:
			t.high = append(t.high, i)
		case d.Score >= t.cfg.LowScore:
			t.low = append(t.low, i)
		}
	}
	if cap(t.usedDet) < len(dets) {
		t.usedDet = make([]bool, len(dets))
	}
	t.usedDet = t.usedDet[:len(dets)]
	for i := range t.usedDet {
		t.usedDet[i] = false
	}
	matchedDet := make(map[int]*state, len(dets))

	// 1. High-score detections against confirmed tracks, live or lost.
	t.associate(dets, t.high, t.cfg.MatchIoU, func(s *state) bool { return s.confirmed }, matchedDet, ts)
	// 2. Low-score detections against confirmed live tracks still unmatched (ByteTrack's second pass).
	t.associate(dets, t.low, t.cfg.LowMatchIoU, func(s *state) bool { return s.confirmed && !s.lost }, matchedDet, ts)
	// 3. Remaining high-score detections against tentative tracks.
	t.associate(dets, t.high, t.cfg.MatchIoU, func(s *state) bool { return !s.confirmed }, matchedDet, ts)

	// Unmatched tracks: tentative ones die at once (hysteresis), confirmed ones coast until MaxLost.
	kept := t.tracks[:0]
	for _, s := range t.tracks {
		if !s.matched {
			if !s.confirmed || ts-s.seen > t.cfg.MaxLost {
				continue
			}
			s.lost = true
			s.hits = 0
		}
		kept = append(kept, s)
	}
	for i := len(kept); i < len(t.tracks); i++ {
		t.tracks[i] = nil
	}
	t.tracks = kept

	// 4. Unmatched high-score detections start tentative tracks.
	for _, i := range t.high {
		if t.usedDet[i] {
			continue
		}
		d := dets[i]
		s := &state{class: d.Class, label: d.Label, score: d.Score, kf: newKalman(toZ(d.Box)), t: ts, seen: ts, hits: 1, matched: true}
		t.confirm(s)
		t.tracks = append(t.tracks, s)
		matchedDet[i] = s
	}

	out := make([]Track, 0, len(matchedDet))
	for i := range dets {
		if s, ok := matchedDet[i]; ok && s.confirmed {
			out = append(out, s.snapshot(0))
		}
	}
	return out
}

// associate greedily matches the given detections to eligible unmatched tracks by descending IoU.
func (t *Tracker) associate(dets []analytics.Detection, idx []int, minIoU float32, eligible func(*state) bool, matched map[int]*state, ts time.Duration) {
	t.pairs = t.pairs[:0]
	for ti, s := range t.tracks {
		if s.matched || !eligible(s) {
			continue
		}
		for _, di := range idx {
			if t.usedDet[di] || (!t.cfg.AnyClass && dets[di].Class != s.class) {
				continue
			}
			if iou := analytics.IoU(s.pred, dets[di].Box); iou >= minIoU {
				t.pairs = append(t.pairs, pair{t: ti, d: di, iou: iou})
			}
		}
	}
	sort.Slice(t.pairs, func(i, j int) bool {
		if t.pairs[i].iou != t.pairs[j].iou {
			return t.pairs[i].iou > t.pairs[j].iou
		}
		return t.pairs[i].t < t.pairs[j].t
	})
	for _, p := range t.pairs {
		s := t.tracks[p.t]
		if s.matched || t.usedDet[p.d] {
			continue
		}
		d := dets[p.d]
		s.kf.update(toZ(d.Box))
		s.matched, s.lost = true, false
		s.seen, s.score, s.label = ts, d.Score, d.Label
		if t.cfg.AnyClass {
			s.class = d.Class
		}
		s.hits++
		t.confirm(s)
		t.usedDet[p.d] = true
		matched[p.d] = s
	}
}

func (t *Tracker) confirm(s *state) {
	if !s.confirmed && s.hits >= t.cfg.BirthHits {
		s.confirmed = true
		s.id = t.nextID
		t.nextID++
	}
}

func (s *state) snapshot(dt float64) Track {
	z := s.kf.at(dt)
	return Track{ID: s.id, Class: s.class, Label: s.label, Score: s.score, Box: fromZ(z),
		VX: float32(s.kf.x[0][1]), VY: float32(s.kf.x[1][1]), Seen: s.seen, Lost: s.lost}
}

// Predict returns every confirmed, currently matched track with its box extrapolated to ts (for drawing
// between inferences). A ts before the last update returns the boxes as of that update.
func (t *Tracker) Predict(ts time.Duration) []Track {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Track, 0, len(t.tracks))
	for _, s := range t.tracks {
		if s.confirmed && !s.lost {
			out = append(out, s.snapshot((ts - s.t).Seconds()))
		}
	}
	return out
}

// Len is the number of tracks held (tentative, live and lost).
func (t *Tracker) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.tracks)
}
