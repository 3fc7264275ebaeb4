package codec

import (
	"errors"
	"testing"

	"sightline/media"
)

// FuzzDecode feeds bit-flipped and truncated real access units to a decoder that holds a real reference
// picture, then a real access unit: every outcome must be frames or an error, never a crash.
func FuzzDecode(f *testing.F) {
	fx := streetClip(f)
	aus := readAUs(f, fx.path, fx.codec)[:3]
	idr, p1, p2 := aus[0], aus[1], aus[2]
	f.Add(media.JoinAnnexB(p1.NALUs), false)
	f.Add(media.JoinAnnexB(idr.NALUs), true)
	whole := media.JoinAnnexB(p1.NALUs)
	f.Add(whole[:len(whole)/2], false)
	flipped := append([]byte(nil), whole...)
	for i := 20; i < len(flipped); i += 97 {
		flipped[i] ^= 1 << (i % 8)
	}
	f.Add(flipped, false)
	f.Fuzz(func(t *testing.T, data []byte, afterReset bool) {
		d, err := NewDecoder(DecoderConfig{Codec: fx.codec, Accel: AccelSoftware})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		var frames []*Frame
		release := func() {
			for _, fr := range frames {
				if fr.Width <= 0 || fr.Height <= 0 || len(fr.Planes[0]) < fr.Width*fr.Height {
					t.Fatalf("bad frame %dx%d", fr.Width, fr.Height)
				}
				fr.Release()
			}
			frames = frames[:0]
		}
		if !afterReset {
			if frames, err = d.Decode(idr, frames); err != nil {
				t.Fatal(err)
			}
			release()
		}
		nalus := media.SplitAnnexB(data)
		fuzzed := &media.AccessUnit{Codec: fx.codec, NALUs: nalus, PTS: p1.PTS, Keyframe: media.IsKeyframe(fx.codec, nalus)}
		frames, err = d.Decode(fuzzed, frames)
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error %v does not wrap ErrCorrupt", err)
		}
		release()
		frames, _ = d.Decode(p2, frames)
		release()
		frames, _ = d.Flush(frames)
		release()
	})
}
