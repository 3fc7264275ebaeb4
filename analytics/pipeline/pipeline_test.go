package pipeline

import (
	"context"
	"image"
	"math"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"sightline/analytics"
	"sightline/analytics/onnx"
	"sightline/analytics/pool"
	"sightline/analytics/rules"
	"sightline/analytics/sampler"
	"sightline/codec"
	"sightline/filesource"
	"sightline/internal/testenv"
	"sightline/media"
)

// readClip returns the clip's access units with 25 fps timestamps, as a file or RTSP source writes them.
func readClip(t testing.TB, rel string) []*media.AccessUnit {
	t.Helper()
	path := testenv.Asset(t, rel)
	buf, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var aus []*media.AccessUnit
	for i, nalus := range filesource.SplitAccessUnits(media.CodecH264, media.SplitAnnexB(buf)) {
		pts := time.Duration(i) * 40 * time.Millisecond
		aus = append(aus, &media.AccessUnit{Codec: media.CodecH264, NALUs: nalus, PTS: pts, RTPTime: uint32(i * 3600),
			Keyframe: media.IsKeyframe(media.CodecH264, nalus)})
	}
	if len(aus) != 250 {
		t.Fatalf("%s: %d access units, want 250", rel, len(aus))
	}
	return aus
}

// run starts p on src, writes aus once the pipeline's reader is attached, waits until every sampled
// frame is handled, then stops it and returns its status.
func run(t *testing.T, p *Pipeline, src *media.Stream, aus []*media.AccessUnit, loops int) Status {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for src.Stats().Readers == 0 {
		if time.Now().After(deadline) {
			t.Fatal("pipeline never attached a reader")
		}
		time.Sleep(time.Millisecond)
	}
	var offset time.Duration
	for l := 0; l < loops; l++ {
		for _, au := range aus {
			c := *au
			c.PTS += offset
			c.RTPTime += uint32(offset / time.Second * 90000)
			c.Received = time.Now()
			src.Write(&c)
			// Keep the decoder's reader from overflowing (the test measures analytics, not drops).
			for src.Stats().Frames > p.Status().Decoded+40 {
				time.Sleep(time.Millisecond)
			}
		}
		offset += 10 * time.Second
	}
	want := uint64(len(aus) * loops)
	deadline = time.Now().Add(120 * time.Second)
	for {
		st := p.Status()
		if st.Decoded == want && st.Analysed+st.Dropped == st.Sampled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	return p.Status()
}

func collect(f *media.Fanout[*media.Meta]) (*media.FanoutReader[*media.Meta], func() []*media.Meta) {
	r := f.NewReader(100000)
	return r, func() []*media.Meta {
		var out []*media.Meta
		ctx, cancel := context.WithTimeout(context.Background(), 0)
		defer cancel()
		for {
			m, err := r.Read(ctx)
			if err != nil {
				return out
			}
			out = append(out, m)
		}
	}
}

// The codec letterbox configured by LetterboxConfig fills the detector's tensor as analytics.FillImage
// (the documented YOLOX pre-processing, used on still images) does: same placement, same channel order,
// pad and scale; values within rounding of the chroma interpolation.
func TestLetterboxAdapterAgreesWithFillImage(t *testing.T) {
	aus := readClip(t, "camera/cam_street_1280x720_25fps.h264")
	dec, err := codec.NewDecoder(codec.DecoderConfig{Codec: media.CodecH264, Accel: codec.AccelSoftware})
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	frames, err := dec.Decode(aus[0], nil)
	if err != nil || len(frames) != 1 {
		t.Fatalf("decode: %d frames, %v", len(frames), err)
	}
	f := frames[0]
	defer f.Release()
	// The frame as 8-bit RGB with the stream's own matrix (the clip signals BT.709, limited range;
	// image.YCbCr would assume BT.601 full range), chroma from the nearest sample: what an RGB decode
	// hands the still-image path.
	if !f.Color.BT709 || f.Color.FullRange {
		t.Fatalf("clip colorimetry %+v, the reference below assumes BT.709 limited range", f.Color)
	}
	img := image.NewRGBA(image.Rect(0, 0, f.Width, f.Height))
	to8 := func(v float64) uint8 { return uint8(max(0, min(255, math.Floor(v+0.5)))) }
	for y := 0; y < f.Height; y++ {
		for x := 0; x < f.Width; x++ {
			Y := (float64(f.Planes[0][y*f.Strides[0]+x]) - 16) * 255 / 219
			u := (float64(f.Planes[1][(y/2)*f.Strides[1]+x/2]) - 128) * 255 / 224
			v := (float64(f.Planes[2][(y/2)*f.Strides[2]+x/2]) - 128) * 255 / 224
			o := img.PixOffset(x, y)
			img.Pix[o], img.Pix[o+1], img.Pix[o+2], img.Pix[o+3] = to8(Y+1.5748*v), to8(Y-0.187324*u-0.468124*v), to8(Y+1.8556*u), 255
		}
	}
	specs := map[string]analytics.InputSpec{
		"yolox":  {Width: 416, Height: 416, Channels: 3, BGR: true, Scale: 1, Pad: 114, MaxBatch: 1},
		"yolov8": {Width: 640, Height: 640, Channels: 3, BGR: false, Scale: 1.0 / 255, Pad: 114, MaxBatch: 1},
	}
	for name, spec := range specs {
		t.Run(name, func(t *testing.T) {
			want := make([]float32, spec.Len())
			wantLB, err := analytics.FillImage(img, spec, want)
			if err != nil {
				t.Fatal(err)
			}
			lb, err := codec.NewLetterbox(LetterboxConfig(spec))
			if err != nil {
				t.Fatal(err)
			}
			got := make([]float32, spec.Len())
			place, err := lb.Apply(f, got)
			if err != nil {
				t.Fatal(err)
			}
			gotLB := ToLetterbox(place, f.Width, f.Height, spec)
			if gotLB != wantLB {
				t.Fatalf("letterbox %+v, analytics %+v", gotLB, wantLB)
			}
			var sum, worst float64
			for i := range got {
				d := math.Abs(float64(got[i]-want[i])) / float64(spec.Scale)
				sum += d
				worst = max(worst, d)
			}
			mean := sum / float64(len(got))
			// The pad (everything below the picture) must be exact.
			for c := 0; c < 3; c++ {
				i := c*spec.Width*spec.Height + (spec.Height-1)*spec.Width
				if got[i] != 114*spec.Scale || want[i] != 114*spec.Scale {
					t.Fatalf("pad channel %d: %v / %v", c, got[i], want[i])
				}
			}
			t.Logf("mean |codec - FillImage| %.3f, max %.0f (0-255 levels)", mean, worst)
			if mean > 0.5 {
				t.Fatalf("mean difference %.3f levels", mean)
			}
		})
	}
}

// Without a model the pipeline runs the motion detector: Metas with "motion" objects tracked with ids.
func TestMotionOnly(t *testing.T) {
	aus := readClip(t, "camera/cam_street_1280x720_25fps.h264")
	src := media.NewStream("street/raw")
	meta := media.NewFanout[*media.Meta]("street/meta")
	_, drain := collect(meta)
	var obs stages
	p, err := New(Config{Camera: "street", Source: src, Meta: meta, ReaderQueue: 300, Observe: obs.observe, Analysed: obs.add})
	if err != nil {
		t.Fatal(err)
	}
	st := run(t, p, src, aus, 1)
	metas := drain()
	t.Logf("status %+v", st)
	if st.Detector != DetectorMotion || st.Decoder == "" || st.Decoded != 250 || st.Sampled != 50 || st.Analysed != 50 || len(metas) != 50 {
		t.Fatalf("status %+v, %d metas", st, len(metas))
	}
	// Without a pool the motion detector is the inference stage; nothing is letterboxed.
	obs.mu.Lock()
	if obs.n[StageDecode] != 250 || obs.n[StageInference] != 50 || obs.n[StageTrack] != 50 || obs.n[StagePreprocess] != 0 ||
		obs.n[StageMotion] != 0 || obs.analysed != 50 {
		t.Errorf("observed %v, %d analysed", obs.n, obs.analysed)
	}
	obs.mu.Unlock()
	objs := 0
	for i, m := range metas {
		if m.Camera != "street" || m.PTS != time.Duration(i)*200*time.Millisecond || m.RTPTime != uint32(i*18000) || m.CapturedAt.IsZero() {
			t.Fatalf("meta %d: %+v", i, m)
		}
		for _, o := range m.Objects {
			if o.Label != "motion" || o.ID == 0 {
				t.Fatalf("object %+v", o)
			}
			objs++
		}
	}
	if objs == 0 {
		t.Fatal("people walk in the clip, yet no motion")
	}
	// Predict gives the overlay the last analysed frame's live tracks, moved to a later time.
	last := metas[len(metas)-1]
	ids := map[int64]bool{}
	for _, o := range last.Objects {
		ids[o.ID] = true
	}
	pred := p.Predict(last.PTS + 40*time.Millisecond)
	for _, tr := range pred {
		if !ids[tr.ID] {
			t.Fatalf("predicted track %d is not in the last meta %+v", tr.ID, last.Objects)
		}
	}
	t.Logf("%d objects in the last meta, %d predicted", len(last.Objects), len(pred))
}

// Keyframe-only mode decodes and analyses the IDRs only (one a second in the clip).
func TestKeyframesOnly(t *testing.T) {
	aus := readClip(t, "camera/cam_street_1280x720_25fps.h264")
	src := media.NewStream("street/raw")
	p, err := New(Config{Camera: "street", Source: src, ReaderQueue: 300, Sampler: sampler.Config{KeyframesOnly: true}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	for src.Stats().Readers == 0 {
		time.Sleep(time.Millisecond)
	}
	for _, au := range aus {
		src.Write(au)
	}
	deadline := time.Now().Add(30 * time.Second)
	for p.Status().Analysed < 10 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if st := p.Status(); st.Decoded != 10 || st.Sampled != 10 || st.Analysed != 10 || !st.KeyframesOnly {
		t.Fatalf("status %+v", st)
	}
}

// The camera's stream writer never waits for analytics: with a pipeline that cannot keep up (a reader
// queue of 5), writes stay immediate and the reader counts its drops.
func TestSlowAnalyticsNeverBlocksTheStream(t *testing.T) {
	aus := readClip(t, "camera/cam_street_1280x720_25fps.h264")
	src := media.NewStream("street/raw")
	p, err := New(Config{Camera: "street", Source: src, ReaderQueue: 5})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	for src.Stats().Readers == 0 {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	for l := 0; l < 4; l++ {
		for _, au := range aus {
			src.Write(au)
		}
	}
	el := time.Since(start)
	deadline := time.Now().Add(10 * time.Second)
	for p.Status().StreamDropped == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	st := p.Status()
	t.Logf("1000 writes in %v; %+v", el, st)
	if st.StreamDropped == 0 {
		t.Fatal("no drops counted")
	}
	if el > 5*time.Second {
		t.Fatalf("1000 writes took %v", el)
	}
}

type recorder struct {
	mu  sync.Mutex
	evs []rules.Event
	// Batches with the analysed frame attached and matching it (size, RTP time), and those without.
	framed, unframed, mismatched int
}

func (r *recorder) add(b EventBatch) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, b.Events...)
	switch {
	case b.Frame == nil:
		r.unframed++
	case b.Frame.Width != 1280 || b.Frame.Height != 720 || b.Frame.RTPTime != b.RTPTime || b.Frame.PTS != b.Events[0].PTS:
		r.mismatched++
	default:
		r.framed++
	}
}

// stages counts Observe and Analysed calls.
type stages struct {
	mu       sync.Mutex
	n        map[string]int
	negative int
	analysed int
	dets     int
}

func (s *stages) observe(stage string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == nil {
		s.n = map[string]int{}
	}
	s.n[stage]++
	if d < 0 {
		s.negative++
	}
}

func (s *stages) add(dets []analytics.Detection) {
	s.mu.Lock()
	s.analysed++
	s.dets += len(dets)
	s.mu.Unlock()
}

// The street clip through decoder → sampler → YOLOX-Nano on ONNX Runtime → tracker → rules.
func TestStreetClipTracksAndRules(t *testing.T) {
	aus := readClip(t, "camera/cam_street_1280x720_25fps.h264")
	det, err := onnx.New(onnx.Config{Library: testenv.ONNXLibrary(t), Model: testenv.Asset(t, "models/yolox_nano.onnx")})
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	pl, err := pool.New(pool.Config{Detectors: []analytics.Detector{det}, QueueLen: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	src := media.NewStream("street/raw")
	meta := media.NewFanout[*media.Meta]("street/meta")
	_, drain := collect(meta)
	var rec recorder
	var obs stages
	p, err := New(Config{Camera: "street", Source: src, Meta: meta, Events: rec.add, KeepEventFrames: true, Pool: pl, ReaderQueue: 300,
		Sampler: sampler.Config{FPS: 5}, Rules: streetRules, Observe: obs.observe, Analysed: obs.add})
	if err != nil {
		t.Fatal(err)
	}
	st := run(t, p, src, aus, 1)
	metas := drain()
	t.Logf("status %+v", st)
	if st.Detector != DetectorONNX || st.Sampled != 50 || st.Analysed != 50 || st.Dropped != 0 || len(metas) != 50 {
		t.Fatalf("status %+v, %d metas", st, len(metas))
	}
	// Every access unit is timed through the decoder; every analysed frame through the others.
	obs.mu.Lock()
	if obs.n[StageDecode] != len(aus) || obs.n[StagePreprocess] != 50 || obs.n[StageInference] != 50 ||
		obs.n[StageTrack] != 50 || obs.n[StageMotion] != 0 || obs.negative != 0 || obs.analysed != 50 || obs.dets == 0 {
		t.Errorf("observed %v (negative %d), %d analysed with %d detections; %d access units", obs.n, obs.negative,
			obs.analysed, obs.dets, len(aus))
	}
	obs.mu.Unlock()
	// Person tracks: their lifetimes and trajectories (bottom centre).
	type life struct {
		first, last, n int
		pts            [][2]float32
	}
	lives := map[int64]*life{}
	for i, m := range metas {
		for _, o := range m.Objects {
			if o.Label != "person" {
				continue
			}
			l := lives[o.ID]
			if l == nil {
				l = &life{first: i}
				lives[o.ID] = l
			}
			l.last, l.n = i, l.n+1
			l.pts = append(l.pts, [2]float32{o.Box[0] + o.Box[2]/2, o.Box[1] + o.Box[3]})
		}
	}
	long := 0
	for id, l := range lives {
		t.Logf("person %d: frames %d..%d (%d), path %.2f", id, l.first, l.last, l.n, l.pts)
		if l.last-l.first >= 40 {
			long++
		}
	}
	// An ID switch: a person track that begins, after the first frame, near where another one ended less
	// than 2 s (10 analysed frames) before.
	switches := 0
	for id, l := range lives {
		if l.first == 0 {
			continue
		}
		for oid, o := range lives {
			if oid == id || o.last >= l.first || l.first-o.last > 10 {
				continue
			}
			end, start := o.pts[len(o.pts)-1], l.pts[0]
			if math.Hypot(float64(end[0]-start[0]), float64(end[1]-start[1])) < 0.15 {
				t.Logf("ID switch? %d (ended frame %d at %.2f) -> %d (began frame %d at %.2f)", oid, o.last, end, id, l.first, start)
				switches++
				break
			}
		}
	}
	kinds := map[string]int{}
	for _, e := range rec.evs {
		t.Logf("event %s %s %s id %d %s at %v", e.Rule, e.Kind, e.Direction, e.ObjectID, e.Label, e.PTS)
		if e.Camera != "street" || e.Label != "person" || e.ObjectID == 0 || e.At.IsZero() {
			t.Fatalf("event %+v", e)
		}
		kinds[e.Rule+"/"+e.Kind+e.Direction]++
	}
	t.Logf("%d person tracks, %d spanning >= 40 of 50 analysed frames, %d ID switches; events %v", len(lives), long, switches, kinds)
	// Measured (YOLOX-Nano, ONNX Runtime 1.24.3, CPU): 13 person tracks, 4 spanning >= 40 frames, 4 ID
	// switches by the heuristic above (people occluded by the group and the sign post, a far-away person
	// at the left edge);
	// walkway 9 enter / 4 exit, crossing 1 a_to_b + 1 b_to_a. The bounds are loose.
	if long < 3 {
		t.Errorf("only %d person tracks persist over >= 40 of 50 frames", long)
	}
	if switches > 5 || len(lives) > 20 {
		t.Errorf("%d ID switches, %d person tracks", switches, len(lives))
	}
	if kinds["walkway/enter"] < 4 || kinds["walkway/exit"] < 1 {
		t.Errorf("walkway events %v", kinds)
	}
	if kinds["crossing/crossa_to_b"] < 1 || kinds["crossing/crossb_to_a"] < 1 {
		t.Errorf("crossing events %v: want both directions", kinds)
	}
	if int(st.Events) != len(rec.evs) {
		t.Errorf("status counts %d events, %d delivered", st.Events, len(rec.evs))
	}
	// KeepEventFrames: every batch carries its own frame (the snapshot source).
	if rec.framed == 0 || rec.unframed != 0 || rec.mismatched != 0 {
		t.Errorf("event batches: %d with their frame, %d without, %d with another frame", rec.framed, rec.unframed, rec.mismatched)
	}
}

// The example rules: a zone over the walkway and a line across it.
var streetRules = []rules.Config{
	{ID: "walkway", Type: rules.TypeZone, Polygon: [][2]float64{{0.1, 0.5}, {0.9, 0.5}, {0.9, 1}, {0.1, 1}}, Classes: []string{"person"}},
	{ID: "crossing", Type: rules.TypeLine, Line: [][2]float64{{0.5, 0}, {0.5, 1}}, Classes: []string{"person"}},
}

func TestNoGoroutineLeft(t *testing.T) {
	before := runtime.NumGoroutine()
	src := media.NewStream("x")
	p, err := New(Config{Camera: "x", Source: src})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	for src.Stats().Readers == 0 {
		time.Sleep(time.Millisecond)
	}
	src.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p.Status().State != "stopped" {
		t.Fatalf("state %q", p.Status().State)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines, %d before", n, before)
	}
}

func TestConfigErrors(t *testing.T) {
	src := media.NewStream("x")
	bad := []Config{
		{Camera: "x"},
		{Camera: "x", Source: src, Sampler: sampler.Config{FPS: -1}},
		{Camera: "x", Source: src, Accel: "quantum"},
		{Camera: "x", Source: src, Rules: []rules.Config{{ID: "a", Type: "zone"}}},
		{Camera: "x", Source: src, MinScore: 1.5},
		{Camera: "x", Source: src, MinScore: float32(math.NaN())},
	}
	for i, c := range bad {
		if _, err := New(c); err == nil {
			t.Errorf("config %d accepted", i)
		}
	}
}

// A camera's Classes and MinScore keep only its wanted detections, and leave the detector's slice alone.
func TestCameraDetectionFilter(t *testing.T) {
	dets := []analytics.Detection{
		{Class: 0, Label: "person", Score: 0.9},
		{Class: 2, Label: "car", Score: 0.8},
		{Class: 0, Label: "person", Score: 0.4},
		{Class: 16, Label: "dog", Score: 0.95},
	}
	orig := slices.Clone(dets)
	cases := []struct {
		classes []string
		min     float32
		want    []int // indexes into dets
	}{
		{nil, 0, []int{0, 1, 2, 3}},
		{[]string{"person"}, 0, []int{0, 2}},
		{nil, 0.5, []int{0, 1, 3}},
		{[]string{"person", "dog"}, 0.5, []int{0, 3}},
		{[]string{"bicycle"}, 0, nil},
	}
	for _, c := range cases {
		p, err := New(Config{Camera: "x", Source: media.NewStream("x"), Classes: c.classes, MinScore: c.min})
		if err != nil {
			t.Fatal(err)
		}
		got := p.keep(dets)
		var want []analytics.Detection
		for _, i := range c.want {
			want = append(want, dets[i])
		}
		if len(got) != len(want) || (len(got) > 0 && !slices.Equal(got, want)) {
			t.Errorf("classes %v min %v: kept %+v, want %+v", c.classes, c.min, got, want)
		}
		if !slices.Equal(dets, orig) {
			t.Fatalf("classes %v min %v: the detector's slice changed", c.classes, c.min)
		}
	}
}
