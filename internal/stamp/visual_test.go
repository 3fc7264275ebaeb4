package stamp

import (
	"errors"
	"math/rand"
	"testing"
)

func grey(w, h, stride int) []byte {
	y := make([]byte, stride*h)
	for i := range y {
		y[i] = 128
	}
	return y
}

func TestVisualRoundTrip(t *testing.T) {
	const w, h, stride = 1280, 720, 1344
	v := BottomLeft(h)
	rng := rand.New(rand.NewSource(1))
	for _, val := range []uint32{0, 1, 299, 0x5a5a5a, VisualMax} {
		y := grey(w, h, stride)
		if err := v.Draw(y, stride, w, h, val); err != nil {
			t.Fatal(err)
		}
		// Codec-like noise: ±20 on every pixel must not change the reading.
		for i := range y {
			y[i] = byte(int(y[i]) + rng.Intn(41) - 20)
		}
		got, err := v.Read(y, stride, w, h)
		if err != nil || got != val {
			t.Errorf("value %d: read %d, %v", val, got, err)
		}
	}
}

func TestVisualRejects(t *testing.T) {
	const w, h = 640, 360
	v := BottomLeft(h)
	if _, err := v.Read(grey(w, h, w), w, w, h); !errors.Is(err, ErrNoVisual) {
		t.Errorf("blank picture: %v", err)
	}
	y := grey(w, h, w)
	if err := v.Draw(y, w, w, h, 1234); err != nil {
		t.Fatal(err)
	}
	// A box line drawn across one data block flips it: the CRC must refuse it.
	for r := v.Y; r < v.Y+v.Block; r++ {
		for x := v.X + 5*v.Block; x < v.X+6*v.Block; x++ {
			y[r*w+x] = 255 - y[r*w+x]
		}
	}
	if got, err := v.Read(y, w, w, h); !errors.Is(err, ErrNoVisual) {
		t.Errorf("damaged stamp read as %d, %v", got, err)
	}
	if err := v.Draw(y, w, w, h, VisualMax+1); err == nil {
		t.Error("value over 24 bits accepted")
	}
	if err := v.Draw(make([]byte, 100), 100, 100, 1, 1); err == nil {
		t.Error("picture too small accepted")
	}
	if _, err := (Visual{X: 0, Y: 0, Block: 16}).Read(make([]byte, 10), w, w, h); err == nil {
		t.Error("short plane accepted")
	}
}

// FuzzVisualRead: any plane content reads as a value or ErrNoVisual, never a panic.
func FuzzVisualRead(f *testing.F) {
	const w, h = 640, 32
	y := grey(w, h, w)
	v := Visual{X: 0, Y: 8, Block: 16}
	_ = v.Draw(y, w, w, h, 42)
	f.Add(y[8*w : 8*w+v.Width()])
	f.Fuzz(func(t *testing.T, row []byte) {
		plane := grey(w, h, w)
		for r := v.Y; r < v.Y+v.Block; r++ {
			copy(plane[r*w:r*w+v.Width()], row)
		}
		if _, err := v.Read(plane, w, w, h); err != nil && !errors.Is(err, ErrNoVisual) {
			t.Fatal(err)
		}
	})
}
