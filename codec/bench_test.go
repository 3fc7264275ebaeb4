package codec

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"sightline/internal/testenv"
	"sightline/media"
)

var rtimeRE = regexp.MustCompile(`rtime=([0-9.]+)s`)

// ffmpegFPS runs the FFmpeg CLI once with -benchmark and returns frames per second of its real time
// (decoding/encoding plus the CLI's own start-up, demuxing and null muxing).
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
	return float64(frames) / rt
}

// sideBySide runs the CLI and our code alternately, once each per benchmark iteration (so both see the
// same machine load), and reports the medians: fps (ours), ffmpeg_fps, and x_ffmpeg = their ratio.
// ours does the same work once and returns how many frames it produced. Use -benchtime Nx with N >= 5.
func sideBySide(b *testing.B, frames int, cliArgs []string, ours func() int) {
	var us, them []float64
	for b.Loop() {
		them = append(them, ffmpegFPS(b, frames, cliArgs...))
		start := time.Now()
		n := ours()
		us = append(us, float64(n)/time.Since(start).Seconds())
	}
	mu, mt := median(us), median(them)
	b.Logf("ffmpeg %s\n  ours fps %.0f, cli fps %.0f (medians of %d alternating runs; ours %v; cli %v)",
		strings.Join(cliArgs, " "), mu, mt, len(us), rounded(us), rounded(them))
	b.ReportMetric(mu, "fps")
	b.ReportMetric(mt, "ffmpeg_fps")
	b.ReportMetric(mu/mt, "x_ffmpeg")
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func rounded(v []float64) []int {
	r := make([]int, len(v))
	for i, x := range v {
		r[i] = int(x + 0.5)
	}
	return r
}

// benchDecode decodes path with one thread, as `ffmpeg -threads 1 -i F -f null -` does (the CLI's
// decoder gets no option we do not set: -threads 1 is its thread count, thread_type, flags2,
// skip_loop_filter and skip_frame stay at libavcodec's defaults in both; we add err_recognition=explode,
// which only changes what happens on damaged input). Each run opens a fresh decoder, as each CLI run does.
func benchDecode(b *testing.B, path string, letterbox bool) {
	aus := readAUs(b, path, media.CodecH264)
	args := []string{"-threads", "1", "-i", path}
	if letterbox {
		args = append(args, "-vf", "scale=416:416", "-pix_fmt", "rgb24")
	}
	var lb *Letterbox
	var tensor []float32
	if letterbox {
		lb, _ = NewLetterbox(LetterboxConfig{Width: 416, Height: 416, Pad: 114})
		tensor = make([]float32, lb.TensorLen())
	}
	sideBySide(b, len(aus), append(args, "-f", "null", "-"), func() int {
		frames := 0
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
		return frames
	})
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
	cli := []string{"-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", "1280x720", "-r", "25", "-i", raw.Name(),
		"-threads", "1", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-b:v", "2M", "-g", "50", "-f", "null", "-"}
	var out []*media.AccessUnit
	sideBySide(b, len(src), cli, func() int {
		e, err := NewEncoder(EncoderConfig{Width: 1280, Height: 720, GOP: 50})
		if err != nil {
			b.Fatal(err)
		}
		for _, f := range src {
			if out, err = e.Encode(f, out[:0]); err != nil {
				b.Fatal(err)
			}
		}
		e.Close()
		return len(src)
	})
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

// A long decode -> encode loop keeps RSS flat: 20,000 frames (a generated 320x240 High clip with
// B-frames, looped through one decoder, every picture re-encoded by one libx264 encoder, an IDR forced
// every 100 frames) grow RSS by less than 8 MiB after a 2,000-frame warm-up. Small frames keep the loop
// to seconds; the per-frame C allocations (packets, frame references, encoder input references, output
// packets copied to Go) are the same at any size. Skipped with -short.
func TestDecodeEncodeLoopRSSFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("20k-frame loop; runs without -short")
	}
	path := genFixture(t, t.TempDir(), "small.h264", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
		"-frames:v", "250", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-profile:v", "high", "-bf", "2", "-g", "50", "-f", "h264")
	aus := readAUs(t, path, media.CodecH264)
	d, err := NewDecoder(DecoderConfig{Codec: media.CodecH264, Accel: AccelSoftware})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	e, err := NewEncoder(EncoderConfig{Width: 320, Height: 240, BitrateBps: 500_000, GOP: 50})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	const total, warmup, every = 20000, 2000, 2000
	rss := func() int64 {
		runtime.GC()
		debug.FreeOSMemory() // Go's own garbage back to the OS, so RSS shows C memory
		return rssBytes(t)
	}
	var (
		frames  []*Frame
		out     []*media.AccessUnit
		n       int
		warm    int64
		samples []string
		pts     time.Duration
	)
	start := time.Now()
	for n < total {
		for _, au := range aus {
			frames, err = d.Decode(au, frames[:0])
			if err != nil {
				t.Fatalf("decode at frame %d: %v", n, err)
			}
			for _, f := range frames {
				pts += 40 * time.Millisecond
				f.PTS = pts
				if n%100 == 99 {
					e.ForceKeyframe()
				}
				if out, err = e.Encode(f, out[:0]); err != nil {
					t.Fatalf("encode frame %d: %v", n, err)
				}
				f.Release()
				if len(out) != 1 {
					t.Fatalf("frame %d: %d access units", n, len(out))
				}
				n++
				if n%every == 0 {
					r := rss()
					if n == warmup {
						warm = r
					}
					samples = append(samples, fmt.Sprintf("%dk:%dMiB", n/1000, r>>20))
				}
			}
		}
		if frames, err = d.Flush(frames[:0]); err != nil {
			t.Fatal(err)
		}
		for _, f := range frames {
			f.Release() // the last pictures of a pass are not encoded; PTS stay increasing
		}
	}
	grow := rss() - warm
	t.Logf("%d frames decoded and encoded in %v; RSS at every 2k frames: %s; growth after warm-up %d KiB",
		n, time.Since(start).Round(time.Millisecond), strings.Join(samples, " "), grow>>10)
	if grow > 8<<20 {
		t.Fatalf("RSS grew %d MiB after warm-up", grow>>20)
	}
}
