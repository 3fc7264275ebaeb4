package codec

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"sightline/internal/testenv"
	"sightline/media"
)

var rtimeRE = regexp.MustCompile(`rtime=([0-9.]+)s`)

// ffmpegFPS runs the FFmpeg CLI with -benchmark and returns frames per second of its real time.
func ffmpegFPS(b *testing.B, frames int, args ...string) float64 {
	b.Helper()
	ffmpeg := testenv.LookPath(b, "ffmpeg", "ffmpeg")
	full := append([]string{"-hide_banner", "-nostats", "-benchmark"}, args...)
	out, err := exec.Command(ffmpeg, full...).CombinedOutput()
	if err != nil {
		b.Fatalf("ffmpeg %v: %v\n%s", full, err, out)
	}
	m := rtimeRE.FindSubmatch(out)
	if m == nil {
		b.Fatalf("no rtime in ffmpeg output:\n%s", out)
	}
	rt, _ := strconv.ParseFloat(string(m[1]), 64)
	b.Logf("ffmpeg %s: %.0f fps", strings.Join(args, " "), float64(frames)/rt)
	return float64(frames) / rt
}

func report(b *testing.B, frames int, elapsed time.Duration, cli float64) {
	fps := float64(frames) / elapsed.Seconds()
	b.ReportMetric(fps, "fps")
	b.ReportMetric(cli, "ffmpeg_fps")
	b.ReportMetric(fps/cli, "x_ffmpeg")
}

func benchDecode(b *testing.B, path string, letterbox bool) {
	aus := readAUs(b, path, media.CodecH264)
	args := []string{"-threads", "1", "-i", path}
	if letterbox {
		args = append(args, "-vf", "scale=416:416", "-pix_fmt", "rgb24")
	}
	cli := ffmpegFPS(b, len(aus), append(args, "-f", "null", "-")...)
	var lb *Letterbox
	var tensor []float32
	if letterbox {
		lb, _ = NewLetterbox(LetterboxConfig{Width: 416, Height: 416, Pad: 114})
		tensor = make([]float32, lb.TensorLen())
	}
	frames := 0
	start := time.Now()
	for b.Loop() {
		d, err := NewDecoder(DecoderConfig{Codec: media.CodecH264, Accel: AccelSoftware})
		if err != nil {
			b.Fatal(err)
		}
		decodeAll(b, d, aus, func(f *Frame) {
			if lb != nil {
				if _, err := lb.Apply(f, tensor); err != nil {
					b.Fatal(err)
				}
			}
			frames++
		})
		d.Close()
	}
	report(b, frames, time.Since(start), cli)
}

// Decoding the 720p camera clip, one thread, beside `ffmpeg -threads 1 -i F -f null -`.
func BenchmarkDecode720p(b *testing.B) {
	benchDecode(b, streetClip(b).path, false)
}

// Decoding a generated 1080p High (B-frames) clip, beside the CLI.
func BenchmarkDecode1080p(b *testing.B) {
	path := genFixture(b, b.TempDir(), "b1080.h264", "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=25",
		"-frames:v", "150", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-profile:v", "high", "-bf", "2", "-g", "50", "-f", "h264")
	benchDecode(b, path, false)
}

// Decode + letterbox into a 416x416 BGR float tensor, beside `-vf scale=416:416 -pix_fmt rgb24`.
func BenchmarkDecodeLetterbox720p(b *testing.B) {
	benchDecode(b, streetClip(b).path, true)
}

// The Go letterbox alone on a 720p frame.
func BenchmarkLetterbox720p(b *testing.B) {
	f := syntheticFrame(b, 1280, 720)
	defer f.Release()
	lb, _ := NewLetterbox(LetterboxConfig{Width: 416, Height: 416, Pad: 114})
	tensor := make([]float32, lb.TensorLen())
	for b.Loop() {
		if _, err := lb.Apply(f, tensor); err != nil {
			b.Fatal(err)
		}
	}
}

// libx264 ultrafast/zerolatency at 2 Mbit/s on 100 decoded 720p camera frames, beside the CLI encoding
// the same frames from a raw file.
func BenchmarkEncode720p(b *testing.B) {
	fx := streetClip(b)
	aus := readAUs(b, fx.path, fx.codec)[:100]
	d, err := NewDecoder(DecoderConfig{Codec: fx.codec, Accel: AccelSoftware})
	if err != nil {
		b.Fatal(err)
	}
	var src []*Frame
	raw, err := os.Create(b.TempDir() + "/raw.yuv")
	if err != nil {
		b.Fatal(err)
	}
	decodeAll(b, d, aus, func(f *Frame) {
		g, _ := f.Ref()
		src = append(src, g)
		for i := 0; i < 3; i++ {
			w, h := f.planeSize(i)
			for r := 0; r < h; r++ {
				raw.Write(f.Planes[i][r*f.Strides[i] : r*f.Strides[i]+w])
			}
		}
	})
	d.Close()
	raw.Close()
	defer func() {
		for _, f := range src {
			f.Release()
		}
	}()
	cli := ffmpegFPS(b, len(src), "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", "1280x720", "-r", "25", "-i", raw.Name(),
		"-threads", "1", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-b:v", "2M", "-g", "50", "-f", "null", "-")
	frames := 0
	start := time.Now()
	var out []*media.AccessUnit
	for b.Loop() {
		e, err := NewEncoder(EncoderConfig{Width: 1280, Height: 720, GOP: 50})
		if err != nil {
			b.Fatal(err)
		}
		for _, f := range src {
			if out, err = e.Encode(f, out[:0]); err != nil {
				b.Fatal(err)
			}
			frames++
		}
		e.Close()
	}
	report(b, frames, time.Since(start), cli)
}

func rssBytes(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		testenv.Unavailable(t, "no /proc/self/statm: "+err.Error())
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// Decoding 2000 frames (the clip eight times over, one decoder) keeps RSS flat: frames and packets go
// back to libavutil's pools.
func TestDecodeLoopRSSFlat(t *testing.T) {
	fx := streetClip(t)
	aus := readAUs(t, fx.path, fx.codec)
	d, err := NewDecoder(DecoderConfig{Codec: fx.codec, Accel: AccelSoftware})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var warm int64
	for pass := 0; pass < 8; pass++ {
		decodeAll(t, d, aus, func(*Frame) {})
		if pass == 0 {
			warm = rssBytes(t)
		}
	}
	grow := rssBytes(t) - warm
	t.Logf("%d frames; RSS after the first pass %d MiB, growth since %d KiB", d.Stats().Frames, warm>>20, grow>>10)
	if grow > 16<<20 {
		t.Fatalf("RSS grew %d MiB over 7 passes", grow>>20)
	}
}
