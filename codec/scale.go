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

// Letterbox turns frames into model input tensors straight from Y'CbCr: no full-size RGB intermediate,
// no copy besides the tensor itself. It computes what the model's documented pre-processing computes
// (decode to an 8-bit BGR image at full size, then a bilinear resize): for every tensor pixel it takes
// the 2x2 source neighbourhood that OpenCV's INTER_LINEAR geometry samples (pixel centres, r = min(W/w,
// H/h), resized to floor(w*r) x floor(h*r)), converts those four pixels to RGB with the frame's matrix and
// range (chroma interpolated bilinearly at the H.264/H.265 default 4:2:0 siting, chroma_sample_loc_type 0,
// MPEG-2 "left": co-sited horizontally, between rows vertically), clamps and rounds each to 0..255
// as the 8-bit image holds them, interpolates the three channels bilinearly and rounds again. Only those
// four pixels per output are converted, so saturated colour edges clamp exactly where the full-size
// image clamps. A Letterbox caches its sampling and colour tables for one source size and colorimetry;
// it is not safe for concurrent use.
type Letterbox struct {
	cfg        LetterboxConfig
	srcW, srcH int
	place      Placement
	cols       []lbCol // per output column of the picture
	rows       []lbRow // per output row of the picture
	nv12       bool    // cols hold NV12 chroma offsets

	color  Colorimetry
	tabOK  bool
	ly     [256]float64     // a*(Y-y0)
	rv, bu [chroma8]float64 // V' and U' contributions to R and B, by chroma in eighths
	gu, gv [chroma8]float64 // U' and V' contributions to G
	clip   [1024]float64    // see clipOff
}

// chroma8 is the number of chroma values in eighths of a code (0..255*8): the bilinear weights at
// full-size pixel positions are 1, 1/2 horizontally and 3/4, 1/4 vertically.
const chroma8 = 255*8 + 1

// lbCol is one output column: luma columns x0, x1 (x0+1, clamped) with weight w of x1. Both pixels take
// their chroma from the two chroma columns at byte offsets k0 (x0/2) and k1 (the next, clamped): pixel
// x0 averages them with weights a0, b0 (halves: 2,0 when co-sited, 1,1 between samples), x1 with a1, b1.
type lbCol struct {
	x0, x1         int
	w              float64
	k0, k1         int
	a0, b0, a1, b1 int
}

// lbRow is one output row: luma rows y0, y1 with weight w of y1. Both take their chroma from the chroma
// rows c[0..2] (y0/2-1, y0/2, y0/2+1, clamped), row y0 with weights w0 and row y1 with weights w1
// (quarters: 3/4 for the nearer sample, 1/4 for the other).
type lbRow struct {
	y0, y1 int
	w      float64
	c      [3]int
	w0, w1 [3]int
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

// linearTap returns OpenCV INTER_LINEAR's source pair for output i at ratio src/out: index i0, i0+1
// (clamped to n-1) and the weight of the second.
func linearTap(i int, ratio float64, n int) (i0, i1 int, w float64) {
	x := (float64(i)+0.5)*ratio - 0.5
	if x < 0 {
		x = 0
	}
	i0 = int(math.Floor(x))
	if i0 > n-1 {
		i0 = n - 1
	}
	w = x - float64(i0)
	i1 = i0 + 1
	if i1 > n-1 {
		i1, w = n-1, 0
	}
	return i0, i1, w
}

// chromaCols returns the two chroma samples averaged at luma column x (left siting: sample k sits at
// luma x = 2k, so an even column takes sample x/2 twice, an odd one x/2 and x/2+1), clamped to n.
func chromaCols(x, n int) (a, b int) {
	a = min(x/2, n-1)
	b = a
	if x%2 == 1 {
		b = min(a+1, n-1)
	}
	return a, b
}

// chromaRows returns the chroma row weighted 3/4 and the one weighted 1/4 at luma row y (sample k sits
// at luma y = 2k + 1/2), clamped to n.
func chromaRows(y, n int) (a, b int) {
	a = min(y/2, n-1)
	if y%2 == 0 {
		b = max(a-1, 0)
	} else {
		b = min(a+1, n-1)
	}
	return a, b
}

func (l *Letterbox) prepare(f *Frame) {
	w, h := f.Width, f.Height
	nv12 := f.Format == FormatNV12
	if w != l.srcW || h != l.srcH || nv12 != l.nv12 || l.cols == nil {
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
		step := 1
		if nv12 {
			step = 2
		}
		l.cols = make([]lbCol, dw)
		for i := range l.cols {
			x0, x1, wt := linearTap(i, rx, w)
			k0 := min(x0/2, cw-1)
			k1 := min(k0+1, cw-1)
			c := lbCol{x0: x0, x1: x1, w: wt, k0: k0 * step, k1: k1 * step}
			for _, x := range [2]int{x0, x1} {
				a, b := chromaCols(x, cw)
				na, nb := 0, 0
				for _, k := range [2]int{a, b} {
					if k == k0 {
						na++
					} else {
						nb++
					}
				}
				if x == x0 {
					c.a0, c.b0 = na, nb
				} else {
					c.a1, c.b1 = na, nb
				}
			}
			l.cols[i] = c
		}
		l.rows = make([]lbRow, dh)
		for i := range l.rows {
			y0, y1, wt := linearTap(i, ry, h)
			m := min(y0/2, ch-1)
			r := lbRow{y0: y0, y1: y1, w: wt, c: [3]int{max(m-1, 0), m, min(m+1, ch-1)}}
			for j, y := range [2]int{y0, y1} {
				a, b := chromaRows(y, ch)
				wts := &r.w0
				if j == 1 {
					wts = &r.w1
				}
				for n, k := range [2]int{a, b} {
					wk := 3 - 2*n // 3 for the nearer row, 1 for the other
					for q := range r.c {
						if r.c[q] == k {
							wts[q] += wk
							break
						}
					}
				}
			}
			l.rows[i] = r
		}
		l.srcW, l.srcH, l.nv12, l.place = w, h, nv12, p
	}
	if !l.tabOK || l.color != f.Color {
		y0, a, rv, gu, gv, bu := yuvMatrix(f.Color)
		for i := range l.ly {
			l.ly[i] = a * (float64(i) - y0)
		}
		for i := range l.clip {
			l.clip[i] = float64(max(0, min(255, i-clipBase)))
		}
		for i := 0; i < chroma8; i++ {
			c := float64(i)/8 - 128
			l.rv[i], l.gu[i], l.gv[i], l.bu[i] = rv*c, gu*c, gv*c, bu*c
		}
		l.color, l.tabOK = f.Color, true
	}
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

// clipBase and clipOff index Letterbox.clip: clip[int(v+clipOff)] is v clamped to 0..255 and rounded
// half up (the value an 8-bit image holds) for every v a conversion can produce (about -280..540);
// int() of that positive sum truncates, i.e. floors.
const (
	clipBase = 384
	clipOff  = clipBase + 0.5
)

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
	l.prepare(f)
	p := l.place
	plane := W * H
	ri, bi := 0, 2
	if l.cfg.Order == OrderBGR {
		ri, bi = 2, 0
	}
	rP, gP, bP := dst[ri*plane:(ri+1)*plane], dst[plane:2*plane], dst[bi*plane:(bi+1)*plane]
	pad := l.cfg.Pad
	scale := l.cfg.Scale
	Y, ys := f.Planes[0], f.Strides[0]
	U, V, cs := f.Planes[1], f.Planes[2], f.Strides[1]
	if f.Format == FormatNV12 {
		V = U[1:] // interleaved: V sits one byte after U; column offsets are already doubled
	}
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
		ty := l.rows[dy]
		ly, rv, gu, gv, bu, clip := &l.ly, &l.rv, &l.gu, &l.gv, &l.bu, &l.clip
		yr0, yr1 := Y[ty.y0*ys:], Y[ty.y1*ys:]
		Ur0, Ur1, Ur2 := U[ty.c[0]*cs:], U[ty.c[1]*cs:], U[ty.c[2]*cs:]
		Vr0, Vr1, Vr2 := V[ty.c[0]*cs:], V[ty.c[1]*cs:], V[ty.c[2]*cs:]
		w00, w01, w02 := ty.w0[0], ty.w0[1], ty.w0[2]
		w10, w11, w12 := ty.w1[0], ty.w1[1], ty.w1[2]
		out := row + p.OffsetX
		for dx, tx := range l.cols[:p.Width] {
			// The 3x2 chroma samples around the 2x2 pixels, combined per row (quarters) then per column
			// (halves): chroma in eighths at each pixel.
			ua0, ua1, ua2 := int(Ur0[tx.k0]), int(Ur1[tx.k0]), int(Ur2[tx.k0])
			ub0, ub1, ub2 := int(Ur0[tx.k1]), int(Ur1[tx.k1]), int(Ur2[tx.k1])
			va0, va1, va2 := int(Vr0[tx.k0]), int(Vr1[tx.k0]), int(Vr2[tx.k0])
			vb0, vb1, vb2 := int(Vr0[tx.k1]), int(Vr1[tx.k1]), int(Vr2[tx.k1])
			uA0, uB0 := w00*ua0+w01*ua1+w02*ua2, w00*ub0+w01*ub1+w02*ub2
			uA1, uB1 := w10*ua0+w11*ua1+w12*ua2, w10*ub0+w11*ub1+w12*ub2
			vA0, vB0 := w00*va0+w01*va1+w02*va2, w00*vb0+w01*vb1+w02*vb2
			vA1, vB1 := w10*va0+w11*va1+w12*va2, w10*vb0+w11*vb1+w12*vb2
			u00, u01 := tx.a0*uA0+tx.b0*uB0, tx.a1*uA0+tx.b1*uB0
			u10, u11 := tx.a0*uA1+tx.b0*uB1, tx.a1*uA1+tx.b1*uB1
			v00, v01 := tx.a0*vA0+tx.b0*vB0, tx.a1*vA0+tx.b1*vB0
			v10, v11 := tx.a0*vA1+tx.b0*vB1, tx.a1*vA1+tx.b1*vB1
			Y00, Y01, Y10, Y11 := ly[yr0[tx.x0]], ly[yr0[tx.x1]], ly[yr1[tx.x0]], ly[yr1[tx.x1]]
			R00, R01 := clip[int(Y00+rv[v00]+clipOff)], clip[int(Y01+rv[v01]+clipOff)]
			R10, R11 := clip[int(Y10+rv[v10]+clipOff)], clip[int(Y11+rv[v11]+clipOff)]
			G00, G01 := clip[int(Y00-gu[u00]-gv[v00]+clipOff)], clip[int(Y01-gu[u01]-gv[v01]+clipOff)]
			G10, G11 := clip[int(Y10-gu[u10]-gv[v10]+clipOff)], clip[int(Y11-gu[u11]-gv[v11]+clipOff)]
			B00, B01 := clip[int(Y00+bu[u00]+clipOff)], clip[int(Y01+bu[u01]+clipOff)]
			B10, B11 := clip[int(Y10+bu[u10]+clipOff)], clip[int(Y11+bu[u11]+clipOff)]
			wx, wy := tx.w, ty.w
			i := out + dx
			rP[i] = float32(int(lerp(lerp(R00, R01, wx), lerp(R10, R11, wx), wy)+0.5)) * scale
			gP[i] = float32(int(lerp(lerp(G00, G01, wx), lerp(G10, G11, wx), wy)+0.5)) * scale
			bP[i] = float32(int(lerp(lerp(B00, B01, wx), lerp(B10, B11, wx), wy)+0.5)) * scale
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
