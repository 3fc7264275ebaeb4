// Package motion owns the model-free motion detector: a downscaled grey frame difference, thresholded,
// dilated and split into connected components whose boxes are detections of class "motion". It works on
// a luma (Y) plane so decoded frames feed it without conversion; it never allocates per frame once sized.
package motion

import (
	"fmt"

	"sightline/analytics"
)

// Class is the class index of motion detections (outside any model's class list); Label their label.
const (
	Class = -1
	Label = "motion"
)

// Config tunes the detector. Zero values take the defaults noted.
type Config struct {
	// Width is the width frames are downscaled to before differencing (box average); default 160.
	Width int
	// Threshold is the grey-level difference (0..255) above which a downscaled pixel changed; default 25.
	Threshold int
	// Dilate is the radius in downscaled pixels that changed pixels grow by, joining nearby blobs;
	// default 1.
	Dilate int
	// MinArea drops boxes smaller than this fraction of the frame; default 0.0005.
	MinArea float32
}

// Detector compares each frame with the previous one. It is not safe for concurrent use: one per camera.
type Detector struct {
	cfg          Config
	srcW, srcH   int
	w, h, factor int
	prev, cur    []uint8
	mask, grown  []bool
	label        []int32
	stack        []int32
	primed       bool
}

// New returns a detector; the first frame (and the first after a size change) only primes it.
func New(cfg Config) *Detector {
	if cfg.Width <= 0 {
		cfg.Width = 160
	}
	if cfg.Threshold <= 0 {
		cfg.Threshold = 25
	}
	if cfg.Dilate < 0 {
		cfg.Dilate = 0
	} else if cfg.Dilate == 0 {
		cfg.Dilate = 1
	}
	if cfg.MinArea <= 0 {
		cfg.MinArea = 0.0005
	}
	return &Detector{cfg: cfg}
}

// Detect compares the luma plane y (width x height, rows stride bytes apart) with the previous frame and
// returns the moving regions, normalized to the frame, and the fraction of the frame that changed.
func (d *Detector) Detect(y []byte, width, height, stride int) ([]analytics.Detection, float32, error) {
	if width <= 0 || height <= 0 || stride < width {
		return nil, 0, fmt.Errorf("motion: bad plane %dx%d stride %d", width, height, stride)
	}
	if len(y) < (height-1)*stride+width {
		return nil, 0, fmt.Errorf("motion: plane has %d bytes, %dx%d stride %d needs %d", len(y), width, height, stride, (height-1)*stride+width)
	}
	if width != d.srcW || height != d.srcH {
		d.resize(width, height)
	}
	d.downscale(y, stride)
	if !d.primed {
		d.primed = true
		d.prev, d.cur = d.cur, d.prev
		return nil, 0, nil
	}
	changed := 0
	for i := range d.cur {
		diff := int(d.cur[i]) - int(d.prev[i])
		d.mask[i] = diff > d.cfg.Threshold || -diff > d.cfg.Threshold
		if d.mask[i] {
			changed++
		}
	}
	d.prev, d.cur = d.cur, d.prev
	frac := float32(changed) / float32(len(d.mask))
	if changed == 0 {
		return nil, 0, nil
	}
	d.dilate()
	return d.components(), frac, nil
}

func (d *Detector) resize(width, height int) {
	d.srcW, d.srcH = width, height
	d.factor = max(1, (width+d.cfg.Width-1)/d.cfg.Width)
	d.w, d.h = max(1, width/d.factor), max(1, height/d.factor)
	n := d.w * d.h
	d.prev, d.cur = make([]uint8, n), make([]uint8, n)
	d.mask, d.grown = make([]bool, n), make([]bool, n)
	d.label = make([]int32, n)
	d.primed = false
}

// downscale box-averages factor x factor blocks of y into d.cur.
func (d *Detector) downscale(y []byte, stride int) {
	f := d.factor
	area := f * f
	for by := 0; by < d.h; by++ {
		for bx := 0; bx < d.w; bx++ {
			sum := 0
			for yy := by * f; yy < by*f+f; yy++ {
				row := y[yy*stride+bx*f : yy*stride+bx*f+f]
				for _, v := range row {
					sum += int(v)
				}
			}
			d.cur[by*d.w+bx] = uint8(sum / area)
		}
	}
}

// dilate grows d.mask by a square of radius Dilate into d.grown (separable: rows, then columns).
func (d *Detector) dilate() {
	r := d.cfg.Dilate
	w, h := d.w, d.h
	tmp := d.label // scratch: 1 where the row pass set
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			v := int32(0)
			for k := max(0, x-r); k <= min(w-1, x+r); k++ {
				if d.mask[y*w+k] {
					v = 1
					break
				}
			}
			tmp[y*w+x] = v
		}
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			g := false
			for k := max(0, y-r); k <= min(h-1, y+r); k++ {
				if tmp[k*w+x] != 0 {
					g = true
					break
				}
			}
			d.grown[y*w+x] = g
		}
	}
}

// components labels 4-connected regions of d.grown and returns their boxes.
func (d *Detector) components() []analytics.Detection {
	w, h := d.w, d.h
	for i := range d.label {
		d.label[i] = 0
	}
	var dets []analytics.Detection
	next := int32(0)
	for start := range d.grown {
		if !d.grown[start] || d.label[start] != 0 {
			continue
		}
		next++
		d.label[start] = next
		d.stack = append(d.stack[:0], int32(start))
		x0, y0, x1, y1 := w, h, -1, -1
		for len(d.stack) > 0 {
			p := int(d.stack[len(d.stack)-1])
			d.stack = d.stack[:len(d.stack)-1]
			px, py := p%w, p/w
			x0, y0, x1, y1 = min(x0, px), min(y0, py), max(x1, px), max(y1, py)
			for _, q := range [4][2]int{{px - 1, py}, {px + 1, py}, {px, py - 1}, {px, py + 1}} {
				if q[0] < 0 || q[0] >= w || q[1] < 0 || q[1] >= h {
					continue
				}
				qi := q[1]*w + q[0]
				if d.grown[qi] && d.label[qi] == 0 {
					d.label[qi] = next
					d.stack = append(d.stack, int32(qi))
				}
			}
		}
		b := analytics.Box{X: float32(x0) / float32(w), Y: float32(y0) / float32(h),
			W: float32(x1-x0+1) / float32(w), H: float32(y1-y0+1) / float32(h)}
		if b.Area() < d.cfg.MinArea {
			continue
		}
		dets = append(dets, analytics.Detection{Class: Class, Label: Label, Score: 1, Box: b})
	}
	return dets
}
