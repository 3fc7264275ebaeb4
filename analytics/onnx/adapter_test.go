package onnx

import (
	"encoding/binary"
	"math"
	"testing"
)

func TestResolveLayout(t *testing.T) {
	cases := []struct {
		want   Layout
		shape  outputShape
		w, h   int
		layout Layout
		nc     int
		ok     bool
	}{
		{LayoutAuto, outputShape{1, 3549, 85}, 416, 416, LayoutYOLOX, 80, true},
		{LayoutAuto, outputShape{1, 84, 8400}, 640, 640, LayoutYOLOv8, 80, true},
		{LayoutYOLOX, outputShape{1, 3549, 6}, 416, 416, LayoutYOLOX, 1, true},
		{LayoutYOLOv8, outputShape{1, 5, 2100}, 320, 320, LayoutYOLOv8, 1, true},
		{LayoutYOLOX, outputShape{1, 84, 8400}, 640, 640, "", 0, false},
		{LayoutYOLOv8, outputShape{1, 3549, 85}, 416, 416, "", 0, false},
		{LayoutAuto, outputShape{1, 100, 85}, 416, 416, "", 0, false},
		{LayoutAuto, outputShape{1, 3549, 5}, 416, 416, "", 0, false},
		{"ssd", outputShape{1, 3549, 85}, 416, 416, "", 0, false},
	}
	for i, c := range cases {
		l, nc, err := resolveLayout(c.want, c.shape, c.w, c.h)
		if (err == nil) != c.ok || l != c.layout || nc != c.nc {
			t.Errorf("case %d: %q %d %v, want %q %d ok=%v", i, l, nc, err, c.layout, c.nc, c.ok)
		}
	}
}

func TestDecodeYOLOX(t *testing.T) {
	// A 64x64 input: 8x8 + 4x4 + 2x2 = 84 anchors, 2 classes.
	s := outputShape{1, 84, 7}
	out := make([]float32, 84*7)
	// Anchor (gx=3, gy=2) of stride 8: row 2*8+3 = 19.
	r := out[19*7:]
	copy(r, []float32{0.5, 0.5, float32(math.Log(2)), 0, 0.9, 0.2, 0.8})
	// Anchor (0,0) of stride 32: row 64+16 = 80, below the threshold.
	copy(out[80*7:], []float32{0, 0, 0, 0, 0.9, 0.1, 0.2})
	c, err := decode(LayoutYOLOX, out, s, 64, 64, 0.5, nil, nil)
	if err != nil || len(c) != 1 {
		t.Fatalf("%v %v", c, err)
	}
	// cx = 3.5*8 = 28, cy = 2.5*8 = 20, w = 16, h = 8; score 0.9*0.8.
	want := candidate{x1: 20, y1: 16, x2: 36, y2: 24, score: 0.9 * 0.8, class: 1}
	if d := c[0]; math.Abs(float64(d.x1-want.x1)) > 1e-4 || d.y1 != want.y1 || math.Abs(float64(d.x2-want.x2)) > 1e-4 || d.y2 != want.y2 || d.class != 1 || math.Abs(float64(d.score-want.score)) > 1e-6 {
		t.Fatalf("decoded %+v, want %+v", d, want)
	}
	if c, _ := decode(LayoutYOLOX, out, s, 64, 64, 0.5, []bool{true, false}, nil); len(c) != 0 {
		t.Fatalf("class filter kept %v", c)
	}
}

func TestDecodeYOLOv8(t *testing.T) {
	// 32x32 input: 16+4+1 = 21 anchors, 2 classes: rows cx, cy, w, h, c0, c1.
	s := outputShape{1, 6, 21}
	out := make([]float32, 6*21)
	set := func(row, i int, v float32) { out[row*21+i] = v }
	set(0, 5, 10)
	set(1, 5, 12)
	set(2, 5, 4)
	set(3, 5, 6)
	set(4, 5, 0.7)
	set(5, 5, 0.1)
	c, err := decode(LayoutYOLOv8, out, s, 32, 32, 0.5, nil, nil)
	if err != nil || len(c) != 1 {
		t.Fatalf("%v %v", c, err)
	}
	if c[0] != (candidate{x1: 8, y1: 9, x2: 12, y2: 15, score: 0.7, class: 0}) {
		t.Fatalf("decoded %+v", c[0])
	}
}

// FuzzDecode feeds arbitrary output shapes and tensors to the adapters: a shape that does not fit is an
// error, never a panic, and every kept candidate is finite.
func FuzzDecode(f *testing.F) {
	f.Add(uint8(0), int64(1), int64(84), int64(7), uint16(64), []byte{0, 0, 0x80, 0x3f})
	f.Add(uint8(1), int64(1), int64(6), int64(21), uint16(32), []byte{0, 0, 0x80, 0x7f})
	f.Add(uint8(2), int64(1), int64(-1), int64(7), uint16(64), []byte{})
	f.Add(uint8(0), int64(2), int64(3549), int64(85), uint16(416), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, kind uint8, b, d1, d2 int64, size uint16, raw []byte) {
		layout := []Layout{LayoutAuto, LayoutYOLOX, LayoutYOLOv8, "bogus"}[kind%4]
		in := int(size%1024) + 1
		s, err := parseShape([]int64{b, d1, d2})
		if err != nil {
			return
		}
		if s.batch*s.d1*s.d2 > 1<<20 {
			return // bounded memory
		}
		l, _, err := resolveLayout(layout, s, in, in)
		if err != nil {
			l = layout // decode must still refuse a misfit on its own
		}
		out := make([]float32, s.d1*s.d2)
		for i := 0; i+4 <= len(raw) && i/4 < len(out); i += 4 {
			out[i/4] = math.Float32frombits(binary.LittleEndian.Uint32(raw[i:]))
		}
		cands, err := decode(l, out, s, in, in, 0.1, nil, nil)
		if err != nil {
			return
		}
		for _, c := range cands {
			if !finite(c.x1, c.y1, c.x2, c.y2, c.score) || c.class < 0 || c.class >= max(s.d1, s.d2) {
				t.Fatalf("bad candidate %+v", c)
			}
		}
		// A truncated tensor is refused.
		if len(out) > 0 {
			if _, err := decode(l, out[:len(out)-1], s, in, in, 0.1, nil, nil); err == nil {
				t.Fatal("short output accepted")
			}
		}
	})
}
