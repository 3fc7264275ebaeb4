package analytics

import (
	"image"
	"image/color"
	"math"
	"testing"
)

func det(cls int, score, x, y, w, h float32) Detection {
	return Detection{Class: cls, Score: score, Box: Box{X: x, Y: y, W: w, H: h}}
}

func TestIoU(t *testing.T) {
	cases := []struct {
		name string
		a, b Box
		want float32
	}{
		{"same", Box{0, 0, 1, 1}, Box{0, 0, 1, 1}, 1},
		{"disjoint", Box{0, 0, 0.1, 0.1}, Box{0.5, 0.5, 0.1, 0.1}, 0},
		{"touching", Box{0, 0, 0.5, 0.5}, Box{0.5, 0, 0.5, 0.5}, 0},
		{"half", Box{0, 0, 1, 1}, Box{0, 0, 0.5, 1}, 0.5},
		{"third", Box{0, 0, 2, 1}, Box{1, 0, 2, 1}, 1.0 / 3},
		{"empty", Box{0, 0, 0, 0}, Box{0, 0, 0, 0}, 0},
		{"inside", Box{0, 0, 1, 1}, Box{0.25, 0.25, 0.5, 0.5}, 0.25},
	}
	for _, c := range cases {
		if got := IoU(c.a, c.b); math.Abs(float64(got-c.want)) > 1e-6 {
			t.Errorf("%s: IoU = %v, want %v", c.name, got, c.want)
		}
		if got := IoU(c.b, c.a); math.Abs(float64(got-c.want)) > 1e-6 {
			t.Errorf("%s (swapped): IoU = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestNMS(t *testing.T) {
	cases := []struct {
		name     string
		in       []Detection
		iou      float32
		agnostic bool
		want     []float32 // scores kept, in order
	}{
		{"empty", nil, 0.45, false, []float32{}},
		{"one", []Detection{det(0, 0.5, 0, 0, 1, 1)}, 0.45, false, []float32{0.5}},
		{"overlap same class keeps best", []Detection{det(0, 0.6, 0, 0, 1, 1), det(0, 0.9, 0.05, 0, 1, 1)}, 0.45, false, []float32{0.9}},
		{"overlap other class kept class-wise", []Detection{det(2, 0.8, 0, 0, 1, 1), det(7, 0.7, 0, 0, 1, 1)}, 0.45, false, []float32{0.8, 0.7}},
		{"overlap other class suppressed agnostic", []Detection{det(2, 0.8, 0, 0, 1, 1), det(7, 0.7, 0, 0, 1, 1)}, 0.45, true, []float32{0.8}},
		{"IoU exactly at threshold kept", []Detection{det(0, 0.9, 0, 0, 1, 1), det(0, 0.8, 0, 0, 0.5, 1)}, 0.5, false, []float32{0.9, 0.8}},
		{"IoU just over threshold dropped", []Detection{det(0, 0.9, 0, 0, 1, 1), det(0, 0.8, 0, 0, 0.5, 1)}, 0.49, false, []float32{0.9}},
		{"disjoint all kept sorted", []Detection{det(0, 0.3, 0, 0, 0.1, 0.1), det(0, 0.9, 0.5, 0.5, 0.1, 0.1), det(0, 0.6, 0.8, 0.8, 0.1, 0.1)}, 0.45, false, []float32{0.9, 0.6, 0.3}},
		{"suppressed box does not suppress", []Detection{ // chain: A>B overlap, B>C overlap, A,C disjoint: C stays
			det(0, 0.9, 0, 0, 0.4, 1), det(0, 0.8, 0.2, 0, 0.4, 1), det(0, 0.7, 0.4, 0, 0.4, 1)}, 0.3, false, []float32{0.9, 0.7}},
	}
	for _, c := range cases {
		got := NMS(c.in, c.iou, c.agnostic)
		if len(got) != len(c.want) {
			t.Errorf("%s: kept %d, want %d (%v)", c.name, len(got), len(c.want), got)
			continue
		}
		for i := range got {
			if got[i].Score != c.want[i] {
				t.Errorf("%s: kept[%d].Score = %v, want %v", c.name, i, got[i].Score, c.want[i])
			}
		}
	}
}

func TestLetterboxGeometry(t *testing.T) {
	lb, err := NewLetterbox(810, 1080, 416, 416) // bus.jpg
	if err != nil {
		t.Fatal(err)
	}
	if lb.ScaledW != 312 || lb.ScaledH != 416 {
		t.Fatalf("scaled %dx%d, want 312x416", lb.ScaledW, lb.ScaledH)
	}
	b := lb.ToFrame(0, 0, 312, 416)
	if math.Abs(float64(b.W-1)) > 1e-3 || math.Abs(float64(b.H-1)) > 1e-6 || b.X != 0 || b.Y != 0 {
		t.Fatalf("full scaled area maps to %+v, want the whole frame", b)
	}
	if b := lb.ToFrame(-10, -10, 500, 500); b != (Box{0, 0, 1, 1}) {
		t.Fatalf("outside corners not clipped: %+v", b)
	}
	if _, err := NewLetterbox(0, 10, 416, 416); err == nil {
		t.Fatal("zero width accepted")
	}
}

func TestFillImage(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 200, 100))
	for y := 0; y < 100; y++ {
		for x := 0; x < 200; x++ {
			img.Set(x, y, color.RGBA{R: 10, G: 20, B: 30, A: 255})
		}
	}
	spec := InputSpec{Width: 64, Height: 64, Channels: 3, BGR: true, Scale: 1, Pad: 114, MaxBatch: 1}
	buf := make([]float32, spec.Len())
	lb, err := FillImage(img, spec, buf)
	if err != nil {
		t.Fatal(err)
	}
	if lb.ScaledW != 64 || lb.ScaledH != 32 || lb.PadX != 0 || lb.PadY != 0 {
		t.Fatalf("letterbox %+v", lb)
	}
	plane := 64 * 64
	at := func(c, x, y int) float32 { return buf[c*plane+y*64+x] }
	// Inside: B, G, R planes; below row 32: pad.
	if at(0, 5, 5) != 30 || at(1, 5, 5) != 20 || at(2, 5, 5) != 10 {
		t.Fatalf("BGR inside = %v %v %v", at(0, 5, 5), at(1, 5, 5), at(2, 5, 5))
	}
	if at(0, 5, 40) != 114 || at(2, 63, 63) != 114 {
		t.Fatal("pad not 114")
	}
	spec.BGR, spec.Scale = false, 1.0/255
	if _, err := FillImage(img, spec, buf); err != nil {
		t.Fatal(err)
	}
	if math.Abs(float64(at(0, 5, 5)-10.0/255)) > 1e-6 {
		t.Fatalf("RGB scaled R = %v", at(0, 5, 5))
	}
	if _, err := FillImage(img, spec, buf[:10]); err == nil {
		t.Fatal("short tensor accepted")
	}
}

func TestBilinearTapsMatchOpenCV(t *testing.T) {
	// Downscale 4 -> 2: centres at 0.5 and 2.5 → taps (0,1,0.5) and (2,3,0.5).
	taps := bilinearTaps(4, 2)
	if taps[0] != (tap{0, 1, 0.5}) || taps[1] != (tap{2, 3, 0.5}) {
		t.Fatalf("taps %+v", taps)
	}
	// Upscale 2 -> 4: first sample clamps to 0, last clamps to the edge.
	taps = bilinearTaps(2, 4)
	if taps[0] != (tap{0, 1, 0}) || taps[3] != (tap{1, 1, 0}) || taps[1] != (tap{0, 1, 0.25}) {
		t.Fatalf("taps %+v", taps)
	}
}
