package onnx

import (
	"fmt"
	"math"
)

// Layout names a model output layout (the adapter that decodes it).
type Layout string

// Output layouts the detector decodes.
const (
	// LayoutAuto picks YOLOX or YOLOv8 from the output shape.
	LayoutAuto Layout = ""
	// LayoutYOLOX is [B, anchors, 5+nc]: grid-relative tx, ty, log-size tw, th per stride 8/16/32 cell,
	// then objectness and class probabilities (already sigmoided); score = obj * cls.
	LayoutYOLOX Layout = "yolox"
	// LayoutYOLOv8 is [B, 4+nc, anchors] (YOLOv8 and YOLO11): cx, cy, w, h in input pixels, then class
	// probabilities; score = cls.
	LayoutYOLOv8 Layout = "yolov8"
)

// strides are the YOLO feature-map strides, in the order their anchors appear in the output.
func strides() [3]int { return [3]int{8, 16, 32} }

// anchorCount is the number of grid cells of a w x h input over strides 8, 16 and 32.
func anchorCount(w, h int) int {
	n := 0
	for _, s := range strides() {
		n += (w / s) * (h / s)
	}
	return n
}

// candidate is a decoded box in input-tensor pixels, before mapping to the frame and NMS.
type candidate struct {
	x1, y1, x2, y2 float32
	score          float32
	class          int
}

// outputShape is the shape of one inference's output: batch, then two dimensions.
type outputShape struct {
	batch, d1, d2 int
}

func parseShape(dims []int64) (outputShape, error) {
	if len(dims) != 3 {
		return outputShape{}, fmt.Errorf("output has %d dimensions %v, want 3 [batch, a, b]", len(dims), dims)
	}
	for _, d := range dims {
		if d <= 0 || d > 1<<24 {
			return outputShape{}, fmt.Errorf("output dimension %d in %v out of range", d, dims)
		}
	}
	return outputShape{batch: int(dims[0]), d1: int(dims[1]), d2: int(dims[2])}, nil
}

// resolveLayout checks an output shape against the input size and returns the layout and class count.
// With LayoutAuto, a shape whose middle dimension is the anchor count is YOLOX, one whose last is YOLOv8.
func resolveLayout(want Layout, s outputShape, inW, inH int) (Layout, int, error) {
	anchors := anchorCount(inW, inH)
	yolox := s.d1 == anchors && s.d2 > 5
	yolov8 := s.d2 == anchors && s.d1 > 4
	switch {
	case want == LayoutYOLOX && yolox, want == LayoutAuto && yolox:
		return LayoutYOLOX, s.d2 - 5, nil
	case want == LayoutYOLOv8 && yolov8, want == LayoutAuto && yolov8:
		return LayoutYOLOv8, s.d1 - 4, nil
	case want == LayoutYOLOX:
		return "", 0, fmt.Errorf("output [%d %d %d] is not YOLOX for a %dx%d input: want [batch %d 5+classes]", s.batch, s.d1, s.d2, inW, inH, anchors)
	case want == LayoutYOLOv8:
		return "", 0, fmt.Errorf("output [%d %d %d] is not YOLOv8 for a %dx%d input: want [batch 4+classes %d]", s.batch, s.d1, s.d2, inW, inH, anchors)
	case want == LayoutAuto:
		return "", 0, fmt.Errorf("output [%d %d %d] matches no known layout for a %dx%d input (%d anchors): set the layout", s.batch, s.d1, s.d2, inW, inH, anchors)
	default:
		return "", 0, fmt.Errorf("unknown output layout %q (want yolox or yolov8)", want)
	}
}

// decode appends the candidates of one batch item (out holds exactly d1*d2 values) scoring at least thr
// to dst. allowed, when not nil, lists the classes to keep (indexed by class).
func decode(layout Layout, out []float32, s outputShape, inW, inH int, thr float32, allowed []bool, dst []candidate) ([]candidate, error) {
	if len(out) != s.d1*s.d2 {
		return dst, fmt.Errorf("output item has %d values, shape says %d", len(out), s.d1*s.d2)
	}
	switch layout {
	case LayoutYOLOX:
		return decodeYOLOX(out, s, inW, inH, thr, allowed, dst)
	case LayoutYOLOv8:
		return decodeYOLOv8(out, s, inW, inH, thr, allowed, dst)
	}
	return dst, fmt.Errorf("unknown output layout %q", layout)
}

func decodeYOLOX(out []float32, s outputShape, inW, inH int, thr float32, allowed []bool, dst []candidate) ([]candidate, error) {
	if s.d1 != anchorCount(inW, inH) || s.d2 <= 5 {
		return dst, fmt.Errorf("YOLOX output [%d %d] does not fit a %dx%d input", s.d1, s.d2, inW, inH)
	}
	nc := s.d2 - 5
	row := 0
	for _, st := range strides() {
		gw, gh := inW/st, inH/st
		fs := float32(st)
		for gy := 0; gy < gh; gy++ {
			for gx := 0; gx < gw; gx++ {
				r := out[row*s.d2 : (row+1)*s.d2]
				row++
				obj := r[4]
				if !(obj >= thr) { // score = obj*cls <= obj; also drops NaN
					continue
				}
				cls, best := argmax(r[5 : 5+nc])
				score := obj * best
				if !(score >= thr) || (allowed != nil && (cls >= len(allowed) || !allowed[cls])) {
					continue
				}
				cx, cy := (r[0]+float32(gx))*fs, (r[1]+float32(gy))*fs
				w, h := expf(r[2])*fs, expf(r[3])*fs
				if c, ok := boxCandidate(cx, cy, w, h, score, cls); ok {
					dst = append(dst, c)
				}
			}
		}
	}
	return dst, nil
}

func decodeYOLOv8(out []float32, s outputShape, inW, inH int, thr float32, allowed []bool, dst []candidate) ([]candidate, error) {
	if s.d1 <= 4 {
		return dst, fmt.Errorf("YOLOv8 output [%d %d] has no class rows", s.d1, s.d2)
	}
	n, nc := s.d2, s.d1-4
	for i := 0; i < n; i++ {
		cls, best := -1, float32(math.Inf(-1))
		for c := 0; c < nc; c++ {
			if v := out[(4+c)*n+i]; v > best {
				cls, best = c, v
			}
		}
		if !(best >= thr) || (allowed != nil && (cls >= len(allowed) || !allowed[cls])) {
			continue
		}
		if c, ok := boxCandidate(out[i], out[n+i], out[2*n+i], out[3*n+i], best, cls); ok {
			dst = append(dst, c)
		}
	}
	return dst, nil
}

func argmax(v []float32) (int, float32) {
	bi, bv := 0, v[0]
	for i, x := range v[1:] {
		if x > bv {
			bi, bv = i+1, x
		}
	}
	return bi, bv
}

func expf(x float32) float32 { return float32(math.Exp(float64(x))) }

// boxCandidate turns a centre/size box into corners, refusing any non-finite value: finite inputs can
// still overflow float32 in cx ± w/2 (the fuzzer found cx = -1.2e38 with a huge w giving -Inf).
func boxCandidate(cx, cy, w, h, score float32, cls int) (candidate, bool) {
	c := candidate{x1: cx - w/2, y1: cy - h/2, x2: cx + w/2, y2: cy + h/2, score: score, class: cls}
	return c, finite(cx, cy, w, h, score) && finite(c.x1, c.y1, c.x2, c.y2)
}

func finite(v ...float32) bool {
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return false
		}
	}
	return true
}
