package stamp

import (
	"errors"
	"fmt"
)

// A visual stamp is a frame index drawn into the picture itself (luma only), so that it survives decoding
// and re-encoding (Sightline's annotated track re-encodes every frame, which drops SEI). It is one row of
// square blocks, each black (Y=16) or white (Y=235):
//
//	guard: white black | 24 data bits, most significant first | 8 bits CRC-8 of the data | guard: black white
//
// 36 blocks in all. A reader averages the middle half of each block, thresholds at the midpoint of the
// guards' levels, and accepts only when the guards contrast and the CRC matches, so a box or label drawn
// across the row reads as "unreadable", never as a wrong index.

// VisualBits is the width of the value a visual stamp carries.
const VisualBits = 24

// VisualMax is the largest value a visual stamp carries.
const VisualMax = 1<<VisualBits - 1

const (
	visualBlocks = 2 + VisualBits + 8 + 2
	lumaBlack    = 16
	lumaWhite    = 235
	minContrast  = 64 // guard white mean - guard black mean below this: not a stamp
)

// Visual places a visual stamp: top-left corner (X, Y) in pixels and the block size. Blocks of 16 on a
// 16-aligned corner sit on macroblock boundaries, which keeps them sharp through H.264.
type Visual struct {
	X, Y, Block int
}

// BottomLeft returns the placement used by the benchmarks: 16 px blocks, one macroblock in from the
// left edge, on the last-but-one macroblock row (grass in the street clip, away from the detected people).
func BottomLeft(height int) Visual {
	return Visual{X: 16, Y: (height/16 - 2) * 16, Block: 16}
}

// Width is the width of the stamp in pixels.
func (v Visual) Width() int { return visualBlocks * v.Block }

func (v Visual) fits(stride, width, height, planeLen int) error {
	if v.Block < 2 || v.X < 0 || v.Y < 0 {
		return fmt.Errorf("stamp: bad placement %+v", v)
	}
	if v.X+v.Width() > width || v.Y+v.Block > height || stride < width {
		return fmt.Errorf("stamp: %d-px stamp at (%d,%d) does not fit a %dx%d picture (stride %d)",
			v.Width(), v.X, v.Y, width, height, stride)
	}
	if (v.Y+v.Block-1)*stride+v.X+v.Width() > planeLen {
		return fmt.Errorf("stamp: luma plane of %d bytes is too short for %dx%d (stride %d)", planeLen, width, height, stride)
	}
	return nil
}

// crc8 is CRC-8 (polynomial 0x07) over the value's three bytes.
func crc8(v uint32) byte {
	var c byte
	for _, b := range []byte{byte(v >> 16), byte(v >> 8), byte(v)} {
		c ^= b
		for i := 0; i < 8; i++ {
			if c&0x80 != 0 {
				c = c<<1 ^ 0x07
			} else {
				c <<= 1
			}
		}
	}
	return c
}

// visualPattern returns the block levels (true = white) for value.
func visualPattern(value uint32) [visualBlocks]bool {
	var p [visualBlocks]bool
	p[0], p[1] = true, false
	for i := 0; i < VisualBits; i++ {
		p[2+i] = value>>(VisualBits-1-i)&1 == 1
	}
	c := crc8(value)
	for i := 0; i < 8; i++ {
		p[2+VisualBits+i] = c>>(7-i)&1 == 1
	}
	p[visualBlocks-2], p[visualBlocks-1] = false, true
	return p
}

// Draw writes value (at most VisualMax) into the luma plane y of a width x height picture whose rows are
// stride bytes apart.
func (v Visual) Draw(y []byte, stride, width, height int, value uint32) error {
	if value > VisualMax {
		return fmt.Errorf("stamp: value %d exceeds %d bits", value, VisualBits)
	}
	if err := v.fits(stride, width, height, len(y)); err != nil {
		return err
	}
	for i, white := range visualPattern(value) {
		level := byte(lumaBlack)
		if white {
			level = lumaWhite
		}
		x0 := v.X + i*v.Block
		for r := v.Y; r < v.Y+v.Block; r++ {
			row := y[r*stride+x0 : r*stride+x0+v.Block]
			for j := range row {
				row[j] = level
			}
		}
	}
	return nil
}

// ErrNoVisual is returned by Read when no intact stamp is at the placement (covered, damaged or absent).
var ErrNoVisual = errors.New("stamp: no readable visual stamp")

// Read returns the value of the visual stamp at v in the luma plane y.
func (v Visual) Read(y []byte, stride, width, height int) (uint32, error) {
	if err := v.fits(stride, width, height, len(y)); err != nil {
		return 0, err
	}
	var mean [visualBlocks]int
	q := v.Block / 4
	for i := range mean {
		x0 := v.X + i*v.Block + q
		sum, n := 0, 0
		for r := v.Y + q; r < v.Y+v.Block-q; r++ {
			for _, p := range y[r*stride+x0 : r*stride+x0+v.Block-2*q] {
				sum += int(p)
				n++
			}
		}
		mean[i] = sum / n
	}
	white := (mean[0] + mean[visualBlocks-1]) / 2
	black := (mean[1] + mean[visualBlocks-2]) / 2
	if white-black < minContrast || mean[0]-mean[1] < minContrast || mean[visualBlocks-1]-mean[visualBlocks-2] < minContrast {
		return 0, ErrNoVisual
	}
	mid := (white + black) / 2
	var value uint32
	for i := 0; i < VisualBits; i++ {
		value <<= 1
		if mean[2+i] > mid {
			value |= 1
		}
	}
	var c byte
	for i := 0; i < 8; i++ {
		c <<= 1
		if mean[2+VisualBits+i] > mid {
			c |= 1
		}
	}
	if c != crc8(value) {
		return 0, ErrNoVisual
	}
	return value, nil
}
