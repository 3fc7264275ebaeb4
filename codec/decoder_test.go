package codec

import (
	"errors"
	"testing"
	"time"

	"sightline/media"
)

// Every frame the software decoder returns is bit-identical to what the FFmpeg CLI decodes from the same
// file (per-frame MD5 of the planes, as -f framemd5 computes it).
func TestDecodeMatchesFFmpegFrameMD5(t *testing.T) {
	for _, fx := range fixtures(t) {
		t.Run(fx.name, func(t *testing.T) {
			want := ffmpegFrameMD5(t, fx.path)
			aus := readAUs(t, fx.path, fx.codec)
			d, err := NewDecoder(DecoderConfig{Codec: fx.codec, Accel: AccelSoftware})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			var got []string
			decodeAll(t, d, aus, func(f *Frame) {
				if f.Format != FormatI420 {
					t.Fatalf("format %v", f.Format)
				}
				got = append(got, frameMD5(f))
			})
			if len(got) != len(want) {
				t.Fatalf("decoded %d frames, ffmpeg %d", len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("frame %d: md5 %s, ffmpeg %s", i, got[i], want[i])
				}
			}
			if st := d.Stats(); st.Frames != uint64(len(want)) || st.Corrupt != 0 {
				t.Fatalf("stats %+v", st)
			}
			t.Logf("%d frames identical to ffmpeg framemd5", len(got))
		})
	}
}

// Baseline has no reordering: each access unit's PTS, RTP time and keyframe flag come out on its frame.
func TestDecodeCarriesTimestamps(t *testing.T) {
	fx := streetClip(t)
	aus := readAUs(t, fx.path, fx.codec)[:60]
	d, err := NewDecoder(DecoderConfig{Codec: fx.codec, Accel: AccelSoftware})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	i := 0
	decodeAll(t, d, aus, func(f *Frame) {
		if f.PTS != aus[i].PTS || f.RTPTime != aus[i].RTPTime || f.Keyframe != aus[i].Keyframe {
			t.Fatalf("frame %d: pts %v rtp %d key %v; AU pts %v rtp %d key %v", i, f.PTS, f.RTPTime, f.Keyframe,
				aus[i].PTS, aus[i].RTPTime, aus[i].Keyframe)
		}
		if f.Width != 1280 || f.Height != 720 {
			t.Fatalf("size %dx%d", f.Width, f.Height)
		}
		i++
	})
	if i != len(aus) {
		t.Fatalf("%d frames for %d AUs", i, len(aus))
	}
}

func TestDecodeKeyframesOnly(t *testing.T) {
	fx := streetClip(t)
	aus := readAUs(t, fx.path, fx.codec)
	keys := 0
	for _, au := range aus {
		if au.Keyframe {
			keys++
		}
	}
	d, err := NewDecoder(DecoderConfig{Codec: fx.codec, Accel: AccelSoftware, KeyframesOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	n := 0
	decodeAll(t, d, aus, func(f *Frame) {
		if !f.Keyframe || f.PTS%time.Second != 0 {
			t.Fatalf("non-key frame pts %v", f.PTS)
		}
		n++
	})
	if n != keys || keys == 0 {
		t.Fatalf("%d frames, %d keyframes", n, keys)
	}
}

// A truncated or bit-flipped access unit is an error wrapping ErrCorrupt; the decoder then drops
// access units until the next keyframe and decodes from there exactly as a fresh decoder would.
func TestDecodeCorruptRecoversAtKeyframe(t *testing.T) {
	fx := streetClip(t)
	aus := readAUs(t, fx.path, fx.codec)[:60] // IDR at 0, 25, 50
	fresh, err := NewDecoder(DecoderConfig{Codec: fx.codec, Accel: AccelSoftware})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	want := map[time.Duration]string{}
	decodeAll(t, fresh, aus[25:], func(f *Frame) { want[f.PTS] = frameMD5(f) })

	for _, mode := range []string{"truncate", "garbage"} {
		t.Run(mode, func(t *testing.T) {
			d, err := NewDecoder(DecoderConfig{Codec: fx.codec, Accel: AccelSoftware})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			var errs int
			var frames []*Frame
			for i, au := range aus {
				if i == 10 {
					bad := *au
					bad.NALUs = nil
					for _, n := range au.NALUs {
						c := append([]byte(nil), n...)
						if media.NALUType(fx.codec, n) == 1 { // the slice
							if mode == "truncate" {
								c = c[:len(c)/3]
							} else {
								for j := 8; j < len(c); j += 7 {
									c[j] ^= 0xa5
								}
							}
						}
						bad.NALUs = append(bad.NALUs, c)
					}
					au = &bad
				}
				frames, err = d.Decode(au, frames[:0])
				if err != nil {
					if !errors.Is(err, ErrCorrupt) {
						t.Fatalf("AU %d: error %v does not wrap ErrCorrupt", i, err)
					}
					errs++
				}
				for _, f := range frames {
					if i >= 25 && want[f.PTS] != frameMD5(f) {
						t.Errorf("AU %d: frame pts %v differs from a fresh decoder's", i, f.PTS)
					}
					if i > 10 && i < 25 {
						t.Errorf("AU %d: frame returned while waiting for a keyframe", i)
					}
					f.Release()
				}
			}
			st := d.Stats()
			if errs != 1 || st.Corrupt != 1 || st.Skipped != 14 {
				t.Fatalf("errors %d stats %+v, want 1 error and 14 skipped", errs, st)
			}
		})
	}
}

func TestDecoderAccelSelection(t *testing.T) {
	d, err := NewDecoder(DecoderConfig{Codec: media.CodecH264})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	t.Logf("auto chose %s; skipped %+v", d.Accel(), d.Skipped())
	if d.Accel() == AccelSoftware && len(d.Skipped()) != 2 {
		t.Fatalf("software chosen but skipped = %+v", d.Skipped())
	}
	for _, a := range []Accel{AccelVAAPI, AccelCUDA} {
		d, err := NewDecoder(DecoderConfig{Codec: media.CodecH264, Accel: a})
		if err != nil {
			// Machines without the device: a clear error that wraps ErrUnavailable or names libav's.
			t.Logf("%s: %v", a, err)
			continue
		}
		t.Logf("%s opened (hardware present)", a)
		d.Close()
	}
	if _, err := NewDecoder(DecoderConfig{Codec: "VP8"}); err == nil {
		t.Fatal("VP8 accepted")
	}
	if _, err := NewDecoder(DecoderConfig{Codec: media.CodecH264, Accel: "opencl"}); err == nil {
		t.Fatal("unknown accel accepted")
	}
}

func TestFrameRefRelease(t *testing.T) {
	f, err := NewFrame(64, 32, FormatI420)
	if err != nil {
		t.Fatal(err)
	}
	f.Planes[0][0] = 7
	g, err := f.Ref()
	if err != nil {
		t.Fatal(err)
	}
	if g.Planes[0][0] != 7 || &g.Planes[0][0] != &f.Planes[0][0] {
		t.Fatal("ref does not share the picture")
	}
	if err := g.MakeWritable(); err != nil {
		t.Fatal(err)
	}
	g.Planes[0][0] = 9
	if f.Planes[0][0] != 7 {
		t.Fatal("MakeWritable wrote into the shared picture")
	}
	f.Release()
	f.Release()
	if f.Planes[0] != nil || g.Planes[0][0] != 9 {
		t.Fatal("release")
	}
	g.Release()
	if _, err := NewFrame(63, 32, FormatI420); err == nil {
		t.Fatal("odd width accepted")
	}
}
