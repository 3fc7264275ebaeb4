package overlay

import (
	"bytes"
	"flag"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"sightline/codec"
)

var update = flag.Bool("update", false, "rewrite testdata/*.png golden pictures")

// testScene is a street-like scene: two people with trails, a car, a zone and a counting line.
func testScene() Scene {
	return Scene{
		Boxes: []Box{
			{ID: 7, Class: 0, Label: "person", Score: 0.91, X: 0.10, Y: 0.30, W: 0.08, H: 0.40},
			{ID: 12, Class: 0, Label: "person", Score: 0.64, X: 0.45, Y: 0.05, W: 0.07, H: 0.35},
			{ID: 3, Class: 2, Label: "car", Score: 0.88, X: 0.60, Y: 0.50, W: 0.30, H: 0.25},
			{Class: 7, Label: "truck", Score: 0.42, X: 0.93, Y: 0.80, W: 0.20, H: 0.30}, // untracked, off the edge
		},
		Trails: map[int64][][2]float32{
			7: {{0.02, 0.75}, {0.06, 0.73}, {0.10, 0.72}, {0.14, 0.70}},
			3: {{0.40, 0.80}, {0.55, 0.77}, {0.75, 0.75}},
		},
		Zones: []Zone{
			{Name: "walkway", Points: [][2]float32{{0.05, 0.85}, {0.50, 0.85}, {0.55, 0.98}, {0.02, 0.98}}, Closed: true},
			{Name: "line A", Points: [][2]float32{{0.30, 0.10}, {0.35, 0.60}}},
		},
	}
}

// planesPNG lays the three planes out as one grey picture (Y on top, Cb and Cr side by side below): a
// lossless, viewable golden.
func planesPNG(t *testing.T, im Image) *image.Gray {
	y, cb, cr := planesOf(t, im)
	cw, ch := len(cb[0]), len(cb)
	g := image.NewGray(image.Rect(0, 0, im.Width, im.Height+ch))
	for r := range y {
		copy(g.Pix[r*g.Stride:], y[r])
	}
	for r := 0; r < ch; r++ {
		copy(g.Pix[(im.Height+r)*g.Stride:], cb[r])
		copy(g.Pix[(im.Height+r)*g.Stride+cw:], cr[r])
	}
	return g
}

// toRGBA converts with the BT.601 limited-range matrix, for looking at a picture (never on the video path).
func toRGBA(im Image) *image.RGBA {
	out := image.NewRGBA(image.Rect(0, 0, im.Width, im.Height))
	for y := 0; y < im.Height; y++ {
		for x := 0; x < im.Width; x++ {
			var cb, cr byte
			if im.Format == codec.FormatNV12 {
				cb, cr = im.Planes[1][y/2*im.Strides[1]+x/2*2], im.Planes[1][y/2*im.Strides[1]+x/2*2+1]
			} else {
				cb, cr = im.Planes[1][y/2*im.Strides[1]+x/2], im.Planes[2][y/2*im.Strides[2]+x/2]
			}
			// color.YCbCrToRGB is full range; expand limited range first.
			yy := clamp8((int(im.Planes[0][y*im.Strides[0]+x]) - 16) * 255 / 219)
			u := clamp8((int(cb)-128)*255/224 + 128)
			v := clamp8((int(cr)-128)*255/224 + 128)
			r, g, b := color.YCbCrToRGB(yy, u, v)
			out.SetRGBA(x, y, color.RGBA{r, g, b, 255})
		}
	}
	return out
}

func clamp8(v int) uint8 { return uint8(max(0, min(255, v))) }

func writePNG(t *testing.T, path string, img image.Image) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The scene at 360p and 1080p, in I420 and NV12, against golden pictures under testdata (generated once
// with -update and reviewed by eye; OVERLAY_PNG_DIR=dir also writes colour PNGs for viewing). NV12 must
// match I420 byte for byte.
func TestSceneGolden(t *testing.T) {
	bg := Color{90, 128, 128}
	for _, size := range [][2]int{{640, 360}, {1920, 1080}} {
		name := filepath.Join("testdata", "scene_"+itoa(size[1])+"p.png")
		var want *image.Gray
		for _, f := range formats {
			im := NewImage(size[0], size[1], f, 16, bg)
			im.Draw(testScene(), StyleFor(size[1]))
			got := planesPNG(t, im)
			if dir := os.Getenv("OVERLAY_PNG_DIR"); dir != "" {
				writePNG(t, filepath.Join(dir, "scene_"+itoa(size[1])+"p_"+f.String()+".png"), toRGBA(im))
			}
			if *update && f == codec.FormatI420 {
				writePNG(t, name, got)
			}
			if want == nil {
				fh, err := os.Open(name)
				if err != nil {
					t.Fatalf("%v (run go test -run TestSceneGolden -update once, then review the picture)", err)
				}
				img, err := png.Decode(fh)
				fh.Close()
				if err != nil {
					t.Fatal(err)
				}
				g, ok := img.(*image.Gray)
				if !ok {
					t.Fatalf("%s: not a grey PNG", name)
				}
				want = g
			}
			if !bytes.Equal(got.Pix, want.Pix) || got.Rect != want.Rect {
				t.Fatalf("%s %v: drawn planes differ from the golden picture", name, f)
			}
		}
	}
}

func itoa(v int) string {
	b := []byte{}
	for v > 0 {
		b = append([]byte{byte('0' + v%10)}, b...)
		v /= 10
	}
	return string(b)
}
