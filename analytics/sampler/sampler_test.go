package sampler

import (
	"testing"
	"time"
)

// feed offers n frames at fps (every keyEvery-th a keyframe) and returns the PTS of the due ones.
func feed(s *Sampler, n int, fps float64, keyEvery int, start time.Duration) []time.Duration {
	var due []time.Duration
	for i := 0; i < n; i++ {
		pts := start + time.Duration(float64(i)/fps*float64(time.Second))
		if s.Due(pts, keyEvery > 0 && i%keyEvery == 0) {
			due = append(due, pts)
		}
	}
	return due
}

func TestFPSCap(t *testing.T) {
	cases := []struct {
		name    string
		cfg     Config
		in      float64
		frames  int
		wantDue int
	}{
		{"default 5 of 25", Config{}, 25, 250, 50},
		{"5 of 30", Config{FPS: 5}, 30, 300, 50},
		{"5 of 29.97", Config{FPS: 5}, 29.97, 300, 50}, // last frame at 9.977 s: the 10.0 s slot is not reached
		{"2 of 25", Config{FPS: 2}, 25, 250, 21},       // last frame 9.96 s is within the tolerance of the 10.0 s slot
		{"cap above input", Config{FPS: 50}, 25, 250, 250},
		{"12.5 of 25", Config{FPS: 12.5}, 25, 250, 125},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := New(c.cfg)
			due := feed(s, c.frames, c.in, 0, 0)
			if len(due) != c.wantDue {
				t.Fatalf("%d due, want %d", len(due), c.wantDue)
			}
			// Evenly spread: no two due frames closer than 0.9 interval.
			for i := 1; i < len(due); i++ {
				if d := due[i] - due[i-1]; d < s.interval*9/10 {
					t.Fatalf("due frames %v and %v only %v apart", due[i-1], due[i], d)
				}
			}
			if st := s.Stats(); st.Frames != uint64(c.frames) || st.Due != uint64(c.wantDue) {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestJitterAndRestart(t *testing.T) {
	s := New(Config{FPS: 5})
	// 25 fps with ±3 ms jitter: still 5 per second.
	n := 0
	for i := 0; i < 250; i++ {
		j := time.Duration((i%3)-1) * 3 * time.Millisecond
		if s.Due(time.Duration(i)*40*time.Millisecond+j, false) {
			n++
		}
	}
	if n != 50 {
		t.Fatalf("%d due with jitter, want 50", n)
	}
	// The source restarts: timestamps from 0 again are due at once.
	if !s.Due(0, true) {
		t.Fatal("frame after a restart not due")
	}
	// A gap of 3 s: the next frame is due and the grid restarts there.
	if !s.Due(3*time.Second+40*time.Millisecond, false) || s.Due(3*time.Second+80*time.Millisecond, false) {
		t.Fatal("grid not restarted after a gap")
	}
}

func TestKeyframesOnly(t *testing.T) {
	s := New(Config{KeyframesOnly: true})
	due := feed(s, 250, 25, 25, 0)
	if len(due) != 10 {
		t.Fatalf("%d due, want the 10 keyframes", len(due))
	}
	for i, p := range due {
		if p != time.Duration(i)*time.Second {
			t.Fatalf("due %v", due)
		}
	}
	// fps cap below the keyframe rate still applies.
	s = New(Config{KeyframesOnly: true, FPS: 0.5})
	if due := feed(s, 250, 25, 25, 0); len(due) != 5 {
		t.Fatalf("%d due at 0.5 fps, want 5", len(due))
	}
}

func TestMotionGateForcesEveryK(t *testing.T) {
	s := New(Config{MotionGate: true, ForceEvery: time.Second})
	sel := 0
	var selPTS []time.Duration
	// 5 s still, then 1 s of motion, then still.
	for i := 0; i < 8*25; i++ {
		pts := time.Duration(i) * 40 * time.Millisecond
		if !s.Due(pts, false) {
			continue
		}
		moving := pts >= 5*time.Second && pts < 6*time.Second
		if s.Select(pts, moving) {
			sel++
			selPTS = append(selPTS, pts)
		}
	}
	// Still: 0, 1, 2, 3, 4 s (forced); moving: 5.0..5.8 (5 frames); still: 6.8, 7.8? The forced clock
	// restarts at the last selected frame (5.8 s): 6.8 and 7.8 s.
	want := []time.Duration{0, 1, 2, 3, 4}
	for i := range want {
		want[i] *= time.Second
	}
	for i := 0; i < 5; i++ {
		want = append(want, 5*time.Second+time.Duration(i)*200*time.Millisecond)
	}
	want = append(want, 6800*time.Millisecond, 7800*time.Millisecond)
	if len(selPTS) != len(want) {
		t.Fatalf("selected %v, want %v", selPTS, want)
	}
	for i := range want {
		if selPTS[i] != want[i] {
			t.Fatalf("selected %v, want %v", selPTS, want)
		}
	}
	st := s.Stats()
	if st.Selected != uint64(sel) || st.Due != 40 || st.Gated != st.Due-st.Selected || st.Forced != 7 {
		t.Fatalf("stats %+v", st)
	}
}

func TestGateOffSelectsEveryDueFrame(t *testing.T) {
	s := New(Config{})
	for i := 0; i < 10; i++ {
		if !s.Select(time.Duration(i)*200*time.Millisecond, false) {
			t.Fatal("gate off skipped a frame")
		}
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []Config{{FPS: -1}, {FPS: 1000}, {ForceEvery: -time.Second}} {
		if c.Validate() == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if err := (Config{FPS: 5, MotionGate: true}).Validate(); err != nil {
		t.Fatal(err)
	}
}
