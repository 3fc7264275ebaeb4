package overlay

import "testing"

func TestTrails(t *testing.T) {
	tr := newTrails(3)
	for i := 0; i < 5; i++ {
		tr.update([]Box{{ID: 1, X: float32(i) / 10, Y: 0.5, W: 0.1, H: 0.2}, {X: 0.9}})
	}
	got := tr.update([]Box{{ID: 1, X: 0.5, Y: 0.5, W: 0.1, H: 0.2}, {ID: 2, X: 0, Y: 0, W: 0.2, H: 0.2}})
	want := [][2]float32{{0.35, 0.7}, {0.45, 0.7}, {0.55, 0.7}}
	if len(got[1]) != 3 || len(got[2]) != 1 || len(got) != 2 {
		t.Fatalf("trails %v", got)
	}
	for i, p := range want {
		if d := got[1][i][0] - p[0]; d > 1e-6 || d < -1e-6 || got[1][i][1] != p[1] {
			t.Fatalf("trail 1 = %v, want %v", got[1], want)
		}
	}
	if got := tr.update(nil); len(got) != 0 {
		t.Fatalf("tracks not forgotten: %v", got)
	}
}
