package overlay

import (
	"os"
	"testing"
	"time"

	"sightline/codec"
	"sightline/filesource"
	"sightline/internal/testenv"
	"sightline/media"
)

// tenBoxes is a busy 720p frame: ten tracked objects with labels and 25-point trails.
func tenBoxes() Scene {
	sc := Scene{Trails: map[int64][][2]float32{}}
	for i := 0; i < 10; i++ {
		x, y := 0.05+float32(i%5)*0.18, 0.1+float32(i/5)*0.45
		b := Box{ID: int64(i + 1), Class: i % 3, Label: []string{"person", "bicycle", "car"}[i%3], Score: 0.8,
			X: x, Y: y, W: 0.12, H: 0.3}
		sc.Boxes = append(sc.Boxes, b)
		for k := 0; k < 25; k++ {
			sc.Trails[b.ID] = append(sc.Trails[b.ID], [2]float32{x - 0.002*float32(25-k), y + 0.3})
		}
	}
	return sc
}

// Draw cost of one 720p frame with ten boxes, labels and trails (I420 and NV12).
func BenchmarkDraw720p10Boxes(b *testing.B) {
	for _, f := range formats {
		b.Run(f.String(), func(b *testing.B) {
			im := NewImage(1280, 720, f, 0, grey)
			sc, st := tenBoxes(), StyleFor(720)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				im.Draw(sc, st)
			}
		})
	}
}

// streetAUs reads the shared 720p camera clip into access units (40 ms apart).
func streetAUs(b *testing.B) []*media.AccessUnit {
	path := testenv.Asset(b, "camera/cam_street_1280x720_25fps.h264")
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	var aus []*media.AccessUnit
	for i, nalus := range filesource.SplitAccessUnits(media.CodecH264, media.SplitAnnexB(data)) {
		aus = append(aus, &media.AccessUnit{Codec: media.CodecH264, NALUs: nalus,
			PTS: time.Duration(i) * 40 * time.Millisecond, RTPTime: uint32(i * 3600),
			Keyframe: media.IsKeyframe(media.CodecH264, nalus)})
	}
	return aus
}

// Per 720p camera frame (the street clip, software decoder, libx264 ultrafast/zerolatency, one thread
// each): decode only, decode + draw (with MakeWritable's copy), and the Annotator's whole
// decode + draw + encode. ns/op is per frame.
func BenchmarkAnnotate720p(b *testing.B) {
	aus := streetAUs(b)
	sc := tenBoxes()
	for _, stage := range []string{"decode", "decode+draw", "decode+draw+encode"} {
		b.Run(stage, func(b *testing.B) {
			dec, err := codec.NewDecoder(codec.DecoderConfig{Codec: media.CodecH264, Accel: codec.AccelSoftware})
			if err != nil {
				b.Fatal(err)
			}
			defer dec.Close()
			var enc *codec.Encoder
			if stage == "decode+draw+encode" {
				if enc, err = codec.NewEncoder(codec.EncoderConfig{Width: 1280, Height: 720, GOP: 50}); err != nil {
					b.Fatal(err)
				}
				defer enc.Close()
			}
			var frames []*codec.Frame
			var out []*media.AccessUnit
			n, bytes := 0, 0
			b.ResetTimer()
			for i := 0; n < b.N; i++ {
				au := *aus[i%len(aus)]
				au.PTS = time.Duration(i) * 40 * time.Millisecond
				if frames, err = dec.Decode(&au, frames[:0]); err != nil {
					b.Fatal(err)
				}
				for _, f := range frames {
					n++
					if stage != "decode" {
						if err := f.MakeWritable(); err != nil {
							b.Fatal(err)
						}
						im, err := FrameImage(f)
						if err != nil {
							b.Fatal(err)
						}
						im.Draw(sc, StyleFor(f.Height))
					}
					if enc != nil {
						if out, err = enc.Encode(f, out[:0]); err != nil {
							b.Fatal(err)
						}
						for _, o := range out {
							bytes += o.Size()
						}
					}
					f.Release()
				}
			}
			b.StopTimer()
			if enc != nil && n > 0 {
				b.ReportMetric(float64(bytes*8)/(float64(n)/25)/1000, "kbit/s")
			}
		})
	}
}
