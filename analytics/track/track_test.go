package track

import (
	"math"
	"math/rand"
	"testing"
	"time"

	"sightline/analytics"
)

const frame = 200 * time.Millisecond // 5 fps sampling

func person(x, y, score float32) analytics.Detection {
	return analytics.Detection{Class: 0, Label: "person", Score: score, Box: analytics.Box{X: x, Y: y, W: 0.05, H: 0.2}}
}

func idAt(tracks []Track, x float32) int64 {
	for _, tr := range tracks {
		if math.Abs(float64(tr.Box.X-x)) < 0.03 {
			return tr.ID
		}
	}
	return 0
}

func TestBirthNeedsTwoHitsAndIDsAreStable(t *testing.T) {
	tr := New(Config{})
	if got := tr.Update(0, []analytics.Detection{person(0.1, 0.4, 0.9)}); len(got) != 0 {
		t.Fatalf("first sighting confirmed at once: %v", got)
	}
	for i := 1; i < 20; i++ {
		got := tr.Update(time.Duration(i)*frame, []analytics.Detection{person(0.1+0.01*float32(i), 0.4, 0.9)})
		if len(got) != 1 || got[0].ID != 1 {
			t.Fatalf("frame %d: %+v, want id 1", i, got)
		}
	}
	// A one-frame false positive never gets an id, so ids are not wasted on blips.
	tr.Update(20*frame, []analytics.Detection{person(0.3, 0.4, 0.9), person(0.8, 0.1, 0.9)})
	got := tr.Update(21*frame, []analytics.Detection{person(0.31, 0.4, 0.9), person(0.5, 0.5, 0.9)})
	tr.Update(22*frame, []analytics.Detection{person(0.32, 0.4, 0.9), person(0.5, 0.5, 0.9)})
	if len(got) != 1 || got[0].ID != 1 {
		t.Fatalf("blip frame: %+v", got)
	}
	got = tr.Update(23*frame, []analytics.Detection{person(0.33, 0.4, 0.9), person(0.5, 0.5, 0.9)})
	if len(got) != 2 || got[1].ID != 2 {
		t.Fatalf("second object should get id 2 (not 3): %+v", got)
	}
}

func TestCrossingBothWaysKeepsIDs(t *testing.T) {
	tr := New(Config{})
	var leftID, rightID int64
	for i := 0; i <= 40; i++ {
		ts := time.Duration(i) * frame
		a := 0.05 + 0.02*float32(i) // walking right
		b := 0.85 - 0.02*float32(i) // walking left, same row: boxes overlap mid-way
		got := tr.Update(ts, []analytics.Detection{person(a, 0.4, 0.9), person(b, 0.41, 0.85)})
		if i < 2 {
			continue
		}
		if len(got) != 2 {
			t.Fatalf("frame %d: %d tracks", i, len(got))
		}
		if i == 2 {
			leftID, rightID = got[0].ID, got[1].ID
		}
		if got[0].ID != leftID || got[1].ID != rightID {
			t.Fatalf("frame %d (x %.2f / %.2f): ids %d/%d, want %d/%d (switch)", i, a, b, got[0].ID, got[1].ID, leftID, rightID)
		}
		if i > 5 && (got[0].VX <= 0 || got[1].VX >= 0) {
			t.Fatalf("frame %d: velocities %v / %v", i, got[0].VX, got[1].VX)
		}
	}
}

func TestOcclusionKeepsIDAndReentryGetsNewOne(t *testing.T) {
	tr := New(Config{})
	x := func(i int) float32 { return 0.1 + 0.015*float32(i) }
	var id int64
	for i := 0; i < 10; i++ {
		got := tr.Update(time.Duration(i)*frame, []analytics.Detection{person(x(i), 0.4, 0.9)})
		if i == 5 {
			id = got[0].ID
		}
	}
	// Behind a pillar for 1 s (5 samples): no detections; the track coasts and Predict stops drawing it.
	for i := 10; i < 15; i++ {
		if got := tr.Update(time.Duration(i)*frame, nil); len(got) != 0 {
			t.Fatalf("frame %d: %v", i, got)
		}
		if p := tr.Predict(time.Duration(i) * frame); len(p) != 0 {
			t.Fatalf("lost track still predicted: %v", p)
		}
	}
	// Reappears where its velocity took it.
	got := tr.Update(15*frame, []analytics.Detection{person(x(15), 0.4, 0.9)})
	if len(got) != 1 || got[0].ID != id {
		t.Fatalf("after occlusion: %+v, want id %d", got, id)
	}
	// Leaves for longer than MaxLost and comes back: a new id after the birth hysteresis.
	for i := 16; i < 30; i++ {
		tr.Update(time.Duration(i)*frame, nil)
	}
	if tr.Len() != 0 {
		t.Fatalf("%d tracks survive MaxLost", tr.Len())
	}
	tr.Update(30*frame, []analytics.Detection{person(0.2, 0.4, 0.9)})
	got = tr.Update(31*frame, []analytics.Detection{person(0.2, 0.4, 0.9)})
	if len(got) != 1 || got[0].ID == id {
		t.Fatalf("re-entry: %+v (old id %d)", got, id)
	}
}

func TestLowScoreDetectionsExtendButNeverStart(t *testing.T) {
	tr := New(Config{})
	for i := 0; i < 3; i++ {
		tr.Update(time.Duration(i)*frame, []analytics.Detection{person(0.1+0.01*float32(i), 0.4, 0.9)})
	}
	// Partly occluded: the detector's score drops to 0.3 (below HighScore).
	for i := 3; i < 8; i++ {
		got := tr.Update(time.Duration(i)*frame, []analytics.Detection{person(0.1+0.01*float32(i), 0.4, 0.3), person(0.7, 0.7, 0.3)})
		if len(got) != 1 || got[0].ID != 1 {
			t.Fatalf("frame %d: %+v", i, got)
		}
	}
	if tr.Len() != 1 {
		t.Fatalf("low-score detection started a track: %d tracks", tr.Len())
	}
}

func TestClassesDoNotMix(t *testing.T) {
	tr := New(Config{})
	car := func(x float32) analytics.Detection {
		return analytics.Detection{Class: 2, Label: "car", Score: 0.9, Box: analytics.Box{X: x, Y: 0.4, W: 0.05, H: 0.2}}
	}
	tr.Update(0, []analytics.Detection{person(0.1, 0.4, 0.9)})
	tr.Update(frame, []analytics.Detection{person(0.1, 0.4, 0.9)})
	got := tr.Update(2*frame, []analytics.Detection{car(0.1)})
	if len(got) != 0 {
		t.Fatalf("a car continued a person track: %+v", got)
	}
}

func TestPredictExtrapolates(t *testing.T) {
	tr := New(Config{})
	// Constant velocity 0.1 frame widths per second to the right.
	for i := 0; i < 25; i++ {
		ts := time.Duration(i) * frame
		tr.Update(ts, []analytics.Detection{person(0.1+0.1*float32(ts.Seconds()), 0.4, 0.9)})
	}
	last := 24 * frame
	p := tr.Predict(last + 500*time.Millisecond)
	if len(p) != 1 {
		t.Fatalf("predict: %v", p)
	}
	want := 0.1 + 0.1*float32((last+500*time.Millisecond).Seconds())
	if math.Abs(float64(p[0].Box.X-want)) > 0.005 || math.Abs(float64(p[0].VX-0.1)) > 0.01 {
		t.Fatalf("predicted x %.4f vx %.4f, want %.4f 0.1", p[0].Box.X, p[0].VX, want)
	}
	// Earlier than the last update: the filtered box, not a backwards extrapolation.
	if q := tr.Predict(0); math.Abs(float64(q[0].Box.X-(0.1+0.1*float32(last.Seconds())))) > 0.005 {
		t.Fatalf("predict into the past: %v", q[0].Box)
	}
	// Out-of-order updates are ignored.
	if got := tr.Update(frame, []analytics.Detection{person(0.9, 0.9, 0.9)}); got != nil {
		t.Fatalf("stale update applied: %v", got)
	}
}

// BenchmarkUpdate100 is one Update with 100 moving objects (the goal: <= 1 ms per frame).
func BenchmarkUpdate100(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	const n = 100
	type obj struct{ x, y, vx, vy float32 }
	objs := make([]obj, n)
	for i := range objs {
		objs[i] = obj{rng.Float32() * 0.9, rng.Float32() * 0.8, (rng.Float32() - 0.5) * 0.05, (rng.Float32() - 0.5) * 0.05}
	}
	dets := make([]analytics.Detection, n)
	tr := New(Config{})
	b.ResetTimer()
	for i := range b.N {
		for j := range objs {
			o := &objs[j]
			o.x, o.y = o.x+o.vx*0.2, o.y+o.vy*0.2
			if o.x < 0 || o.x > 0.95 {
				o.vx = -o.vx
			}
			if o.y < 0 || o.y > 0.9 {
				o.vy = -o.vy
			}
			dets[j] = analytics.Detection{Class: j % 3, Score: 0.3 + 0.7*float32((i+j)%10)/10, Box: analytics.Box{X: o.x, Y: o.y, W: 0.04, H: 0.08}}
		}
		tr.Update(time.Duration(i)*frame, dets)
	}
}
