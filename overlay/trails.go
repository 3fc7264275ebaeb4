package overlay

// trails keeps the recent positions (bottom-centre of the box, where an object stands) of each track
// drawn, one per frame, and forgets tracks that are no longer drawn. Owned by one pipeline goroutine.
type trails struct {
	n int
	m map[int64][][2]float32
}

func newTrails(n int) *trails { return &trails{n: n, m: map[int64][][2]float32{}} }

// update appends each tracked box's position and returns the trails (valid until the next update).
func (t *trails) update(boxes []Box) map[int64][][2]float32 {
	seen := make(map[int64]bool, len(boxes))
	for _, b := range boxes {
		if b.ID == 0 {
			continue
		}
		seen[b.ID] = true
		pts := append(t.m[b.ID], [2]float32{b.X + b.W/2, b.Y + b.H})
		if len(pts) > t.n {
			pts = append(pts[:0], pts[len(pts)-t.n:]...)
		}
		t.m[b.ID] = pts
	}
	for id := range t.m {
		if !seen[id] {
			delete(t.m, id)
		}
	}
	return t.m
}
