package overlay

import (
	"fmt"
	"math"
	"time"
)

// Box is one object to draw, in coordinates normalized to the frame (0..1, top-left origin), as the
// tracker predicts it for the frame's time.
type Box struct {
	// ID is the track id (0: untracked, no id in the label and no trail).
	ID    int64
	Class int
	Label string
	Score float32
	// X, Y of the top-left corner, W, H the size.
	X, Y, W, H float32
}

// BoxSource gives the boxes to draw on the frame presented at pts (the camera's PTS): the latest tracks
// predicted to that time. It is called on the video path for every frame, so it must answer at once from
// what it holds (never wait for a detector). An adapter over analytics/track's Tracker.Predict implements
// it outside this package.
type BoxSource interface {
	Boxes(pts time.Duration) []Box
}

// BoxFunc adapts a function to BoxSource.
type BoxFunc func(pts time.Duration) []Box

// Boxes calls f.
func (f BoxFunc) Boxes(pts time.Duration) []Box { return f(pts) }

// Zone is a configured zone (closed polygon) or line (open polyline, Closed false) in normalized
// coordinates, drawn with its name at its first point.
type Zone struct {
	Name   string
	Points [][2]float32
	Closed bool
}

// Style sizes what is drawn for a picture height: readable at 360p and 1080p alike.
type Style struct {
	// Scale of the font (a font pixel is Scale x Scale picture pixels).
	Scale int
	// Thickness of box outlines, trails and zone lines, in pixels.
	Thickness int
}

// StyleFor returns the style for a picture height: font scale 1 up to 539 rows, 2 up to 899, 3 at 1080p;
// lines 2 pixels thick, 4 from 960 rows.
func StyleFor(height int) Style {
	s := max(1, (height+180)/360)
	return Style{Scale: s, Thickness: 2 * max(1, height/480)}
}

// Scene is everything drawn on one frame.
type Scene struct {
	Boxes []Box
	// Trails are recent centres of the boxes' bottom edges per track id, oldest first (normalized).
	Trails map[int64][][2]float32
	Zones  []Zone
}

// LabelText is the label drawn above a box: class label, track id and score ("person #7 0.91").
func LabelText(b Box) string {
	s := b.Label
	if s == "" {
		s = fmt.Sprintf("class %d", b.Class)
	}
	if b.ID != 0 {
		s += fmt.Sprintf(" #%d", b.ID)
	}
	if b.Score > 0 {
		s += fmt.Sprintf(" %.2f", b.Score)
	}
	return s
}

// px converts a normalized coordinate to pixels, clamped to -1..2 frames so that a bad value costs
// nothing (NaN counts as 0).
func px(v float32, size int) int {
	f := float64(v)
	if math.IsNaN(f) {
		f = 0
	}
	f = math.Max(-1, math.Min(2, f))
	return int(math.Round(f * float64(size)))
}

func (im Image) point(p [2]float32) Point {
	return Point{px(p[0], im.Width), px(p[1], im.Height)}
}

// BoxRect returns the pixel rectangle of a normalized box in the picture (not clipped).
func (im Image) BoxRect(b Box) Rect {
	return Rect{px(b.X, im.Width), px(b.Y, im.Height), px(b.X+b.W, im.Width), px(b.Y+b.H, im.Height)}
}

// Draw paints the scene with st: zones first, then trails, then each box's outline and its label (a
// filled box in the class colour, above the box where it fits, else inside its top edge).
func (im Image) Draw(sc Scene, st Style) {
	for _, z := range sc.Zones {
		pts := make([]Point, len(z.Points))
		for i, p := range z.Points {
			pts[i] = im.point(p)
		}
		im.Polyline(pts, st.Thickness, ZoneColor, z.Closed)
		if z.Name != "" && len(pts) > 0 {
			im.label(Point{pts[0].X, pts[0].Y}, z.Name, ZoneColor, st)
		}
	}
	for _, b := range sc.Boxes {
		trail := sc.Trails[b.ID]
		if b.ID == 0 || len(trail) < 2 {
			continue
		}
		pts := make([]Point, len(trail))
		for i, p := range trail {
			pts[i] = im.point(p)
		}
		im.Polyline(pts, max(1, st.Thickness/2), ClassColor(b.Class), false)
	}
	for _, b := range sc.Boxes {
		c := ClassColor(b.Class)
		r := im.BoxRect(b)
		im.StrokeRect(r, st.Thickness, c)
		im.label(Point{r.X0, r.Y0}, LabelText(b), c, st)
	}
}

// label paints text on a filled box whose bottom-left corner is at p (or whose top-left is, when there
// is no room above).
func (im Image) label(p Point, text string, c Color, st Style) {
	w, h := TextSize(text, st.Scale)
	pad := st.Scale
	bw, bh := w+2*pad, h+2*pad
	y := p.Y - bh
	if y < 0 {
		y = p.Y
	}
	x := min(p.X, im.Width-bw)
	x = max(x, 0)
	im.FillRect(Rect{x, y, x + bw, y + bh}, c)
	im.Text(Point{x + pad, y + pad}, text, st.Scale, TextColorOn(c))
}
