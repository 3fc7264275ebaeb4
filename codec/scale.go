package codec

/*
#include "bridge.h"
*/
import "C"

import (
	"fmt"
	"math"
)

// Anchor says where a letterboxed picture sits in its canvas.
type Anchor int

// Anchors.
const (
	AnchorTopLeft Anchor = iota // YOLOX
	AnchorCenter                // YOLOv5/v8 style
)

// ChannelOrder is the order of the colour planes in a tensor.
type ChannelOrder int

// Channel orders.
const (
	OrderBGR ChannelOrder = iota // YOLOX, OpenCV-trained models
	OrderRGB
)

// LetterboxConfig describes a model input tensor: planar float32 CHW, 3 x Height x Width.
type LetterboxConfig struct {
	Width, Height int
	Anchor        Anchor
	Order         ChannelOrder
	// Pad is the value of the canvas outside the picture (YOLOX: 114).
	Pad float32
	// Scale multiplies every value (1 keeps 0-255; 1.0/255 for models that want 0-1).
	Scale float32
}

// Placement is where a letterboxed picture landed: tensor = source * Ratio + Offset.
type Placement struct {
	Ratio            float64 // min(Width/w, Height/h)
	OffsetX, OffsetY int     // top-left corner of the picture in the canvas
	Width, Height    int     // floor(w*Ratio), floor(h*Ratio)
}

// ToSource maps a point of the tensor back to source pixel coordinates.
func (p Placement) ToSource(x, y float64) (float64, float64) {
	return (x - float64(p.OffsetX)) / p.Ratio, (y - float64(p.OffsetY)) / p.Ratio
}

// Letterbox turns frames into model input tensors straight from Y'CbCr: no RGB intermediate, no copy
// besides the tensor itself. It resizes by r = min(W/w, H/h) to floor(w*r) x floor(h*r) with bilinear
// interpolation on pixel centres (OpenCV's INTER_LINEAR geometry, as YOLOX's preprocessing uses),
// converts to RGB with the frame's matrix (H.264 default chroma siting: co-sited horizontally, between
// rows vertically), rounds to whole 0-255 values as an 8-bit RGB image would hold, and writes planar
// float32. A Letterbox caches its sampling tables for one source size; it is not safe for concurrent use.
type Letterbox struct {
	cfg        LetterboxConfig
	srcW, srcH int
	place      Placement
	xs, ys     []tap // luma taps per output column / row
	cxs, cys   []tap // chroma taps
}

// tap is a bilinear sample position along one axis: index i0 with weight 1-w, i1 with weight w.
type tap struct {
	i0, i1 int
	w      float64
}

// NewLetterbox checks cfg.
func NewLetterbox(cfg LetterboxConfig) (*Letterbox, error) {
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > 8192 || cfg.Height > 8192 {
		return nil, fmt.Errorf("letterbox: canvas %dx%d out of range", cfg.Width, cfg.Height)
	}
	if cfg.Scale == 0 {
		cfg.Scale = 1
	}
	return &Letterbox{cfg: cfg}, nil
}

// TensorLen is the number of float32 values Apply writes: 3*Width*Height.
func (l *Letterbox) TensorLen() int { return 3 * l.cfg.Width * l.cfg.Height }

// taps computes bilinear taps for n outputs sampling a source of size src at ratio src/n per output,
// in a coordinate system where source sample k sits at position k*step+offset (luma: step 1, offset 0).
func taps(n, src int, ratio, step, offset float64, limit int) []tap {
	t := make([]tap, n)
	for i := range t {
		x := ((float64(i)+0.5)*ratio - 0.5 - offset) / step
		if x < 0 {
			x = 0
		}
		i0 := int(math.Floor(x))
		if i0 > limit-1 {
			i0 = limit - 1
		}
		w := x - float64(i0)
		i1 := i0 + 1
		if i1 > limit-1 {
			i1, w = limit-1, 0
		}
		t[i] = tap{i0: i0, i1: i1, w: w}
	}
	return t
}

func (l *Letterbox) prepare(w, h int) {
	if w == l.srcW && h == l.srcH {
		return
	}
	W, H := l.cfg.Width, l.cfg.Height
	r := math.Min(float64(W)/float64(w), float64(H)/float64(h))
	dw, dh := int(math.Floor(float64(w)*r)), int(math.Floor(float64(h)*r))
	dw, dh = max(1, min(dw, W)), max(1, min(dh, H))
	p := Placement{Ratio: r, Width: dw, Height: dh}
	if l.cfg.Anchor == AnchorCenter {
		p.OffsetX, p.OffsetY = (W-dw)/2, (H-dh)/2
	}
	rx, ry := float64(w)/float64(dw), float64(h)/float64(dh)
	cw, ch := (w+1)/2, (h+1)/2
	l.xs = taps(dw, w, rx, 1, 0, w)
	l.ys = taps(dh, h, ry, 1, 0, h)
	l.cxs = taps(dw, w, rx, 2, 0, cw)   // chroma sample k at luma x = 2k
	l.cys = taps(dh, h, ry, 2, 0.5, ch) // chroma sample k at luma y = 2k + 0.5
	l.srcW, l.srcH, l.place = w, h, p
}

// yuvMatrix returns the coefficients of R = a*(Y-y0) + rv*V', G = a*(Y-y0) - gu*U' - gv*V',
// B = a*(Y-y0) + bu*U' (U' = U-128, V' = V-128) for a colorimetry.
func yuvMatrix(c Colorimetry) (y0, a, rv, gu, gv, bu float64) {
	kr, kb := 0.299, 0.114
	if c.BT709 {
		kr, kb = 0.2126, 0.0722
	}
	kg := 1 - kr - kb
	ys, cs := 255.0/219, 255.0/224
	y0 = 16
	if c.FullRange {
		ys, cs, y0 = 1, 1, 0
	}
	return y0, ys, cs * 2 * (1 - kr), cs * 2 * (1 - kb) * kb / kg, cs * 2 * (1 - kr) * kr / kg, cs * 2 * (1 - kb)
}

func clampRound(v float64) float32 {
	if v <= 0 {
		return 0
	}
	if v >= 255 {
		return 255
	}
	return float32(math.Floor(v + 0.5))
}

// Apply letterboxes f into dst (length at least TensorLen), overwriting every value, and says where the
// picture landed.
func (l *Letterbox) Apply(f *Frame, dst []float32) (Placement, error) {
	if f == nil || f.Planes[0] == nil {
		return Placement{}, fmt.Errorf("letterbox: frame released or empty")
	}
	if f.Format != FormatI420 && f.Format != FormatNV12 {
		return Placement{}, fmt.Errorf("letterbox: unsupported pixel format %v", f.Format)
	}
	W, H := l.cfg.Width, l.cfg.Height
	if len(dst) < 3*W*H {
		return Placement{}, fmt.Errorf("letterbox: tensor holds %d values, need %d", len(dst), 3*W*H)
	}
	l.prepare(f.Width, f.Height)
	p := l.place
	plane := W * H
	ri, bi := 0, 2
	if l.cfg.Order == OrderBGR {
		ri, bi = 2, 0
	}
	rP, gP, bP := dst[ri*plane:(ri+1)*plane], dst[plane:2*plane], dst[bi*plane:(bi+1)*plane]
	pad := l.cfg.Pad
	scale := l.cfg.Scale
	y0, a, rv, gu, gv, bu := yuvMatrix(f.Color)
	Y, ys := f.Planes[0], f.Strides[0]
	U, V, cs := f.Planes[1], f.Planes[2], f.Strides[1]
	nv12 := f.Format == FormatNV12
	for oy := 0; oy < H; oy++ {
		row := oy * W
		dy := oy - p.OffsetY
		if dy < 0 || dy >= p.Height {
			for _, pl := range [][]float32{rP, gP, bP} {
				fill(pl[row:row+W], pad)
			}
			continue
		}
		for _, pl := range [][]float32{rP, gP, bP} {
			fill(pl[row:row+p.OffsetX], pad)
			fill(pl[row+p.OffsetX+p.Width:row+W], pad)
		}
		ty, tc := l.ys[dy], l.cys[dy]
		y0r, y1r := Y[ty.i0*ys:], Y[ty.i1*ys:]
		c0, c1 := tc.i0*cs, tc.i1*cs
		out := row + p.OffsetX
		for dx := 0; dx < p.Width; dx++ {
			tx, tcx := l.xs[dx], l.cxs[dx]
			yv := lerp(lerp(float64(y0r[tx.i0]), float64(y0r[tx.i1]), tx.w), lerp(float64(y1r[tx.i0]), float64(y1r[tx.i1]), tx.w), ty.w)
			var u00, u01, u10, u11, v00, v01, v10, v11 byte
			if nv12 {
				i0, i1 := 2*tcx.i0, 2*tcx.i1
				u00, u01, u10, u11 = U[c0+i0], U[c0+i1], U[c1+i0], U[c1+i1]
				v00, v01, v10, v11 = U[c0+i0+1], U[c0+i1+1], U[c1+i0+1], U[c1+i1+1]
			} else {
				u00, u01, u10, u11 = U[c0+tcx.i0], U[c0+tcx.i1], U[c1+tcx.i0], U[c1+tcx.i1]
				v00, v01, v10, v11 = V[c0+tcx.i0], V[c0+tcx.i1], V[c1+tcx.i0], V[c1+tcx.i1]
			}
			uv := lerp(lerp(float64(u00), float64(u01), tcx.w), lerp(float64(u10), float64(u11), tcx.w), tc.w) - 128
			vv := lerp(lerp(float64(v00), float64(v01), tcx.w), lerp(float64(v10), float64(v11), tcx.w), tc.w) - 128
			yy := a * (yv - y0)
			i := out + dx
			rP[i] = clampRound(yy+rv*vv) * scale
			gP[i] = clampRound(yy-gu*uv-gv*vv) * scale
			bP[i] = clampRound(yy+bu*uv) * scale
		}
	}
	return p, nil
}

func lerp(a, b, w float64) float64 { return a + (b-a)*w }

func fill(s []float32, v float32) {
	for i := range s {
		s[i] = v
	}
}

// Resizer makes smaller (or larger) I420 copies of frames with libswscale (area averaging when
// shrinking): thumbnails and snapshots. It caches one SwsContext; not safe for concurrent use.
type Resizer struct {
	sws *C.struct_SwsContext
}

// Resize returns a new I420 frame of w x h (even) holding f resized; the caller releases it. PTS,
// keyframe and timing fields are copied.
func (r *Resizer) Resize(f *Frame, w, h int) (*Frame, error) {
	if f == nil || f.av == nil {
		return nil, fmt.Errorf("resize: frame released")
	}
	out, err := NewFrame(w, h, FormatI420)
	if err != nil {
		return nil, fmt.Errorf("resize: %w", err)
	}
	// Ownership: sws_getCachedContext frees and replaces r.sws when parameters change; Close frees it.
	r.sws = C.sws_getCachedContext(r.sws, C.int(f.Width), C.int(f.Height), int32(f.av.format),
		C.int(w), C.int(h), C.AV_PIX_FMT_YUV420P, C.SWS_AREA, nil, nil, nil)
	if r.sws == nil {
		out.Release()
		return nil, fmt.Errorf("resize %dx%d -> %dx%d: sws_getCachedContext failed", f.Width, f.Height, w, h)
	}
	if ret := C.sl_scale_frame(r.sws, f.av, out.av); ret < 0 {
		out.Release()
		return nil, averr("resize: sws_scale", ret)
	}
	out.PTS, out.RTPTime, out.NTP, out.Keyframe = f.PTS, f.RTPTime, f.NTP, f.Keyframe
	// libswscale expands a YUVJ420P source to limited range; a range flag alone it does not see.
	out.Color = Colorimetry{BT709: f.Color.BT709, FullRange: f.Color.FullRange && C.int(f.av.format) != C.AV_PIX_FMT_YUVJ420P}
	return out, nil
}

// Close frees the scaling context.
func (r *Resizer) Close() {
	if r.sws != nil {
		C.sws_freeContext(r.sws)
		r.sws = nil
	}
}
