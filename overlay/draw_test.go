package overlay

import (
	"fmt"
	"testing"

	"sightline/codec"
)

var formats = []codec.PixelFormat{codec.FormatI420, codec.FormatNV12}

// paint is one expected drawing operation for the reference renderer: a predicate over luma pixels, and
// whether it paints chroma (any-coverage rule) or luma only.
type paint struct {
	in     func(x, y int) bool
	c      Color
	chroma bool
}

// reference computes the expected planes from scratch, pixel by pixel: the last paint covering a luma
// pixel gives its Y; the last chroma paint covering any of the 2x2 luma pixels of a chroma sample gives
// its Cb, Cr.
func reference(w, h int, bg Color, paints []paint) (y, cb, cr [][]byte) {
	cw, ch := (w+1)/2, (h+1)/2
	y = make([][]byte, h)
	for r := range y {
		y[r] = make([]byte, w)
		for x := range y[r] {
			y[r][x] = bg.Y
			for _, p := range paints {
				if p.in(x, r) {
					y[r][x] = p.c.Y
				}
			}
		}
	}
	cb, cr = make([][]byte, ch), make([][]byte, ch)
	for r := 0; r < ch; r++ {
		cb[r], cr[r] = make([]byte, cw), make([]byte, cw)
		for x := 0; x < cw; x++ {
			cb[r][x], cr[r][x] = bg.Cb, bg.Cr
			for _, p := range paints {
				if !p.chroma {
					continue
				}
				hit := false
				for dy := 0; dy < 2; dy++ {
					for dx := 0; dx < 2; dx++ {
						lx, ly := 2*x+dx, 2*r+dy
						if lx < w && ly < h && p.in(lx, ly) {
							hit = true
						}
					}
				}
				if hit {
					cb[r][x], cr[r][x] = p.c.Cb, p.c.Cr
				}
			}
		}
	}
	return y, cb, cr
}

// planesOf reads an image back into rows of Y, Cb, Cr, and checks that row padding is untouched (zero).
func planesOf(t *testing.T, im Image) (y, cb, cr [][]byte) {
	t.Helper()
	cw, ch := (im.Width+1)/2, (im.Height+1)/2
	for r := 0; r < im.Height; r++ {
		row := im.Planes[0][r*im.Strides[0]:]
		y = append(y, append([]byte(nil), row[:im.Width]...))
		for _, b := range row[im.Width:im.Strides[0]] {
			if b != 0 {
				t.Fatalf("luma padding of row %d written", r)
			}
		}
	}
	for r := 0; r < ch; r++ {
		if im.Format == codec.FormatNV12 {
			row := im.Planes[1][r*im.Strides[1]:]
			u, v := make([]byte, cw), make([]byte, cw)
			for x := 0; x < cw; x++ {
				u[x], v[x] = row[2*x], row[2*x+1]
			}
			cb, cr = append(cb, u), append(cr, v)
			for _, b := range row[2*cw : im.Strides[1]] {
				if b != 0 {
					t.Fatalf("chroma padding of row %d written", r)
				}
			}
			continue
		}
		cb = append(cb, append([]byte(nil), im.Planes[1][r*im.Strides[1]:][:cw]...))
		cr = append(cr, append([]byte(nil), im.Planes[2][r*im.Strides[2]:][:cw]...))
	}
	return y, cb, cr
}

func comparePlanes(t *testing.T, name string, got, want [][]byte) {
	t.Helper()
	for r := range want {
		for x := range want[r] {
			if got[r][x] != want[r][x] {
				t.Fatalf("%s (%d,%d) = %d, want %d", name, x, r, got[r][x], want[r][x])
			}
		}
	}
}

func checkAgainst(t *testing.T, im Image, bg Color, paints []paint) {
	t.Helper()
	wy, wcb, wcr := reference(im.Width, im.Height, bg, paints)
	gy, gcb, gcr := planesOf(t, im)
	comparePlanes(t, "Y", gy, wy)
	comparePlanes(t, "Cb", gcb, wcb)
	comparePlanes(t, "Cr", gcr, wcr)
}

func inRect(x0, y0, x1, y1 int) func(x, y int) bool {
	return func(x, y int) bool { return x >= x0 && x < x1 && y >= y0 && y < y1 }
}

var grey = Color{128, 128, 128}

func TestFillRectExact(t *testing.T) {
	red, green := ClassColor(0), ClassColor(1)
	for _, f := range formats {
		for _, size := range [][2]int{{64, 48}, {37, 23}} {
			t.Run(fmt.Sprintf("%v_%dx%d", f, size[0], size[1]), func(t *testing.T) {
				im := NewImage(size[0], size[1], f, 7, grey)
				im.FillRect(Rect{3, 5, 20, 18}, red)   // odd edges: chroma spreads to the covering samples
				im.FillRect(Rect{10, 1, 11, 2}, green) // one pixel
				im.FillRect(Rect{-5, -5, 2, 3}, green) // clipped at the top-left
				im.FillRect(Rect{30, 20, 99, 99}, red) // clipped at the bottom-right
				im.FillRect(Rect{8, 8, 8, 30}, green)  // empty
				checkAgainst(t, im, grey, []paint{
					{inRect(3, 5, 20, 18), red, true},
					{inRect(10, 1, 11, 2), green, true},
					{inRect(-5, -5, 2, 3), green, true},
					{inRect(30, 20, 99, 99), red, true},
				})
			})
		}
	}
}

func TestStrokeRectExact(t *testing.T) {
	c := ClassColor(2)
	for _, f := range formats {
		im := NewImage(64, 48, f, 3, grey)
		im.StrokeRect(Rect{5, 4, 41, 31}, 3, c)
		im.StrokeRect(Rect{50, 40, 54, 44}, 2, c) // too small for a hole: filled
		outline := func(x, y int) bool {
			return inRect(5, 4, 41, 31)(x, y) && !inRect(8, 7, 38, 28)(x, y)
		}
		checkAgainst(t, im, grey, []paint{{outline, c, true}, {inRect(50, 40, 54, 44), c, true}})
	}
}

func TestLineExact(t *testing.T) {
	c := ClassColor(3)
	for _, f := range formats {
		im := NewImage(64, 48, f, 0, grey)
		im.Line(Point{4, 10}, Point{40, 10}, 2, c)  // horizontal: rows 9, 10
		im.Line(Point{50, 40}, Point{50, 5}, 3, c)  // vertical, upwards: columns 49..51, rows 4..41
		im.Line(Point{10, 20}, Point{30, 40}, 2, c) // 45 degrees
		diag := func(x, y int) bool {
			for i := 0; i <= 20; i++ {
				if x >= 9+i && x < 11+i && y >= 19+i && y < 21+i {
					return true
				}
			}
			return false
		}
		checkAgainst(t, im, grey, []paint{
			{inRect(3, 9, 41, 11), c, true},
			{inRect(49, 4, 52, 42), c, true},
			{diag, c, true},
		})
	}
}

// Any line: both ends painted, and nothing painted farther from the segment than the pen reaches.
func TestLineStaysNearSegment(t *testing.T) {
	c := Color{200, 90, 90}
	for _, seg := range [][2]Point{{{3, 7}, {60, 19}}, {{60, 2}, {5, 45}}, {{-20, -10}, {30, 70}}} {
		im := NewImage(64, 48, codec.FormatI420, 0, grey)
		im.Line(seg[0], seg[1], 3, c)
		a, b := seg[0], seg[1]
		for y := 0; y < 48; y++ {
			for x := 0; x < 64; x++ {
				if im.Planes[0][y*im.Strides[0]+x] != c.Y {
					continue
				}
				if d := distToSegment(x, y, a, b); d > 2.2 {
					t.Fatalf("segment %v: pixel (%d,%d) painted %.2f px away", seg, x, y, d)
				}
			}
		}
		for _, p := range seg {
			if p.X >= 0 && p.Y >= 0 && p.X < 64 && p.Y < 48 && im.Planes[0][p.Y*im.Strides[0]+p.X] != c.Y {
				t.Fatalf("segment %v: end %v not painted", seg, p)
			}
		}
	}
}

func distToSegment(x, y int, a, b Point) float64 {
	px, py := float64(x), float64(y)
	ax, ay, bx, by := float64(a.X), float64(a.Y), float64(b.X), float64(b.Y)
	dx, dy := bx-ax, by-ay
	t := ((px-ax)*dx + (py-ay)*dy) / (dx*dx + dy*dy)
	t = max(0, min(1, t))
	ex, ey := ax+t*dx-px, ay+t*dy-py
	return sqrt(ex*ex + ey*ey)
}

func sqrt(v float64) float64 {
	r := v
	for i := 0; i < 40; i++ {
		if r == 0 {
			return 0
		}
		r = (r + v/r) / 2
	}
	return r
}

// Text: luma from the glyph art read straight from its strings by inverse mapping; chroma untouched.
func TestTextExact(t *testing.T) {
	for _, f := range formats {
		for _, scale := range []int{1, 2, 3} {
			im := NewImage(128, 40, f, 5, grey)
			const text = "Az09#%.?~" // lower case drawn as upper; ~ is not in the font
			ox, oy := 3, 5
			w := im.Text(Point{ox, oy}, text, scale, White)
			if ww, _ := TextSize(text, scale); w != ww || w != (len(text)*6-1)*scale {
				t.Fatalf("width %d, TextSize %d", w, ww)
			}
			runes := []rune(text)
			ink := func(x, y int) bool {
				if x < ox || y < oy {
					return false
				}
				cell, cx := (x-ox)/(6*scale), (x-ox)%(6*scale)/scale
				gy := (y - oy) / scale
				if cell >= len(runes) || cx >= 5 || gy >= 7 {
					return false
				}
				r := runes[cell]
				if r >= 'a' && r <= 'z' {
					r -= 32
				}
				art, ok := glyphArt[r]
				if !ok {
					art = unknownGlyph
				}
				return art[gy][cx] == '#'
			}
			checkAgainst(t, im, grey, []paint{{ink, White, false}})
		}
	}
}

func TestStyleFor(t *testing.T) {
	for _, c := range []struct{ h, scale, thick int }{{360, 1, 2}, {480, 1, 2}, {720, 2, 2}, {1080, 3, 4}, {2160, 6, 8}, {120, 1, 2}} {
		if st := StyleFor(c.h); st.Scale != c.scale || st.Thickness != c.thick {
			t.Errorf("StyleFor(%d) = %+v, want scale %d thickness %d", c.h, st, c.scale, c.thick)
		}
	}
}

func TestImageCheck(t *testing.T) {
	im := NewImage(64, 48, codec.FormatI420, 0, grey)
	if err := im.check(); err != nil {
		t.Fatal(err)
	}
	bad := im
	bad.Planes[2] = bad.Planes[2][:10]
	if err := bad.check(); err == nil {
		t.Fatal("short plane accepted")
	}
	bad = im
	bad.Format = codec.FormatUnknown
	if err := bad.check(); err == nil {
		t.Fatal("unknown format accepted")
	}
}
