package gateway

import (
	"log/slog"
	"time"

	"sightline/analytics/rules"
	"sightline/codec"
	"sightline/overlay"
)

// annotatorFor builds the overlay.Annotator that publishes cam's annotated stream: boxes come from the
// camera's current pipeline (none without analytics), zones and lines from its rules.
func (r *registry) annotatorFor(cam *camera, cc CameraConfig) *overlay.Annotator {
	log := r.log
	if log == nil {
		log = slog.Default()
	}
	src := &cameraBoxes{r: r, cam: cam}
	return overlay.NewAnnotator(overlay.Config{Camera: cc.ID, Zones: zonesOf(cc.Rules), Warm: cc.AnnotatedWarm, Frames: src},
		cam.raw, src, log)
}

// cameraBoxes is the overlay's BoxSource and FrameSource for one camera: the tracks of the camera's
// current pipeline predicted to the frame's PTS, and the frames that pipeline decodes (one decoder per
// camera for analytics and the annotated track). It reads the pipeline under the registry's lock, since
// replacing a camera swaps it.
type cameraBoxes struct {
	r   *registry
	cam *camera
}

func (b *cameraBoxes) SubscribeFrames(fn func(*codec.Frame)) (func(), <-chan struct{}, bool) {
	b.r.mu.RLock()
	p := b.cam.pipe
	b.r.mu.RUnlock()
	if p == nil {
		return func() {}, nil, false
	}
	return p.SubscribeFrames(fn)
}

func (b *cameraBoxes) Boxes(pts time.Duration) []overlay.Box {
	b.r.mu.RLock()
	p := b.cam.pipe
	b.r.mu.RUnlock()
	if p == nil {
		return nil
	}
	tracks := p.Predict(pts)
	out := make([]overlay.Box, 0, len(tracks))
	for _, t := range tracks {
		out = append(out, overlay.Box{ID: t.ID, Class: t.Class, Label: t.Label, Score: t.Score,
			X: t.Box.X, Y: t.Box.Y, W: t.Box.W, H: t.Box.H})
	}
	return out
}

// zonesOf turns a camera's rules into what the overlay draws: polygons (zone, dwell, count) closed,
// lines open, each named by its rule id.
func zonesOf(rs []rules.Config) []overlay.Zone {
	var out []overlay.Zone
	add := func(id string, pts [][2]float64, closed bool) {
		z := overlay.Zone{Name: id, Closed: closed, Points: make([][2]float32, len(pts))}
		for i, p := range pts {
			z.Points[i] = [2]float32{float32(p[0]), float32(p[1])}
		}
		out = append(out, z)
	}
	for _, rc := range rs {
		if len(rc.Polygon) > 0 {
			add(rc.ID, rc.Polygon, true)
		}
		if len(rc.Line) > 0 {
			add(rc.ID, rc.Line, false)
		}
	}
	return out
}
