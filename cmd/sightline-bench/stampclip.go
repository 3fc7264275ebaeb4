package main

import (
	"bufio"
	"fmt"
	"os"
	"time"

	"sightline/codec"
	"sightline/internal/rtsptest"
	"sightline/internal/stamp"
	"sightline/media"
)

// stampedClip is an H.264 loop of n frames built in memory from a camera clip: every frame carries its
// position in the loop as a visual stamp in its luma, encoded again with libx264 (zerolatency) at fps
// with an IDR every gop frames, written as Annex-B with an AUD before every access unit (what
// internal/rtsptest serves).
type stampedClip struct {
	Path          string
	Frames        int
	Width, Height int
	Visual        stamp.Visual
	Encoder       string
}

// buildStampedClip decodes src (looping it when it is shorter than n frames), stamps and re-encodes n
// frames into a temporary file. Remove Path when done.
func buildStampedClip(src string, n, fps, gop int) (*stampedClip, error) {
	buf, err := os.ReadFile(src)
	if err != nil {
		return nil, fmt.Errorf("read clip: %w", err)
	}
	aus := rtsptest.SplitAUD(buf)
	if len(aus) == 0 {
		return nil, fmt.Errorf("%s holds no access unit", src)
	}
	dec, err := codec.NewDecoder(codec.DecoderConfig{Codec: media.CodecH264, Accel: codec.AccelSoftware})
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	out, err := os.CreateTemp("", "sightline-bench-stamped-*.h264")
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			out.Close()
			os.Remove(out.Name())
		}
	}()
	w := bufio.NewWriter(out)
	c := &stampedClip{Path: out.Name()}
	var (
		enc    *codec.Encoder
		frames []*codec.Frame
		coded  []*media.AccessUnit
	)
	defer func() {
		if enc != nil {
			enc.Close()
		}
	}()
	writeAUs := func(list []*media.AccessUnit) error {
		for _, au := range list {
			if _, err := w.Write([]byte{0, 0, 0, 1, 9, 0xf0}); err != nil { // AUD, primary_pic_type any
				return err
			}
			for _, nalu := range au.NALUs {
				if t := media.NALUType(media.CodecH264, nalu); t == 9 {
					continue
				}
				if _, err := w.Write([]byte{0, 0, 0, 1}); err != nil {
					return err
				}
				if _, err := w.Write(nalu); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for i := 0; c.Frames < n; i++ {
		if i > 10*len(aus)+n {
			return nil, fmt.Errorf("%s: %d frames decoded of %d wanted", src, c.Frames, n)
		}
		au := &media.AccessUnit{Codec: media.CodecH264, NALUs: aus[i%len(aus)], PTS: time.Duration(i) * time.Millisecond}
		frames, err = dec.Decode(au, frames[:0])
		if err != nil {
			return nil, fmt.Errorf("decode %s: %w", src, err)
		}
		for _, f := range frames {
			if c.Frames >= n {
				f.Release()
				continue
			}
			err := c.stamp(f, fps, gop, &enc)
			if err == nil {
				coded, err = enc.Encode(f, coded[:0])
			}
			f.Release()
			if err == nil {
				err = writeAUs(coded)
			}
			if err != nil {
				return nil, err
			}
			c.Frames++
		}
	}
	if coded, err = enc.Flush(coded[:0]); err != nil {
		return nil, err
	}
	if err := writeAUs(coded); err != nil {
		return nil, err
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	if err := out.Close(); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

// stamp draws the frame's loop position into f and opens the encoder on the first frame.
func (c *stampedClip) stamp(f *codec.Frame, fps, gop int, enc **codec.Encoder) error {
	if *enc == nil {
		c.Width, c.Height, c.Visual = f.Width, f.Height, stamp.BottomLeft(f.Height)
		e, err := codec.NewEncoder(codec.EncoderConfig{Width: f.Width, Height: f.Height, Format: f.Format,
			Accel: codec.AccelSoftware, BitrateBps: 4_000_000, GOP: gop, FPS: fps})
		if err != nil {
			return err
		}
		*enc, c.Encoder = e, e.Name()
	}
	if f.Format != codec.FormatI420 {
		return fmt.Errorf("stamp: decoded %v, want I420", f.Format)
	}
	if err := f.MakeWritable(); err != nil {
		return err
	}
	if err := c.Visual.Draw(f.Planes[0], f.Strides[0], f.Width, f.Height, uint32(c.Frames)); err != nil {
		return err
	}
	f.PTS = time.Duration(c.Frames) * time.Second / time.Duration(fps)
	return nil
}
