// Package rules owns what turns tracks into alerts: polygon zones (enter, exit, occupancy), directional
// line crossings, dwell time in a zone and per-class counts, each emitting Events with de-duplication and
// a cooldown, and the validation of their configuration. It never tracks, detects or delivers events.
package rules

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Rule types.
const (
	TypeZone  = "zone"  // enter / exit events, occupancy
	TypeLine  = "line"  // crossing events, optionally one direction
	TypeDwell = "dwell" // an object stayed in the polygon at least Seconds
	TypeCount = "count" // at least Min objects of the classes (in the polygon, else the frame)
)

// Directions of a line crossing. Side A of a line P1→P2 is where (P2−P1)×(p−P1) > 0 in image coordinates
// (y down): for a line drawn top to bottom the left part of the picture, for one drawn left to right the
// lower part.
const (
	DirectionBoth = ""       // either way (also "both")
	DirectionAtoB = "a_to_b" // from side A to side B
	DirectionBtoA = "b_to_a"
)

// Config is one rule as the gateway reads it under cameras[].rules (YAML or JSON). Coordinates are
// normalized to the frame (0..1). For example:
//
//   - {id: walkway, type: zone, polygon: [[0.1,0.5],[0.9,0.5],[0.9,1],[0.1,1]], classes: [person]}
//   - {id: crossing, type: line, line: [[0.5,0],[0.5,1]], direction: a_to_b, classes: [person]}
//   - {id: loiter, type: dwell, polygon: [[0,0],[0.5,0],[0.5,0.5]], seconds: 30}
//   - {id: crowd, type: count, classes: [person], min: 5, cooldown: 60}
type Config struct {
	ID   string `yaml:"id" json:"id"`
	Type string `yaml:"type" json:"type"`
	// Polygon (zone, dwell, optional for count): at least 3 points.
	Polygon [][2]float64 `yaml:"polygon,omitempty" json:"polygon,omitempty"`
	// Line (line): exactly 2 distinct points.
	Line [][2]float64 `yaml:"line,omitempty" json:"line,omitempty"`
	// Direction (line): "" or both, a_to_b, b_to_a.
	Direction string `yaml:"direction,omitempty" json:"direction,omitempty"`
	// Classes the rule applies to (labels such as person); empty: every class.
	Classes []string `yaml:"classes,omitempty" json:"classes,omitempty"`
	// Seconds (dwell): time in the polygon that raises the event, > 0.
	Seconds float64 `yaml:"seconds,omitempty" json:"seconds,omitempty"`
	// Min (count): the count at or above which the event is raised, >= 1.
	Min int `yaml:"min,omitempty" json:"min,omitempty"`
	// Cooldown in seconds: after an event, the same event (same rule, object and kind; for count rules the
	// same rule) is not raised again for this long. 0: only the per-visit de-duplication.
	Cooldown float64 `yaml:"cooldown,omitempty" json:"cooldown,omitempty"`
}

func (c Config) cooldown() time.Duration { return time.Duration(c.Cooldown * float64(time.Second)) }

// Validate checks rules and returns every problem, each naming its key as rules[i].key (the gateway
// prefixes the camera).
func Validate(cfgs []Config) error {
	var errs []error
	bad := func(i int, key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("rules[%d].%s: %s", i, key, fmt.Sprintf(format, args...)))
	}
	ids := map[string]int{}
	for i, c := range cfgs {
		if c.ID == "" {
			bad(i, "id", "required")
		} else if j, dup := ids[c.ID]; dup {
			bad(i, "id", "%q already used by rules[%d]", c.ID, j)
		} else {
			ids[c.ID] = i
		}
		checkPoints := func(key string, pts [][2]float64) {
			for k, p := range pts {
				for _, v := range p {
					if math.IsNaN(v) || v < 0 || v > 1 {
						bad(i, fmt.Sprintf("%s[%d]", key, k), "coordinates must be in 0..1 (normalized to the frame), got %v", p)
						return
					}
				}
			}
		}
		needPolygon := func(required bool) {
			if len(c.Polygon) == 0 && !required {
				return
			}
			if len(c.Polygon) < 3 {
				bad(i, "polygon", "want at least 3 points, got %d", len(c.Polygon))
				return
			}
			checkPoints("polygon", c.Polygon)
			if math.Abs(polygonArea(c.Polygon)) < 1e-9 {
				bad(i, "polygon", "has no area")
			}
		}
		switch c.Type {
		case TypeZone, TypeDwell:
			needPolygon(true)
		case TypeCount:
			needPolygon(false)
			if c.Min < 1 {
				bad(i, "min", "want at least 1, got %d", c.Min)
			}
		case TypeLine:
			if len(c.Line) != 2 {
				bad(i, "line", "want 2 points, got %d", len(c.Line))
			} else {
				checkPoints("line", c.Line)
				if c.Line[0] == c.Line[1] {
					bad(i, "line", "the 2 points are the same")
				}
			}
			switch c.Direction {
			case DirectionBoth, "both", DirectionAtoB, DirectionBtoA:
			default:
				bad(i, "direction", "want a_to_b, b_to_a or both, got %q", c.Direction)
			}
		case "":
			bad(i, "type", "required (zone, line, dwell or count)")
		default:
			bad(i, "type", "unknown %q (want zone, line, dwell or count)", c.Type)
		}
		if c.Type == TypeDwell && !(c.Seconds > 0) {
			bad(i, "seconds", "want > 0 for a dwell rule, got %v", c.Seconds)
		}
		if c.Cooldown < 0 || math.IsNaN(c.Cooldown) {
			bad(i, "cooldown", "want >= 0 seconds, got %v", c.Cooldown)
		}
		for k, cl := range c.Classes {
			if cl == "" {
				bad(i, fmt.Sprintf("classes[%d]", k), "empty class name")
			}
		}
	}
	return errors.Join(errs...)
}

func polygonArea(p [][2]float64) float64 {
	a := 0.0
	for i := range p {
		j := (i + 1) % len(p)
		a += p[i][0]*p[j][1] - p[j][0]*p[i][1]
	}
	return a / 2
}

// inPolygon is the even-odd point-in-polygon test.
func inPolygon(p [][2]float64, x, y float64) bool {
	in := false
	for i, j := 0, len(p)-1; i < len(p); j, i = i, i+1 {
		xi, yi, xj, yj := p[i][0], p[i][1], p[j][0], p[j][1]
		if (yi > y) != (yj > y) && x < (xj-xi)*(y-yi)/(yj-yi)+xi {
			in = !in
		}
	}
	return in
}
