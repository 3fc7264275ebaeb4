package overlay

import (
	"math"
	"testing"

	"sightline/codec"
)

// Whatever a tracker or a config hands over (NaN, huge, negative boxes and zones, any label), drawing
// stays inside the picture and never panics.
func FuzzDraw(f *testing.F) {
	f.Add(float32(0.1), float32(0.2), float32(0.3), float32(0.4), "person", int64(7), 3, true)
	f.Add(float32(math.NaN()), float32(-5), float32(1e30), float32(-1e30), "\xff\x00ü", int64(-1), -9, false)
	f.Fuzz(func(t *testing.T, x, y, w, h float32, label string, id int64, class int, nv12 bool) {
		format := codec.FormatI420
		if nv12 {
			format = codec.FormatNV12
		}
		im := NewImage(66, 38, format, 2, grey)
		sc := Scene{
			Boxes:  []Box{{ID: id, Class: class, Label: label, Score: w, X: x, Y: y, W: w, H: h}},
			Trails: map[int64][][2]float32{id: {{x, y}, {w, h}, {h, x}}},
			Zones:  []Zone{{Name: label, Points: [][2]float32{{x, y}, {x + w, y}, {x, y + h}}, Closed: true}},
		}
		im.Draw(sc, StyleFor(38))
		im.Draw(sc, Style{Scale: 3, Thickness: 5})
		planesOf(t, im) // padding untouched
	})
}
