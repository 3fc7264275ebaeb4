package motion

import (
	"math"
	"testing"

	"sightline/analytics"
)

// frame returns a grey 320x180 luma plane (stride 336) with white rectangles at the given pixel rects.
func frame(rects ...[4]int) ([]byte, int, int, int) {
	const w, h, stride = 320, 180, 336
	y := make([]byte, stride*h)
	for i := range y {
		y[i] = 60
	}
	for _, r := range rects {
		for yy := r[1]; yy < r[1]+r[3]; yy++ {
			for xx := r[0]; xx < r[0]+r[2]; xx++ {
				y[yy*stride+xx] = 220
			}
		}
	}
	return y, w, h, stride
}

func near(a, b float32) bool { return math.Abs(float64(a-b)) < 0.05 }

func TestStillSceneHasNoMotion(t *testing.T) {
	d := New(Config{})
	for i := 0; i < 3; i++ {
		y, w, h, s := frame([4]int{100, 50, 40, 40})
		dets, frac, err := d.Detect(y, w, h, s)
		if err != nil || len(dets) != 0 || frac != 0 {
			t.Fatalf("frame %d: %v %v %v", i, dets, frac, err)
		}
	}
}

func TestMovingObjectsGiveBoxes(t *testing.T) {
	d := New(Config{})
	y, w, h, s := frame()
	d.Detect(y, w, h, s)
	// Two objects appear far apart: two boxes, where they are.
	y, w, h, s = frame([4]int{32, 40, 40, 60}, [4]int{220, 100, 60, 40})
	dets, frac, err := d.Detect(y, w, h, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(dets) != 2 || frac <= 0 {
		t.Fatalf("got %d boxes (%v), changed %v", len(dets), dets, frac)
	}
	want := []analytics.Box{{X: 32.0 / 320, Y: 40.0 / 180, W: 40.0 / 320, H: 60.0 / 180}, {X: 220.0 / 320, Y: 100.0 / 180, W: 60.0 / 320, H: 40.0 / 180}}
	for i, b := range want {
		g := dets[i].Box
		if dets[i].Label != Label || dets[i].Class != Class || !near(g.X, b.X) || !near(g.Y, b.Y) || !near(g.W, b.W) || !near(g.H, b.H) {
			t.Errorf("box %d = %+v, want about %+v", i, dets[i], b)
		}
	}
	// Nothing moves next frame.
	if dets, _, _ := d.Detect(y, w, h, s); len(dets) != 0 {
		t.Fatalf("static frame gave %v", dets)
	}
}

func TestDilateJoinsNearbyBlobs(t *testing.T) {
	d := New(Config{Width: 320, Dilate: 3})
	y, w, h, s := frame()
	d.Detect(y, w, h, s)
	y, w, h, s = frame([4]int{100, 50, 10, 10}, [4]int{114, 50, 10, 10}) // 4 px apart
	dets, _, _ := d.Detect(y, w, h, s)
	if len(dets) != 1 {
		t.Fatalf("dilated blobs: %d boxes, want 1", len(dets))
	}
	d = New(Config{Width: 320, Dilate: -1}) // no dilation
	y, w, h, s = frame()
	d.Detect(y, w, h, s)
	y, w, h, s = frame([4]int{100, 50, 10, 10}, [4]int{114, 50, 10, 10})
	if dets, _, _ := d.Detect(y, w, h, s); len(dets) != 2 {
		t.Fatalf("undilated blobs: %d boxes, want 2", len(dets))
	}
}

func TestSmallChangesAndNoiseIgnored(t *testing.T) {
	d := New(Config{Width: 80}) // 4x4 blocks
	y, w, h, s := frame()
	d.Detect(y, w, h, s)
	for i := range y {
		y[i] += byte(i % 7) // noise below the threshold
	}
	y[50*s+50] = 255 // one pixel: averaged away by the downscale
	if dets, _, _ := d.Detect(y, w, h, s); len(dets) != 0 {
		t.Fatalf("noise gave %v", dets)
	}
}

func TestBadPlaneAndResize(t *testing.T) {
	d := New(Config{})
	if _, _, err := d.Detect(make([]byte, 10), 320, 180, 320); err == nil {
		t.Fatal("short plane accepted")
	}
	if _, _, err := d.Detect(make([]byte, 100), 10, 10, 5); err == nil {
		t.Fatal("stride < width accepted")
	}
	y, w, h, s := frame()
	d.Detect(y, w, h, s)
	// A size change re-primes instead of comparing different geometries.
	if dets, _, err := d.Detect(make([]byte, 64*64), 64, 64, 64); err != nil || dets != nil {
		t.Fatalf("after resize: %v %v", dets, err)
	}
}

func BenchmarkDetect720p(b *testing.B) {
	d := New(Config{})
	w, h := 1280, 720
	a, c := make([]byte, w*h), make([]byte, w*h)
	for i := range c {
		c[i] = byte(i)
	}
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			d.Detect(a, w, h, w)
		} else {
			d.Detect(c, w, h, w)
		}
	}
}
