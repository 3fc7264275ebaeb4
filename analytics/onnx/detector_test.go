package onnx

import (
	"context"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg"
	"log/slog"
	"math"
	"os"
	"sort"
	"strings"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"sightline/analytics"
	"sightline/internal/testenv"
)

func loadImage(t testing.TB, rel string) image.Image {
	t.Helper()
	f, err := os.Open(testenv.Asset(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		t.Fatalf("decode %s: %v", rel, err)
	}
	return img
}

func newTestDetector(t testing.TB, cfg Config) *Detector {
	t.Helper()
	cfg.Library = testenv.ONNXLibrary(t)
	cfg.Model = testenv.Asset(t, "models/yolox_nano.onnx")
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func countByLabel(dets []analytics.Detection) map[string]int {
	m := map[string]int{}
	for _, d := range dets {
		m[d.Label]++
	}
	return m
}

func describe(dets []analytics.Detection) string {
	var b strings.Builder
	for _, d := range dets {
		fmt.Fprintf(&b, "\n  %-8s %.3f [%.3f %.3f %.3f %.3f]", d.Label, d.Score, d.Box.X, d.Box.Y, d.Box.W, d.Box.H)
	}
	return b.String()
}

// TestImagesMatchProvenance runs bus.jpg and zidane.jpg through the real model on the real ONNX Runtime
// and checks the classes and counts PROVENANCE.md documents, and every box against a reference made by
// the independent pipeline below (its own letterbox, a bare session, its own decode and NMS).
func TestImagesMatchProvenance(t *testing.T) {
	d := newTestDetector(t, Config{ScoreThreshold: 0.25})
	d30 := newTestDetector(t, Config{ScoreThreshold: 0.3})
	if d.Layout() != LayoutYOLOX || d.Provider() != ProviderCPU {
		t.Fatalf("layout %q provider %q, want yolox on cpu", d.Layout(), d.Provider())
	}
	if v := RuntimeVersion(); v != "1.24.3" {
		t.Logf("ONNX Runtime %s (PROVENANCE.md checked 1.24.3)", v)
	}
	spec := d.InputSpec()
	if spec.Width != 416 || spec.Height != 416 || !spec.BGR || spec.Scale != 1 || spec.Pad != 114 || spec.MaxBatch != 1 {
		t.Fatalf("input spec %+v", spec)
	}
	// PROVENANCE.md lists zidane.jpg's objects "at score >= 0.25" as 2 people and a tie, but the documented
	// pipeline also keeps two weak ties there (0.28 and 0.25, with Go's JPEG decoder and with FFmpeg's
	// alike); at 0.3 it is exactly the documented set, so zidane.jpg is checked at 0.3.
	cases := []struct {
		image string
		det   *Detector
		thr   float64
		want  map[string]int
		minSc map[string][]float32 // lowest acceptable score of each expected object, best first
	}{
		{"images/bus.jpg", d, 0.25, map[string]int{"bus": 1, "person": 4}, map[string][]float32{"bus": {0.85}, "person": {0.65, 0.65, 0.65, 0.2}}},
		{"images/zidane.jpg", d30, 0.3, map[string]int{"person": 2, "tie": 1}, map[string][]float32{"person": {0.8, 0.75}, "tie": {0.4}}},
	}
	for _, c := range cases {
		t.Run(c.image, func(t *testing.T) {
			img := loadImage(t, c.image)
			res, err := analytics.DetectImage(context.Background(), c.det, img)
			if err != nil {
				t.Fatal(err)
			}
			got := countByLabel(res.Detections)
			t.Logf("%s: %d detections in %v:%s", c.image, len(res.Detections), res.Inference, describe(res.Detections))
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("classes and counts %v, want %v", got, c.want)
			}
			for label, mins := range c.minSc {
				i := 0
				for _, det := range res.Detections { // sorted by score
					if det.Label == label {
						if det.Score < mins[i] {
							t.Errorf("%s #%d score %.3f < %.3f", label, i, det.Score, mins[i])
						}
						i++
					}
				}
			}

			ref := referenceDetect(t, img, c.thr, 0.45)
			if len(ref) != len(res.Detections) {
				t.Fatalf("reference found %d objects, detector %d:%s", len(ref), len(res.Detections), describe(ref))
			}
			b := img.Bounds()
			used := make([]bool, len(res.Detections))
			for _, r := range ref {
				best, bi := float32(0), -1
				for i, det := range res.Detections {
					if used[i] || det.Class != r.Class {
						continue
					}
					if iou := analytics.IoU(det.Box, r.Box); iou > best {
						best, bi = iou, i
					}
				}
				if bi < 0 || best < 0.9 {
					t.Errorf("reference %s %.3f at %.0f,%.0f has no detector box within IoU 0.9 (best %.3f)", r.Label, r.Score,
						r.Box.X*float32(b.Dx()), r.Box.Y*float32(b.Dy()), best)
					continue
				}
				used[bi] = true
				if math.Abs(float64(res.Detections[bi].Score-r.Score)) > 0.05 {
					t.Errorf("%s score %.3f, reference %.3f", r.Label, res.Detections[bi].Score, r.Score)
				}
			}
		})
	}
}

// referenceDetect is an independent implementation of PROVENANCE.md's pipeline: it shares no code with
// the package (its own letterbox through image.At, a bare AdvancedSession, its own decode and NMS).
func referenceDetect(t *testing.T, img image.Image, thr, nmsIoU float64) []analytics.Detection {
	t.Helper()
	const size = 416
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	r := math.Min(size/float64(h), size/float64(w))
	nw, nh := int(float64(w)*r), int(float64(h)*r)
	input := make([]float32, 3*size*size)
	for i := range input {
		input[i] = 114
	}
	pix := func(x, y int) [3]float64 { // B, G, R
		cr, cg, cb, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
		return [3]float64{float64(cb >> 8), float64(cg >> 8), float64(cr >> 8)}
	}
	src := func(d, n, sn int) (int, int, float64) {
		s := (float64(d)+0.5)*float64(sn)/float64(n) - 0.5
		s = math.Max(s, 0)
		i := int(s)
		if i >= sn-1 {
			return sn - 1, sn - 1, 0
		}
		return i, i + 1, s - float64(i)
	}
	for y := 0; y < nh; y++ {
		y0, y1, fy := src(y, nh, h)
		for x := 0; x < nw; x++ {
			x0, x1, fx := src(x, nw, w)
			a, bb, c, dd := pix(x0, y0), pix(x1, y0), pix(x0, y1), pix(x1, y1)
			for ch := 0; ch < 3; ch++ {
				v := (a[ch]*(1-fx)+bb[ch]*fx)*(1-fy) + (c[ch]*(1-fx)+dd[ch]*fx)*fy
				input[ch*size*size+y*size+x] = float32(v)
			}
		}
	}
	in, err := ort.NewTensor(ort.NewShape(1, 3, size, size), input)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Destroy()
	out, err := ort.NewEmptyTensor[float32](ort.NewShape(1, 3549, 85))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Destroy()
	sess, err := ort.NewAdvancedSession(testenv.Asset(t, "models/yolox_nano.onnx"), []string{"images"}, []string{"output"}, []ort.Value{in}, []ort.Value{out}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Destroy()
	if err := sess.Run(); err != nil {
		t.Fatal(err)
	}
	o := out.GetData()
	type cand struct {
		cls            int
		score          float64
		x1, y1, x2, y2 float64
	}
	var cands []cand
	idx := 0
	for _, s := range []int{8, 16, 32} {
		g := size / s
		for gy := 0; gy < g; gy++ {
			for gx := 0; gx < g; gx++ {
				row := o[idx*85 : idx*85+85]
				idx++
				cls, best := 0, 0.0
				for c := 0; c < 80; c++ {
					if v := float64(row[5+c]); v > best {
						cls, best = c, v
					}
				}
				score := float64(row[4]) * best
				if score < thr {
					continue
				}
				cx, cy := (float64(row[0])+float64(gx))*float64(s), (float64(row[1])+float64(gy))*float64(s)
				bw, bh := math.Exp(float64(row[2]))*float64(s), math.Exp(float64(row[3]))*float64(s)
				clip := func(v, hi float64) float64 { return math.Min(math.Max(v, 0), hi) }
				cands = append(cands, cand{cls, score, clip((cx-bw/2)/r, float64(w)), clip((cy-bh/2)/r, float64(h)),
					clip((cx+bw/2)/r, float64(w)), clip((cy+bh/2)/r, float64(h))})
			}
		}
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].score > cands[j].score })
	iou := func(a, b cand) float64 {
		ix := math.Max(0, math.Min(a.x2, b.x2)-math.Max(a.x1, b.x1))
		iy := math.Max(0, math.Min(a.y2, b.y2)-math.Max(a.y1, b.y1))
		in := ix * iy
		return in / ((a.x2-a.x1)*(a.y2-a.y1) + (b.x2-b.x1)*(b.y2-b.y1) - in)
	}
	var kept []cand
	for _, c := range cands {
		ok := true
		for _, k := range kept {
			if k.cls == c.cls && iou(k, c) > nmsIoU {
				ok = false
				break
			}
		}
		if ok {
			kept = append(kept, c)
		}
	}
	names := analytics.COCO80()
	dets := make([]analytics.Detection, len(kept))
	for i, k := range kept {
		dets[i] = analytics.Detection{Class: k.cls, Label: names[k.cls], Score: float32(k.score), Box: analytics.Box{
			X: float32(k.x1 / float64(w)), Y: float32(k.y1 / float64(h)), W: float32((k.x2 - k.x1) / float64(w)), H: float32((k.y2 - k.y1) / float64(h))}}
	}
	return dets
}

func TestUnavailableWithoutModelOrLibrary(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no library":    {Model: "/nonexistent.onnx"},
		"no model":      {Library: "/nonexistent.so"},
		"missing model": {Library: "/nonexistent.so", Model: "/nonexistent/yolox.onnx"},
	} {
		_, err := New(cfg)
		if !errors.Is(err, analytics.ErrUnavailable) {
			t.Errorf("%s: err = %v, want ErrUnavailable", name, err)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	lib := testenv.ONNXLibrary(t)
	model := testenv.Asset(t, "models/yolox_nano.onnx")
	for name, c := range map[string]struct {
		cfg  Config
		want string
	}{
		"wrong layout":   {Config{Layout: LayoutYOLOv8}, "not YOLOv8"},
		"unknown layout": {Config{Layout: "ssd"}, "unknown output layout"},
		"class count":    {Config{Classes: []string{"a", "b"}}, "2 class names configured, model has 80"},
		"class filter":   {Config{ClassFilter: []string{"unicorn"}}, `unknown class "unicorn"`},
		"provider":       {Config{Provider: "tpu"}, `unknown execution provider "tpu"`},
		"threshold":      {Config{ScoreThreshold: 2}, "must be in 0..1"},
	} {
		c.cfg.Library, c.cfg.Model = lib, model
		_, err := New(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", name, err, c.want)
		}
	}
}

func TestProviderFallsBackToCPU(t *testing.T) {
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	for _, p := range []string{ProviderCUDA, ProviderTensorRT} {
		d := newTestDetector(t, Config{Provider: p, Logger: log})
		// The npm build of ONNX Runtime is CPU-only: the session must fall back and say so.
		if d.Provider() != ProviderCPU {
			t.Logf("%s provider available here (%s)", p, d.Provider())
			continue
		}
		if !strings.Contains(logs.String(), "falling back to cpu") || !strings.Contains(logs.String(), "provider="+p) {
			t.Fatalf("no fallback log line for %s: %q", p, logs.String())
		}
	}
}

func TestClassFilterAndAgnosticNMS(t *testing.T) {
	img := loadImage(t, "images/bus.jpg")
	d := newTestDetector(t, Config{ScoreThreshold: 0.25, ClassFilter: []string{"person"}, ClassAgnosticNMS: true})
	res, err := analytics.DetectImage(context.Background(), d, img)
	if err != nil {
		t.Fatal(err)
	}
	if got := countByLabel(res.Detections); fmt.Sprint(got) != fmt.Sprint(map[string]int{"person": 4}) {
		t.Fatalf("filtered to person: %v", got)
	}
}

func TestDetectBadInput(t *testing.T) {
	d := newTestDetector(t, Config{})
	spec := d.InputSpec()
	lb, _ := analytics.NewLetterbox(640, 480, spec.Width, spec.Height)
	if _, err := d.Detect(context.Background(), []analytics.Input{{Tensor: make([]float32, 10), Letterbox: lb}}); err == nil {
		t.Fatal("short tensor accepted")
	}
	if _, err := d.Detect(context.Background(), []analytics.Input{{Tensor: make([]float32, spec.Len())}}); err == nil {
		t.Fatal("missing letterbox accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Detect(ctx, []analytics.Input{{Tensor: make([]float32, spec.Len()), Letterbox: lb}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
	// Several inputs on a batch-1 model run one by one, results in order.
	in := analytics.Input{Tensor: make([]float32, spec.Len()), Letterbox: lb}
	res, err := d.Detect(context.Background(), []analytics.Input{in, in, in})
	if err != nil || len(res) != 3 {
		t.Fatalf("3 inputs: %d results, %v", len(res), err)
	}
	d.Close()
	if _, err := d.Detect(context.Background(), []analytics.Input{in}); err == nil {
		t.Fatal("Detect after Close succeeded")
	}
}
