package codec

import (
	"math"
	"math/rand"
	"os"
	"os/exec"
	"testing"

	"sightline/internal/testenv"
	"sightline/media"
)

// refLetterbox is the letterbox written straight from the model's documented pre-processing, one step
// at a time: the independent reference for Letterbox.Apply. First the whole frame becomes an 8-bit RGB
// image (chroma sampled bilinearly at each pixel's position with MPEG-2 "left" siting, i.e. chroma
// sample k at luma x = 2k, y = 2k + 1/2; the frame's matrix, BT.601 or BT.709, limited or full range;
// clamped and rounded to 0..255),
// then that image is resized bilinearly on pixel centres (OpenCV INTER_LINEAR geometry) and rounded.
func refLetterbox(f *Frame, W, H int, center bool, bgr bool, pad float64) []float32 {
	w, h := f.Width, f.Height
	sample := func(p []byte, stride, pw, ph int, x, y float64) float64 {
		x, y = math.Max(0, x), math.Max(0, y)
		x0, y0 := int(x), int(y)
		x0, y0 = min(x0, pw-1), min(y0, ph-1)
		fx, fy := x-float64(x0), y-float64(y0)
		x1, y1 := x0+1, y0+1
		if x1 >= pw {
			x1, fx = pw-1, 0
		}
		if y1 >= ph {
			y1, fy = ph-1, 0
		}
		at := func(x, y int) float64 { return float64(p[y*stride+x]) }
		top := at(x0, y0)*(1-fx) + at(x1, y0)*fx
		bot := at(x0, y1)*(1-fx) + at(x1, y1)*fx
		return top*(1-fy) + bot*fy
	}
	round := func(v float64) float64 { return math.Floor(math.Min(255, math.Max(0, v)) + 0.5) }
	kr, kb := 0.299, 0.114
	if f.Color.BT709 {
		kr, kb = 0.2126, 0.0722
	}
	// Step 1: the full-size 8-bit RGB image.
	rgb := make([][3]float64, w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			Y := float64(f.Planes[0][y*f.Strides[0]+x])
			U := sample(f.Planes[1], f.Strides[1], (w+1)/2, (h+1)/2, float64(x)/2, (float64(y)-0.5)/2)
			V := sample(f.Planes[2], f.Strides[2], (w+1)/2, (h+1)/2, float64(x)/2, (float64(y)-0.5)/2)
			yl := (Y - 16) * (255.0 / 219)
			cb, cr := (U-128)*(255.0/224), (V-128)*(255.0/224)
			if f.Color.FullRange {
				yl, cb, cr = Y, U-128, V-128
			}
			rgb[y*w+x] = [3]float64{
				round(yl + 2*(1-kr)*cr),
				round(yl - (kb*2*(1-kb)*cb+kr*2*(1-kr)*cr)/(1-kr-kb)),
				round(yl + 2*(1-kb)*cb),
			}
		}
	}
	// Step 2: bilinear resize of that image into the canvas.
	r := math.Min(float64(W)/float64(w), float64(H)/float64(h))
	dw, dh := int(float64(w)*r), int(float64(h)*r)
	ox, oy := 0, 0
	if center {
		ox, oy = (W-dw)/2, (H-dh)/2
	}
	tap := func(i, n, d int) (int, int, float64) { // OpenCV: fx = (dx+0.5)*scale - 0.5, scale = n/d

		s := math.Max(0, (float64(i)+0.5)*(float64(n)/float64(d))-0.5)
		i0 := min(int(s), n-1)
		if i0+1 >= n {
			return i0, i0, 0
		}
		return i0, i0 + 1, s - float64(i0)
	}
	out := make([]float32, 3*W*H)
	for y := 0; y < H; y++ {
		for x := 0; x < W; x++ {
			c := [3]float64{pad, pad, pad}
			if dx, dy := x-ox, y-oy; dx >= 0 && dy >= 0 && dx < dw && dy < dh {
				x0, x1, fx := tap(dx, w, dw)
				y0, y1, fy := tap(dy, h, dh)
				for k := range c {
					top := rgb[y0*w+x0][k] + (rgb[y0*w+x1][k]-rgb[y0*w+x0][k])*fx
					bot := rgb[y1*w+x0][k] + (rgb[y1*w+x1][k]-rgb[y1*w+x0][k])*fx
					c[k] = math.Floor(top + (bot-top)*fy + 0.5)
				}
			}
			if bgr {
				c[0], c[2] = c[2], c[0]
			}
			for k := range c {
				out[k*W*H+y*W+x] = float32(c[k])
			}
		}
	}
	return out
}

func syntheticFrame(t testing.TB, w, h int) *Frame {
	f, err := NewFrame(w, h, FormatI420)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 3; i++ {
		pw, ph := f.planeSize(i)
		for y := 0; y < ph; y++ {
			for x := 0; x < pw; x++ {
				v := (x*7+y*3+i*50)%256 ^ rng.Intn(16)
				f.Planes[i][y*f.Strides[i]+x] = byte(v)
			}
		}
	}
	return f
}

// On a synthetic frame (noise over gradients, sizes that exercise both letterbox axes, upscaling and
// edge clamping) Apply equals the from-the-definition reference exactly, pad included.
func TestLetterboxMatchesReference(t *testing.T) {
	cases := []struct {
		w, h, W, H int
		center     bool
		bgr        bool
	}{
		{1280, 720, 416, 416, false, true}, // YOLOX
		{640, 480, 416, 416, true, false},
		{200, 400, 320, 320, true, true},
		{96, 64, 416, 416, false, true}, // upscaling
		{1920, 1080, 640, 384, true, false},
	}
	for _, c := range cases {
		f := syntheticFrame(t, c.w, c.h)
		order := OrderRGB
		if c.bgr {
			order = OrderBGR
		}
		anchor := AnchorTopLeft
		if c.center {
			anchor = AnchorCenter
		}
		lb, err := NewLetterbox(LetterboxConfig{Width: c.W, Height: c.H, Anchor: anchor, Order: order, Pad: 114})
		if err != nil {
			t.Fatal(err)
		}
		dst := make([]float32, lb.TensorLen())
		for i := range dst {
			dst[i] = -1 // Apply must overwrite everything
		}
		p, err := lb.Apply(f, dst)
		if err != nil {
			t.Fatal(err)
		}
		want := refLetterbox(f, c.W, c.H, c.center, c.bgr, 114)
		bad := 0
		for i := range want {
			if dst[i] != want[i] {
				if bad < 5 {
					t.Errorf("%dx%d->%dx%d: value %d = %v, reference %v", c.w, c.h, c.W, c.H, i, dst[i], want[i])
				}
				bad++
			}
		}
		if bad > 0 {
			t.Fatalf("%d of %d values differ", bad, len(want))
		}
		t.Logf("%dx%d -> %dx%d: placement %+v, identical", c.w, c.h, c.W, c.H, p)
		f.Release()
	}
	if _, err := NewLetterbox(LetterboxConfig{}); err == nil {
		t.Fatal("empty canvas accepted")
	}
}

// On real decoded frames (first frame of both camera clips: street signals BT.709, person leaves it
// unsignalled, so BT.601; both limited range) the letterbox is within
// ±1 of the documented pipeline computed independently (refLetterbox: the whole frame to 8-bit RGB, then
// an INTER_LINEAR resize), everywhere, saturated colour edges included.
//
// As a check of matrix and range against code that is not ours, it is also compared with FFmpeg's own
// full-size BGR (libswscale, bilinear chroma, accurate rounding) resized here. That one is not held to ±1:
// FFmpeg 5.1's libswscale places 4:2:0 chroma half a luma row lower than MPEG-2 siting when it
// upsamples it (measured on this clip: its output is identical for in_v_chr_pos 64, 128 and unset, and
// equals a from-the-definition conversion with chroma at luma row 2k+1 to within ±3, while with the
// H.264 default siting 2k+1/2 it differs by up to 15 at vertical colour edges), so it is held to 97 %
// within ±1 and a mean difference under 0.5.
func TestLetterboxRealFrame(t *testing.T) {
	for _, clip := range []string{"camera/cam_street_1280x720_25fps.h264", "camera/cam_person_ccby_1280x720_25fps.h264"} {
		path := testenv.Asset(t, clip)
		aus := readAUs(t, path, media.CodecH264)[:1]
		d, err := NewDecoder(DecoderConfig{Codec: media.CodecH264, Accel: AccelSoftware})
		if err != nil {
			t.Fatal(err)
		}
		var frame *Frame
		decodeAll(t, d, aus, func(f *Frame) {
			if frame == nil {
				frame, _ = f.Ref()
			}
		})
		d.Close()
		if frame.Color.FullRange {
			t.Fatalf("%s: colorimetry %+v, expected limited range", clip, frame.Color)
		}
		const S = 416
		lb, _ := NewLetterbox(LetterboxConfig{Width: S, Height: S, Order: OrderBGR, Pad: 114})
		dst := make([]float32, lb.TensorLen())
		p, err := lb.Apply(frame, dst)
		if err != nil {
			t.Fatal(err)
		}
		want := refLetterbox(frame, S, S, false, true, 114)
		hist := map[int]int{}
		for i := range want {
			hist[int(math.Abs(float64(dst[i]-want[i])))]++
		}
		t.Logf("%s: |ours - documented pipeline| histogram over %d values: %v", clip, len(want), hist)
		for diff := range hist {
			if diff > 1 {
				t.Errorf("%s: values differ by %d from the documented pipeline (%v)", clip, diff, hist)
			}
		}
		ffmpegHist(t, path, frame, dst, p)
		frame.Release()
	}
}

// ffmpegHist compares a letterboxed BGR tensor with FFmpeg's full-size BGR of the first frame of path,
// resized with INTER_LINEAR here (see TestLetterboxRealFrame for why this is not held to ±1).
func ffmpegHist(t *testing.T, path string, frame *Frame, dst []float32, p Placement) {
	ffmpeg := testenv.LookPath(t, "ffmpeg", "ffmpeg")
	rgbPath := t.TempDir() + "/f.bgr"
	matrix := "bt601"
	if frame.Color.BT709 {
		matrix = "bt709"
	}
	cmd := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-i", path, "-frames:v", "1",
		"-vf", "scale=flags=bilinear+accurate_rnd+full_chroma_int+bitexact:in_range=tv:in_color_matrix="+matrix+":in_h_chr_pos=0:in_v_chr_pos=128,format=bgr24",
		"-f", "rawvideo", rgbPath)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	bgr, err := os.ReadFile(rgbPath)
	if err != nil {
		t.Fatal(err)
	}
	w, h := frame.Width, frame.Height
	if len(bgr) != w*h*3 {
		t.Fatalf("ffmpeg wrote %d bytes for %dx%d", len(bgr), w, h)
	}
	const S = 416
	hist := map[int]int{}
	for c := 0; c < 3; c++ {
		for y := 0; y < p.Height; y++ {
			sy := math.Max(0, (float64(y)+0.5)*(float64(h)/float64(p.Height))-0.5)
			y0 := int(sy)
			y1, fy := min(y0+1, h-1), sy-float64(y0)
			for x := 0; x < p.Width; x++ {
				sx := math.Max(0, (float64(x)+0.5)*(float64(w)/float64(p.Width))-0.5)
				x0 := int(sx)
				x1, fxx := min(x0+1, w-1), sx-float64(x0)
				at := func(x, y int) float64 { return float64(bgr[(y*w+x)*3+c]) }
				v := (at(x0, y0)*(1-fxx)+at(x1, y0)*fxx)*(1-fy) + (at(x0, y1)*(1-fxx)+at(x1, y1)*fxx)*fy
				hist[int(math.Abs(math.Floor(v+0.5)-float64(dst[c*S*S+y*S+x])))]++
			}
		}
	}
	total := 3 * p.Width * p.Height
	t.Logf("|ours - ffmpeg bgr24 + bilinear| histogram over %d values: %v", total, hist)
	within, sum := 0, 0
	for diff, n := range hist {
		if diff <= 1 {
			within += n
		}
		sum += diff * n
	}
	if mean := float64(sum) / float64(total); within*100 < total*97 || mean >= 0.5 {
		t.Fatalf("%.2f%% within ±1, mean difference %.3f (%v)", 100*float64(within)/float64(total), mean, hist)
	}
}

// Resize produces a smaller I420 frame whose luma mean matches the source's (area averaging).
func TestResizeThumbnail(t *testing.T) {
	f := syntheticFrame(t, 1280, 720)
	defer f.Release()
	f.PTS = 123
	var r Resizer
	defer r.Close()
	for _, sz := range [][2]int{{320, 180}, {160, 90 + 1}} {
		th, err := r.Resize(f, sz[0], sz[1])
		if sz[1]%2 != 0 {
			if err == nil {
				t.Fatal("odd height accepted")
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if th.Width != sz[0] || th.Height != sz[1] || th.Format != FormatI420 || th.PTS != 123 {
			t.Fatalf("thumbnail %+v", th)
		}
		mean := func(g *Frame) float64 {
			s := 0
			for y := 0; y < g.Height; y++ {
				for x := 0; x < g.Width; x++ {
					s += int(g.Planes[0][y*g.Strides[0]+x])
				}
			}
			return float64(s) / float64(g.Width*g.Height)
		}
		if a, b := mean(f), mean(th); math.Abs(a-b) > 1.5 {
			t.Fatalf("luma mean %v -> %v", a, b)
		}
		th.Release()
	}
}

// An NV12 frame (interleaved chroma, as hardware decoders hand down) letterboxes exactly as the same
// picture in I420.
func TestLetterboxNV12MatchesI420(t *testing.T) {
	src := syntheticFrame(t, 640, 360)
	defer src.Release()
	nv, err := NewFrame(640, 360, FormatNV12)
	if err != nil {
		t.Fatal(err)
	}
	defer nv.Release()
	for y := 0; y < 360; y++ {
		copy(nv.Planes[0][y*nv.Strides[0]:], src.Planes[0][y*src.Strides[0]:y*src.Strides[0]+640])
	}
	for y := 0; y < 180; y++ {
		for x := 0; x < 320; x++ {
			nv.Planes[1][y*nv.Strides[1]+2*x] = src.Planes[1][y*src.Strides[1]+x]
			nv.Planes[1][y*nv.Strides[1]+2*x+1] = src.Planes[2][y*src.Strides[2]+x]
		}
	}
	lb, _ := NewLetterbox(LetterboxConfig{Width: 416, Height: 416, Pad: 114})
	a, b := make([]float32, lb.TensorLen()), make([]float32, lb.TensorLen())
	if _, err := lb.Apply(src, a); err != nil {
		t.Fatal(err)
	}
	if _, err := lb.Apply(nv, b); err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("value %d: i420 %v, nv12 %v", i, a[i], b[i])
		}
	}
}
