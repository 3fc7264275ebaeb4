package codec

import (
	"bytes"
	"image/jpeg"
	"testing"
)

func TestEncodeJPEG(t *testing.T) {
	f := syntheticFrame(t, 1280, 720)
	defer f.Release()
	var buf bytes.Buffer
	if err := EncodeJPEG(&buf, f, 85); err != nil {
		t.Fatal(err)
	}
	img, err := jpeg.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 720 {
		t.Fatalf("bounds %v", b)
	}
}

func TestProbe(t *testing.T) {
	c := Probe()
	t.Logf("%+v", c)
	if !c.Decoders["h264"] || !c.Decoders["hevc"] || !c.Encoders["libx264"] {
		t.Fatalf("software codecs missing: %+v", c)
	}
	if last := c.Accels[len(c.Accels)-1]; last.Accel != AccelSoftware || !last.Available {
		t.Fatal("software not listed")
	}
}

func BenchmarkJPEG720p(b *testing.B) {
	f := syntheticFrame(b, 1280, 720)
	defer f.Release()
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		if err := EncodeJPEG(&buf, f, 80); err != nil {
			b.Fatal(err)
		}
	}
}
