package rules

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"sightline/analytics"
	"sightline/analytics/track"
)

const step = 200 * time.Millisecond

// at puts a 0.04x0.1 box whose bottom centre is (x, y).
func at(id int64, label string, x, y float32) track.Track {
	return track.Track{ID: id, Label: label, Box: analytics.Box{X: x - 0.02, Y: y - 0.1, W: 0.04, H: 0.1}}
}

func mustNew(t *testing.T, cfgs ...Config) *Engine {
	t.Helper()
	e, err := New("street", cfgs)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func kinds(evs []Event) string {
	var s []string
	for _, e := range evs {
		k := e.Rule + ":" + e.Kind
		if e.Direction != "" {
			k += ":" + e.Direction
		}
		s = append(s, k)
	}
	return strings.Join(s, ",")
}

func TestIssueYAMLShape(t *testing.T) {
	var cfgs []Config
	src := `
- {id: walkway, type: zone, polygon: [[0.1,0.5],[0.9,0.5],[0.9,1],[0.1,1]], classes: [person]}
- {id: crossing, type: line, line: [[0.5,0],[0.5,1]], classes: [person]}
`
	if err := yaml.Unmarshal([]byte(src), &cfgs); err != nil {
		t.Fatal(err)
	}
	if err := Validate(cfgs); err != nil {
		t.Fatal(err)
	}
	if cfgs[0].Polygon[2] != [2]float64{0.9, 1} || cfgs[1].Line[1] != [2]float64{0.5, 1} || cfgs[0].Classes[0] != "person" {
		t.Fatalf("parsed %+v", cfgs)
	}
}

func TestValidateNamesTheKey(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{Type: TypeZone, Polygon: [][2]float64{{0, 0}, {1, 0}, {1, 1}}}, "rules[0].id: required"},
		{Config{ID: "a"}, "rules[0].type: required"},
		{Config{ID: "a", Type: "fence"}, `rules[0].type: unknown "fence"`},
		{Config{ID: "a", Type: TypeZone, Polygon: [][2]float64{{0, 0}, {1, 0}}}, "rules[0].polygon: want at least 3 points, got 2"},
		{Config{ID: "a", Type: TypeZone, Polygon: [][2]float64{{0, 0}, {1, 0}, {1, 1.5}}}, "rules[0].polygon[2]: coordinates must be in 0..1"},
		{Config{ID: "a", Type: TypeZone, Polygon: [][2]float64{{0, 0}, {0.5, 0.5}, {1, 1}}}, "rules[0].polygon: has no area"},
		{Config{ID: "a", Type: TypeLine, Line: [][2]float64{{0, 0}}}, "rules[0].line: want 2 points, got 1"},
		{Config{ID: "a", Type: TypeLine, Line: [][2]float64{{0.5, 0.5}, {0.5, 0.5}}}, "rules[0].line: the 2 points are the same"},
		{Config{ID: "a", Type: TypeLine, Line: [][2]float64{{0, 0}, {1, 1}}, Direction: "up"}, `rules[0].direction: want a_to_b, b_to_a or both, got "up"`},
		{Config{ID: "a", Type: TypeDwell, Polygon: [][2]float64{{0, 0}, {1, 0}, {1, 1}}}, "rules[0].seconds: want > 0"},
		{Config{ID: "a", Type: TypeCount}, "rules[0].min: want at least 1"},
		{Config{ID: "a", Type: TypeCount, Min: 1, Cooldown: -1}, "rules[0].cooldown: want >= 0"},
		{Config{ID: "a", Type: TypeCount, Min: 1, Classes: []string{""}}, "rules[0].classes[0]: empty class name"},
	}
	for _, c := range cases {
		err := Validate([]Config{c.cfg})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err %v, want %q", c.cfg, err, c.want)
		}
	}
	ok := Config{ID: "a", Type: TypeCount, Min: 1}
	err := Validate([]Config{ok, ok})
	if err == nil || !strings.Contains(err.Error(), `rules[1].id: "a" already used by rules[0]`) {
		t.Fatalf("duplicate id: %v", err)
	}
	if _, err := New("cam", []Config{{ID: "x"}}); err == nil || !strings.Contains(err.Error(), "camera cam: rules[0].type") {
		t.Fatalf("New: %v", err)
	}
}

func TestZoneEnterExitOccupancy(t *testing.T) {
	e := mustNew(t, Config{ID: "walkway", Type: TypeZone, Polygon: [][2]float64{{0.1, 0.5}, {0.9, 0.5}, {0.9, 1}, {0.1, 1}}, Classes: []string{"person"}})
	var got []Event
	ys := []float32{0.3, 0.45, 0.55, 0.7, 0.8, 0.7, 0.45, 0.3}
	for i, y := range ys {
		tr := []track.Track{at(1, "person", 0.5, y), at(2, "person", 0.3, 0.8), at(3, "car", 0.6, 0.8)}
		got = append(got, e.Update(time.Duration(i)*step, time.Time{}, tr)...)
	}
	// Person 2 stands inside from the start (enter at once); person 1 enters at 0.55 and exits at 0.45;
	// the car is not a person.
	if k := kinds(got); k != "walkway:enter,walkway:enter,walkway:exit" {
		t.Fatalf("events %s", k)
	}
	if got[0].ObjectID != 2 || got[0].Count != 1 || got[1].ObjectID != 1 || got[1].Count != 2 || got[2].Count != 1 {
		t.Fatalf("ids/occupancy: %+v", got)
	}
	if got[1].PTS != 2*step || got[1].Camera != "street" || got[1].Label != "person" {
		t.Fatalf("event fields: %+v", got[1])
	}
	if n := e.Occupancy("walkway"); n != 1 {
		t.Fatalf("occupancy %d", n)
	}
}

func TestLineCrossingBothWaysAndDirection(t *testing.T) {
	line := [][2]float64{{0.5, 0}, {0.5, 1}} // drawn top to bottom: side A is the left half
	both := mustNew(t, Config{ID: "crossing", Type: TypeLine, Line: line})
	ab := mustNew(t, Config{ID: "east", Type: TypeLine, Line: line, Direction: DirectionAtoB})
	var gotBoth, gotAB []Event
	xs := []float32{0.3, 0.45, 0.5, 0.55, 0.7, 0.55, 0.4} // right across (touching the line), then back
	for i, x := range xs {
		tr := []track.Track{at(7, "person", x, 0.6)}
		gotBoth = append(gotBoth, both.Update(time.Duration(i)*step, time.Time{}, tr)...)
		gotAB = append(gotAB, ab.Update(time.Duration(i)*step, time.Time{}, tr)...)
	}
	if k := kinds(gotBoth); k != "crossing:cross:a_to_b,crossing:cross:b_to_a" {
		t.Fatalf("both ways: %s", k)
	}
	if k := kinds(gotAB); k != "east:cross:a_to_b" {
		t.Fatalf("a_to_b only: %s", k)
	}
	// Passing beyond the segment's end is not a crossing.
	short := mustNew(t, Config{ID: "short", Type: TypeLine, Line: [][2]float64{{0.5, 0}, {0.5, 0.4}}})
	var evs []Event
	for i, x := range []float32{0.3, 0.7} {
		evs = append(evs, short.Update(time.Duration(i)*step, time.Time{}, []track.Track{at(1, "person", x, 0.8)})...)
	}
	if len(evs) != 0 {
		t.Fatalf("crossed the extension: %s", kinds(evs))
	}
}

func TestLineCooldownDedupesJitter(t *testing.T) {
	e := mustNew(t, Config{ID: "l", Type: TypeLine, Line: [][2]float64{{0.5, 0}, {0.5, 1}}, Cooldown: 2})
	var got []Event
	// Jitters across the line every sample for 2.4 s: one a_to_b and one b_to_a, then again after the cooldown.
	for i := 0; i < 13; i++ {
		x := float32(0.48)
		if i%2 == 1 {
			x = 0.52
		}
		got = append(got, e.Update(time.Duration(i)*step, time.Time{}, []track.Track{at(1, "person", x, 0.5)})...)
	}
	if k := kinds(got); k != "l:cross:a_to_b,l:cross:b_to_a,l:cross:a_to_b,l:cross:b_to_a" {
		t.Fatalf("events %s", k)
	}
	if got[2].PTS-got[0].PTS < 2*time.Second {
		t.Fatalf("cooldown not honoured: %v then %v", got[0].PTS, got[2].PTS)
	}
}

func TestDwellExactlyAtThreshold(t *testing.T) {
	e := mustNew(t, Config{ID: "loiter", Type: TypeDwell, Polygon: [][2]float64{{0, 0}, {1, 0}, {1, 1}, {0, 1}}, Seconds: 1})
	var got []Event
	// Enters at t=0.2 s; at 1.0 s it has been in 0.8 s (no event), at 1.2 s exactly 1 s (event), then never again this visit.
	for i := 1; i <= 12; i++ {
		evs := e.Update(time.Duration(i)*step, time.Time{}, []track.Track{at(4, "person", 0.5, 0.5)})
		if i < 6 && len(evs) != 0 {
			t.Fatalf("dwell before the threshold at %v", time.Duration(i)*step)
		}
		got = append(got, evs...)
	}
	if len(got) != 1 || got[0].Kind != KindDwell || got[0].PTS != 6*step || got[0].ObjectID != 4 {
		t.Fatalf("dwell events %+v", got)
	}
	// Leaving (for longer than Forget) and coming back starts a new visit.
	e.Update(20*step, time.Time{}, nil)
	e.Update(40*step, time.Time{}, nil)
	got = nil
	for i := 41; i <= 46; i++ {
		got = append(got, e.Update(time.Duration(i)*step, time.Time{}, []track.Track{at(4, "person", 0.5, 0.5)})...)
	}
	if len(got) != 1 || got[0].PTS != 46*step {
		t.Fatalf("second visit: %+v", got)
	}
}

func TestCountThresholdPerClass(t *testing.T) {
	e := mustNew(t, Config{ID: "crowd", Type: TypeCount, Classes: []string{"person"}, Min: 3})
	frames := [][]track.Track{
		{at(1, "person", 0.1, 0.5), at(2, "person", 0.2, 0.5), at(9, "car", 0.5, 0.5), at(10, "car", 0.6, 0.5)},
		{at(1, "person", 0.1, 0.5), at(2, "person", 0.2, 0.5), at(3, "person", 0.3, 0.5)},
		{at(1, "person", 0.1, 0.5), at(2, "person", 0.2, 0.5), at(3, "person", 0.3, 0.5), at(4, "person", 0.4, 0.5)},
		{at(1, "person", 0.1, 0.5)},
		{at(1, "person", 0.1, 0.5), at(2, "person", 0.2, 0.5), at(3, "person", 0.3, 0.5)},
	}
	var got []Event
	for i, f := range frames {
		got = append(got, e.Update(time.Duration(i)*step, time.Time{}, f)...)
	}
	// Rising edges only: frame 1 (3 people) and frame 4 (back to 3), not while it stays above.
	if len(got) != 2 || got[0].Count != 3 || got[0].PTS != step || got[1].PTS != 4*step || got[0].ObjectID != 0 {
		t.Fatalf("count events %+v", got)
	}
}

func FuzzPolygon(f *testing.F) {
	f.Add(0.1, 0.5, 0.9, 0.5, 0.9, 1.0, 0.5, 0.7)
	f.Fuzz(func(t *testing.T, ax, ay, bx, by, cx, cy, px, py float64) {
		cfg := Config{ID: "z", Type: TypeZone, Polygon: [][2]float64{{ax, ay}, {bx, by}, {cx, cy}}}
		if Validate([]Config{cfg}) != nil {
			return
		}
		e, err := New("c", []Config{cfg})
		if err != nil {
			t.Fatal(err)
		}
		e.Update(0, time.Time{}, []track.Track{at(1, "x", float32(px), float32(py))})
		e.Update(step, time.Time{}, []track.Track{at(1, "x", float32(py), float32(px))})
	})
}
