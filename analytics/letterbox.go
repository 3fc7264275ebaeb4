package analytics

import (
	"fmt"
	"image"
	"image/color"
	"math"
)

// Letterbox is how a frame sits in a detector's input tensor: scaled by Scale (aspect ratio kept) to
// ScaledW x ScaledH and pasted at (PadX, PadY) of a DstW x DstH canvas filled with the pad grey.
type Letterbox struct {
	SrcW, SrcH int
	DstW, DstH int
	Scale      float64
	// ScaledW, ScaledH are the frame's size inside the tensor: floor(SrcW*Scale), floor(SrcH*Scale).
	ScaledW, ScaledH int
	PadX, PadY       int
}

// NewLetterbox places a srcW x srcH frame at the top-left of a dstW x dstH tensor, as YOLOX was trained:
// Scale = min(dstW/srcW, dstH/srcH), the scaled size floored.
func NewLetterbox(srcW, srcH, dstW, dstH int) (Letterbox, error) {
	if srcW <= 0 || srcH <= 0 || dstW <= 0 || dstH <= 0 {
		return Letterbox{}, fmt.Errorf("letterbox %dx%d into %dx%d: sizes must be positive", srcW, srcH, dstW, dstH)
	}
	r := math.Min(float64(dstW)/float64(srcW), float64(dstH)/float64(srcH))
	sw, sh := int(math.Floor(float64(srcW)*r)), int(math.Floor(float64(srcH)*r))
	return Letterbox{SrcW: srcW, SrcH: srcH, DstW: dstW, DstH: dstH, Scale: r, ScaledW: max(sw, 1), ScaledH: max(sh, 1)}, nil
}

// ToFrame maps corners in tensor pixels to a box normalized to the frame, clipped to it.
func (l Letterbox) ToFrame(x1, y1, x2, y2 float32) Box {
	s := float32(l.Scale)
	fw, fh := float32(l.SrcW), float32(l.SrcH)
	x1 = clamp((x1-float32(l.PadX))/s, 0, fw)
	x2 = clamp((x2-float32(l.PadX))/s, 0, fw)
	y1 = clamp((y1-float32(l.PadY))/s, 0, fh)
	y2 = clamp((y2-float32(l.PadY))/s, 0, fh)
	return Box{X: x1 / fw, Y: y1 / fh, W: max(x2-x1, 0) / fw, H: max(y2-y1, 0) / fh}
}

func clamp(v, lo, hi float32) float32 {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

// FillImage letterboxes img into dst (spec.Len() values, CHW) the way the YOLO family expects: bilinear
// resize with half-pixel centres (OpenCV's INTER_LINEAR), pasted top-left, the rest spec.Pad, channels in
// spec's order, values 0..255 times spec.Scale. It is the pure-Go path for still images and tests.
func FillImage(img image.Image, spec InputSpec, dst []float32) (Letterbox, error) {
	b := img.Bounds()
	lb, err := NewLetterbox(b.Dx(), b.Dy(), spec.Width, spec.Height)
	if err != nil {
		return Letterbox{}, err
	}
	if spec.Channels != 3 {
		return Letterbox{}, fmt.Errorf("letterbox image: detector wants %d channels, images give 3", spec.Channels)
	}
	if len(dst) != spec.Len() {
		return Letterbox{}, fmt.Errorf("letterbox image: tensor has %d values, spec needs %d", len(dst), spec.Len())
	}
	rgb := toRGB(img)
	w, h := b.Dx(), b.Dy()
	plane := spec.Width * spec.Height
	pad := spec.Pad * spec.Scale
	for i := range dst {
		dst[i] = pad
	}
	ci := [3]int{0, 1, 2} // plane of R, G, B
	if spec.BGR {
		ci = [3]int{2, 1, 0}
	}
	xs := bilinearTaps(w, lb.ScaledW)
	ys := bilinearTaps(h, lb.ScaledH)
	for dy := 0; dy < lb.ScaledH; dy++ {
		ty := ys[dy]
		row0, row1 := rgb[ty.i0*w*3:], rgb[ty.i1*w*3:]
		out := (dy+lb.PadY)*spec.Width + lb.PadX
		for dx := 0; dx < lb.ScaledW; dx++ {
			tx := xs[dx]
			for c := 0; c < 3; c++ {
				p00, p01 := float32(row0[tx.i0*3+c]), float32(row0[tx.i1*3+c])
				p10, p11 := float32(row1[tx.i0*3+c]), float32(row1[tx.i1*3+c])
				top := p00 + (p01-p00)*tx.f
				bot := p10 + (p11-p10)*tx.f
				dst[ci[c]*plane+out+dx] = (top + (bot-top)*ty.f) * spec.Scale
			}
		}
	}
	return lb, nil
}

type tap struct {
	i0, i1 int
	f      float32
}

// bilinearTaps gives, for each of n output samples over src input samples, the two input indices and
// the weight of the second, with half-pixel centres and edge clamping as OpenCV's INTER_LINEAR.
func bilinearTaps(src, n int) []tap {
	taps := make([]tap, n)
	scale := float64(src) / float64(n)
	for d := range taps {
		s := (float64(d)+0.5)*scale - 0.5
		if s < 0 {
			s = 0
		}
		i0 := int(math.Floor(s))
		f := s - float64(i0)
		if i0 >= src-1 {
			i0, f = src-1, 0
		}
		i1 := min(i0+1, src-1)
		taps[d] = tap{i0: i0, i1: i1, f: float32(f)}
	}
	return taps
}

// toRGB returns the image as packed 8-bit RGB rows (fast paths for what image/jpeg and image/png decode).
func toRGB(img image.Image) []byte {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := make([]byte, w*h*3)
	switch m := img.(type) {
	case *image.YCbCr:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				yi := m.YOffset(b.Min.X+x, b.Min.Y+y)
				ci := m.COffset(b.Min.X+x, b.Min.Y+y)
				r, g, bl := color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
				o := (y*w + x) * 3
				out[o], out[o+1], out[o+2] = r, g, bl
			}
		}
	case *image.RGBA:
		for y := 0; y < h; y++ {
			row := m.Pix[(y)*m.Stride:]
			for x := 0; x < w; x++ {
				o := (y*w + x) * 3
				out[o], out[o+1], out[o+2] = row[x*4], row[x*4+1], row[x*4+2]
			}
		}
	default:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				c := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
				o := (y*w + x) * 3
				out[o], out[o+1], out[o+2] = c.R, c.G, c.B
			}
		}
	}
	return out
}
