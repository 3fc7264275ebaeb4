// Package overlay owns drawing detections (boxes, labels, track ids, trails, zones) straight into 8-bit
// 4:2:0 Y'CbCr frames, and the Annotator that turns a camera's raw stream into its "annotated" stream
// (decode, draw the tracks predicted to each frame's time, encode) while someone watches. It never
// converts frames to RGB, never waits for a detector, and never imports analytics.
package overlay

import (
	"fmt"

	"sightline/codec"
)

// Color is a Y'CbCr colour (BT.601, limited range: Y 16..235, Cb/Cr 16..240).
type Color struct{ Y, Cb, Cr uint8 }

// Fixed colours. The class palette is Sasha Trubetskoy's "20 distinct colours" (the first ten), converted
// from sRGB with the BT.601 limited-range matrix and rounded.
var (
	White = Color{235, 128, 128}
	Black = Color{16, 128, 128}
	// ZoneColor draws configured zones and lines.
	ZoneColor = Color{197, 36, 155} // yellow rgb(255,225,25)
)

var palette = [...]Color{
	{95, 120, 214},  // red rgb(230,25,75)
	{129, 100, 83},  // green rgb(60,180,75)
	{101, 178, 66},  // blue rgb(0,130,200)
	{149, 75, 184},  // orange rgb(245,130,48)
	{86, 177, 168},  // purple rgb(145,30,180)
	{178, 153, 53},  // cyan rgb(70,240,240)
	{125, 179, 199}, // magenta rgb(240,50,230)
	{199, 52, 126},  // lime rgb(210,245,60)
	{93, 147, 72},   // teal rgb(0,128,128)
	{197, 36, 155},  // yellow rgb(255,225,25)
}

// ClassColor returns the fixed colour of a class index (the palette repeats every ten classes).
func ClassColor(class int) Color {
	if class < 0 {
		class = -class
	}
	return palette[class%len(palette)]
}

// TextColorOn returns white or black, whichever reads better on bg.
func TextColorOn(bg Color) Color {
	if bg.Y > 150 {
		return Black
	}
	return White
}

// Image is a writable view of one 8-bit 4:2:0 picture: I420 (Y, Cb, Cr planes) or NV12 (Y plane and
// interleaved CbCr). Drawing clips to the picture and never touches row padding.
//
// Chroma rule: a shape (rectangle, line) paints a chroma sample when it paints any of the 2x2 luma pixels
// the sample covers, so thin lines keep their colour. Text paints luma only: glyph strokes are finer than
// a chroma sample at small scales, and the label box under them keeps its class colour.
type Image struct {
	Width, Height int
	Format        codec.PixelFormat
	Planes        [3][]byte
	Strides       [3]int
}

// FrameImage returns a view of a decoded frame's planes (valid until the frame is released). Call
// f.MakeWritable first when the decoder may still reference the picture.
func FrameImage(f *codec.Frame) (Image, error) {
	im := Image{Width: f.Width, Height: f.Height, Format: f.Format, Planes: f.Planes, Strides: f.Strides}
	return im, im.check()
}

// NewImage allocates a picture in Go memory with the given row padding, filled with c.
func NewImage(width, height int, format codec.PixelFormat, pad int, c Color) Image {
	cw, ch := (width+1)/2, (height+1)/2
	im := Image{Width: width, Height: height, Format: format}
	im.Strides[0] = width + pad
	im.Planes[0] = make([]byte, im.Strides[0]*height)
	if format == codec.FormatNV12 {
		im.Strides[1] = 2*cw + pad
		im.Planes[1] = make([]byte, im.Strides[1]*ch)
	} else {
		im.Strides[1], im.Strides[2] = cw+pad, cw+pad
		im.Planes[1] = make([]byte, im.Strides[1]*ch)
		im.Planes[2] = make([]byte, im.Strides[2]*ch)
	}
	im.FillRect(Rect{0, 0, width, height}, c)
	return im
}

func (im Image) check() error {
	cw, ch := (im.Width+1)/2, (im.Height+1)/2
	need := func(i, rowBytes, rows int) error {
		if im.Strides[i] < rowBytes || len(im.Planes[i]) < im.Strides[i]*(rows-1)+rowBytes {
			return fmt.Errorf("overlay: plane %d of a %dx%d %v picture is too small", i, im.Width, im.Height, im.Format)
		}
		return nil
	}
	if im.Width <= 0 || im.Height <= 0 {
		return fmt.Errorf("overlay: empty picture %dx%d", im.Width, im.Height)
	}
	switch im.Format {
	case codec.FormatI420:
		for i, w := range []int{im.Width, cw, cw} {
			rows := ch
			if i == 0 {
				rows = im.Height
			}
			if err := need(i, w, rows); err != nil {
				return err
			}
		}
	case codec.FormatNV12:
		if err := need(0, im.Width, im.Height); err != nil {
			return err
		}
		return need(1, 2*cw, ch)
	default:
		return fmt.Errorf("overlay: cannot draw into %v pictures", im.Format)
	}
	return nil
}

// Rect is a pixel rectangle, [X0, X1) x [Y0, Y1).
type Rect struct{ X0, Y0, X1, Y1 int }

func (r Rect) clip(w, h int) Rect {
	r.X0, r.Y0 = max(r.X0, 0), max(r.Y0, 0)
	r.X1, r.Y1 = min(r.X1, w), min(r.Y1, h)
	return r
}

func (r Rect) empty() bool { return r.X0 >= r.X1 || r.Y0 >= r.Y1 }

// Point is a pixel position.
type Point struct{ X, Y int }

// FillRect paints r (clipped) with c.
func (im Image) FillRect(r Rect, c Color) {
	im.fillLuma(r, c.Y)
	im.fillChroma(r, c)
}

func (im Image) fillLuma(r Rect, y uint8) {
	r = r.clip(im.Width, im.Height)
	if r.empty() {
		return
	}
	for row := r.Y0; row < r.Y1; row++ {
		fill(im.Planes[0][row*im.Strides[0]+r.X0:row*im.Strides[0]+r.X1], y)
	}
}

// fillChroma paints every chroma sample that covers a luma pixel of r.
func (im Image) fillChroma(r Rect, c Color) {
	r = r.clip(im.Width, im.Height)
	if r.empty() {
		return
	}
	cx0, cy0, cx1, cy1 := r.X0/2, r.Y0/2, (r.X1+1)/2, (r.Y1+1)/2
	for row := cy0; row < cy1; row++ {
		if im.Format == codec.FormatNV12 {
			line := im.Planes[1][row*im.Strides[1]+2*cx0 : row*im.Strides[1]+2*cx1]
			for i := 0; i < len(line); i += 2 {
				line[i], line[i+1] = c.Cb, c.Cr
			}
			continue
		}
		fill(im.Planes[1][row*im.Strides[1]+cx0:row*im.Strides[1]+cx1], c.Cb)
		fill(im.Planes[2][row*im.Strides[2]+cx0:row*im.Strides[2]+cx1], c.Cr)
	}
}

func fill(b []byte, v byte) {
	if len(b) == 0 {
		return
	}
	b[0] = v
	for n := 1; n < len(b); n *= 2 {
		copy(b[n:], b[:n])
	}
}

// StrokeRect paints a frame of thickness t inside r (the outline's outer edge is r).
func (im Image) StrokeRect(r Rect, t int, c Color) {
	if t <= 0 || r.empty() {
		return
	}
	if 2*t >= r.X1-r.X0 || 2*t >= r.Y1-r.Y0 {
		im.FillRect(r, c)
		return
	}
	im.FillRect(Rect{r.X0, r.Y0, r.X1, r.Y0 + t}, c)
	im.FillRect(Rect{r.X0, r.Y1 - t, r.X1, r.Y1}, c)
	im.FillRect(Rect{r.X0, r.Y0 + t, r.X0 + t, r.Y1 - t}, c)
	im.FillRect(Rect{r.X1 - t, r.Y0 + t, r.X1, r.Y1 - t}, c)
}

// Line paints a segment t pixels thick: a t x t square (top-left at the point minus t/2) at every point
// of the Bresenham line from a to b. The cost grows with the segment's length, inside the picture or not:
// callers keep points near the picture (Scene clamps normalized points to -1..2).
func (im Image) Line(a, b Point, t int, c Color) {
	if t <= 0 {
		return
	}
	dx, dy := abs(b.X-a.X), -abs(b.Y-a.Y)
	sx, sy := sign(b.X-a.X), sign(b.Y-a.Y)
	err := dx + dy
	x, y := a.X, a.Y
	for {
		im.FillRect(Rect{x - t/2, y - t/2, x - t/2 + t, y - t/2 + t}, c)
		if x == b.X && y == b.Y {
			return
		}
		e2 := 2 * err
		if e2 >= dy {
			err += dy
			x += sx
		}
		if e2 <= dx {
			err += dx
			y += sy
		}
	}
}

// Polyline paints the segments joining pts in order, and the closing one when closed.
func (im Image) Polyline(pts []Point, t int, c Color, closed bool) {
	for i := 1; i < len(pts); i++ {
		im.Line(pts[i-1], pts[i], t, c)
	}
	if closed && len(pts) > 2 {
		im.Line(pts[len(pts)-1], pts[0], t, c)
	}
}

// TextSize returns the size in pixels of s drawn at scale (cells of 6x8 pixels times scale, without the
// trailing spacing column).
func TextSize(s string, scale int) (w, h int) {
	n := 0
	for range s {
		n++
	}
	if n == 0 {
		return 0, glyphH * scale
	}
	return (n*cellW - 1) * scale, glyphH * scale
}

// Text paints s (luma only) with its top-left corner at p, each font pixel a scale x scale square, and
// returns the width drawn.
func (im Image) Text(p Point, s string, scale int, c Color) int {
	if scale <= 0 {
		return 0
	}
	x := p.X
	for _, r := range s {
		g := glyph(r)
		for gy := 0; gy < glyphH; gy++ {
			bits := g[gy]
			for gx := 0; gx < glyphW; gx++ {
				if bits&(1<<(glyphW-1-gx)) != 0 {
					px, py := x+gx*scale, p.Y+gy*scale
					im.fillLuma(Rect{px, py, px + scale, py + scale}, c.Y)
				}
			}
		}
		x += cellW * scale
	}
	w, _ := TextSize(s, scale)
	return w
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}
