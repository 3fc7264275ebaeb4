package analytics

// Box is an axis-aligned rectangle normalized to the frame: X, Y of the top-left corner, W, H its size,
// all in 0..1 for a box inside the frame.
type Box struct {
	X, Y, W, H float32
}

// Area is W*H (0 for an empty or inverted box).
func (b Box) Area() float32 {
	if b.W <= 0 || b.H <= 0 {
		return 0
	}
	return b.W * b.H
}

// Center returns the centre point.
func (b Box) Center() (x, y float32) { return b.X + b.W/2, b.Y + b.H/2 }

// IoU is the intersection over union of two boxes, 0 when either is empty.
func IoU(a, b Box) float32 {
	x1, y1 := max(a.X, b.X), max(a.Y, b.Y)
	x2, y2 := min(a.X+a.W, b.X+b.W), min(a.Y+a.H, b.Y+b.H)
	if x2 <= x1 || y2 <= y1 {
		return 0
	}
	inter := (x2 - x1) * (y2 - y1)
	union := a.Area() + b.Area() - inter
	if union <= 0 {
		return 0
	}
	return inter / union
}

// Array returns the box as [x, y, w, h] (media.Object's wire form).
func (b Box) Array() [4]float32 { return [4]float32{b.X, b.Y, b.W, b.H} }
