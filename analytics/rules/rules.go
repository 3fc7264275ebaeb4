package rules

import (
	"fmt"
	"time"

	"sightline/analytics/track"
)

// Event kinds.
const (
	KindEnter = "enter"
	KindExit  = "exit"
	KindCross = "cross"
	KindDwell = "dwell"
	KindCount = "count"
)

// Event is one rule firing.
type Event struct {
	Camera string `json:"camera"`
	Rule   string `json:"rule"`
	// Kind is enter, exit, cross, dwell or count.
	Kind string `json:"kind"`
	// Direction of a crossing: a_to_b or b_to_a.
	Direction string `json:"direction,omitempty"`
	// ObjectID is the track id (0 for count events).
	ObjectID int64  `json:"objectId,omitempty"`
	Class    int    `json:"cls"`
	Label    string `json:"label,omitempty"`
	// PTS is the timestamp of the frame that raised the event (to find its snapshot); At its wall-clock.
	PTS time.Duration `json:"pts"`
	At  time.Time     `json:"at"`
	// Count is the zone's occupancy after an enter/exit, or the count of a count event.
	Count int `json:"count,omitempty"`
}

// Forget is how long an object unseen keeps its per-rule state (an occluded person does not leave a zone
// and re-enter); after it, it leaves zones silently.
const Forget = 3 * time.Second

// Engine evaluates one camera's rules on its tracks. It is not safe for concurrent use.
type Engine struct {
	camera string
	rules  []rule
}

type rule struct {
	cfg     Config
	classes map[string]bool
	objs    map[int64]*objState
	last    map[string]time.Duration // cooldown: key → last event pts
	above   bool                     // count rules: at or above Min at the last update
}

type objState struct {
	seen     time.Duration
	inside   bool
	since    time.Duration // entered the polygon at
	dwelled  bool
	side     int // line: last non-zero side, +1 (A) or -1 (B)
	hasPoint bool
	x, y     float64
}

// New validates cfgs and returns the engine of one camera.
func New(camera string, cfgs []Config) (*Engine, error) {
	if err := Validate(cfgs); err != nil {
		return nil, fmt.Errorf("camera %s: %w", camera, err)
	}
	e := &Engine{camera: camera}
	for _, c := range cfgs {
		r := rule{cfg: c, objs: map[int64]*objState{}, last: map[string]time.Duration{}}
		if len(c.Classes) > 0 {
			r.classes = map[string]bool{}
			for _, cl := range c.Classes {
				r.classes[cl] = true
			}
		}
		e.rules = append(e.rules, r)
	}
	return e, nil
}

// anchor is the point of a box that rules test: the bottom centre (where a person stands).
func anchor(t track.Track) (float64, float64) {
	return float64(t.Box.X + t.Box.W/2), float64(t.Box.Y + t.Box.H)
}

// Update evaluates the tracks of the frame at pts (the tracker's output for it) and returns the events
// raised, in rule order.
func (e *Engine) Update(pts time.Duration, at time.Time, tracks []track.Track) []Event {
	var events []Event
	for ri := range e.rules {
		r := &e.rules[ri]
		emit := func(ev Event, key string) {
			if last, ok := r.last[key]; ok && r.cfg.Cooldown > 0 && pts-last < r.cfg.cooldown() {
				return
			}
			r.last[key] = pts
			ev.Camera, ev.Rule, ev.PTS, ev.At = e.camera, r.cfg.ID, pts, at
			events = append(events, ev)
		}
		count := 0
		for _, t := range tracks {
			if r.classes != nil && !r.classes[t.Label] {
				continue
			}
			x, y := anchor(t)
			s := r.objs[t.ID]
			if s == nil {
				s = &objState{}
				r.objs[t.ID] = s
			}
			s.seen = pts
			objKey := func(kind string) string { return fmt.Sprintf("%s/%d", kind, t.ID) }
			base := Event{ObjectID: t.ID, Class: t.Class, Label: t.Label}
			switch r.cfg.Type {
			case TypeZone, TypeDwell:
				in := inPolygon(r.cfg.Polygon, x, y)
				if in && !s.inside {
					s.inside, s.since, s.dwelled = true, pts, false
					if r.cfg.Type == TypeZone {
						ev := base
						ev.Kind = KindEnter
						ev.Count = -1 // filled below with the occupancy
						emit(ev, objKey(KindEnter))
					}
				} else if !in && s.inside {
					s.inside = false
					if r.cfg.Type == TypeZone {
						ev := base
						ev.Kind = KindExit
						ev.Count = -1
						emit(ev, objKey(KindExit))
					}
				}
				if r.cfg.Type == TypeDwell && s.inside && !s.dwelled && (pts-s.since).Seconds() >= r.cfg.Seconds {
					s.dwelled = true
					ev := base
					ev.Kind = KindDwell
					emit(ev, objKey(KindDwell))
				}
			case TypeLine:
				side := lineSide(r.cfg.Line, x, y)
				if s.hasPoint && side != 0 && s.side != 0 && side != s.side && segmentsCross(r.cfg.Line, s.x, s.y, x, y) {
					dir := DirectionAtoB
					if s.side < 0 {
						dir = DirectionBtoA
					}
					if r.cfg.Direction == DirectionBoth || r.cfg.Direction == "both" || r.cfg.Direction == dir {
						ev := base
						ev.Kind, ev.Direction = KindCross, dir
						emit(ev, objKey(dir))
					}
				}
				if side != 0 {
					s.side = side
				}
				s.hasPoint, s.x, s.y = true, x, y
			case TypeCount:
				if len(r.cfg.Polygon) == 0 || inPolygon(r.cfg.Polygon, x, y) {
					count++
				}
			}
		}
		// Forget objects unseen for a while (they leave zones without an exit event).
		for id, s := range r.objs {
			if pts-s.seen > Forget {
				delete(r.objs, id)
			}
		}
		switch r.cfg.Type {
		case TypeZone:
			occ := r.occupancy()
			for i := range events {
				if events[i].Rule == r.cfg.ID && events[i].Count == -1 {
					events[i].Count = occ
				}
			}
		case TypeCount:
			if count >= r.cfg.Min && !r.above {
				emit(Event{Kind: KindCount, Class: -1, Count: count}, KindCount)
			}
			r.above = count >= r.cfg.Min
		}
	}
	return events
}

func (r *rule) occupancy() int {
	n := 0
	for _, s := range r.objs {
		if s.inside {
			n++
		}
	}
	return n
}

// Occupancy returns how many objects are inside the zone rule id now (-1 for no such zone rule).
func (e *Engine) Occupancy(id string) int {
	for i := range e.rules {
		if e.rules[i].cfg.ID == id && (e.rules[i].cfg.Type == TypeZone || e.rules[i].cfg.Type == TypeDwell) {
			return e.rules[i].occupancy()
		}
	}
	return -1
}

// lineSide is +1 on side A of the line, -1 on side B, 0 on it.
func lineSide(l [][2]float64, x, y float64) int {
	c := (l[1][0]-l[0][0])*(y-l[0][1]) - (l[1][1]-l[0][1])*(x-l[0][0])
	switch {
	case c > 1e-12:
		return 1
	case c < -1e-12:
		return -1
	}
	return 0
}

// segmentsCross reports whether the move (x0,y0)→(x1,y1) passes within the line's segment (not its
// extension): the segment's end points lie on different sides of the move, or on it.
func segmentsCross(l [][2]float64, x0, y0, x1, y1 float64) bool {
	move := [][2]float64{{x0, y0}, {x1, y1}}
	a, b := lineSide(move, l[0][0], l[0][1]), lineSide(move, l[1][0], l[1][1])
	return a == 0 || b == 0 || a != b
}
