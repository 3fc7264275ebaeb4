package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"sightline/analytics"
	"sightline/analytics/onnx"
	"sightline/analytics/pipeline"
	"sightline/analytics/pool"
	"sightline/analytics/sampler"
	"sightline/filesource"
	"sightline/media"
)

// camerasConfig: how many looped 720p clip cameras decode + detect at the sampling rate.
type camerasConfig struct {
	counts   []int
	duration time.Duration
	warmup   time.Duration
	fps      float64
	workers  int
	threads  int
	queue    int
	clips    []string
	model    string
	library  string
	json     bool
}

func (c camerasConfig) printsJSON() bool { return c.json }

func camerasFlags(args []string, stderr io.Writer) (camerasConfig, error) {
	fs := newFlagSet("cameras", stderr)
	n := fs.String("n", "4,8,10,12", "camera counts to run, one after another")
	c := camerasConfig{}
	fs.DurationVar(&c.duration, "duration", 20*time.Second, "measured time per camera count")
	fs.DurationVar(&c.warmup, "warmup", 3*time.Second, "unmeasured start per camera count")
	fs.Float64Var(&c.fps, "fps", 5, "sampling rate per camera")
	fs.IntVar(&c.workers, "workers", 2, "model sessions shared by all cameras (analytics.workers)")
	fs.IntVar(&c.threads, "threads", 1, "ONNX Runtime intra-op threads per session")
	fs.IntVar(&c.queue, "queue", pool.DefaultQueueLen, "per-camera inference queue (analytics.queueLen)")
	modelFlags(fs, &c.model, &c.library)
	fs.BoolVar(&c.json, "json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	var err error
	if c.counts, err = parseViewers(*n); err != nil {
		return c, fmt.Errorf("-n: %w", err)
	}
	c.clips = []string{defaultClip(), filepath.Join(assetsDir(), "camera", "cam_person_ccby_1280x720_25fps.h264")}
	return c, nil
}

type camerasRun struct {
	Cameras int `json:"cameras"`
	// Expected is duration x fps x cameras: the frames the sampler should choose.
	Expected uint64 `json:"expected"`
	Sampled  uint64 `json:"sampled"`
	Analysed uint64 `json:"analysed"`
	// Dropped sampled frames pushed out of the inference queue; StreamDropped access units the decoders'
	// readers lost (decoding fell behind).
	Dropped       uint64  `json:"dropped"`
	StreamDropped uint64  `json:"streamDropped"`
	PctOfSampled  float64 `json:"pctOfSampled"`
	PctOfExpected float64 `json:"pctOfExpected"`
	InferenceMs   float64 `json:"inferenceMsMean"`
	LatencyP50Ms  float64 `json:"latencyP50Ms"`
	LatencyP99Ms  float64 `json:"latencyP99Ms"`
	ProcessCPU    float64 `json:"processCpuPct"`
	MachineCPU    float64 `json:"machineCpuPct"`
}

func runCameras(ctx context.Context, c camerasConfig, progress io.Writer) ([]camerasRun, error) {
	if err := checkModel(c.model, c.library, c.clips...); err != nil {
		return nil, err
	}
	var dets []analytics.Detector
	defer func() {
		for _, d := range dets {
			d.Close()
		}
	}()
	for i := 0; i < c.workers; i++ {
		d, err := onnx.New(onnx.Config{Library: c.library, Model: c.model, IntraOpThreads: c.threads})
		if err != nil {
			return nil, err
		}
		dets = append(dets, d)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var out []camerasRun
	for _, n := range c.counts {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		fmt.Fprintf(progress, "cameras: %d cameras, %v warm-up + %v...\n", n, c.warmup, c.duration)
		r, err := runCamerasOnce(ctx, c, n, dets, quiet)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

func runCamerasOnce(ctx context.Context, c camerasConfig, n int, dets []analytics.Detector, log *slog.Logger) (camerasRun, error) {
	pl, err := pool.New(pool.Config{Detectors: dets, QueueLen: c.queue})
	if err != nil {
		return camerasRun{}, err
	}
	defer pl.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	type cam struct {
		p    *pipeline.Pipeline
		meta *media.FanoutReader[*media.Meta]
	}
	cams := make([]cam, n)
	var latMu sync.Mutex
	var lat []time.Duration
	var infSum time.Duration
	var infN int
	measuring := make(chan struct{})
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("cam%d", i)
		raw := media.NewStream(id + "/raw")
		meta := media.NewFanout[*media.Meta](id + "/meta")
		src := filesource.New(filesource.Config{Path: c.clips[i%len(c.clips)], Loop: true, Logger: log}, raw)
		p, err := pipeline.New(pipeline.Config{Camera: id, Source: raw, Meta: meta, Pool: pl, Sampler: sampler.Config{FPS: c.fps}, Logger: log})
		if err != nil {
			return camerasRun{}, err
		}
		cams[i] = cam{p: p, meta: meta.NewReader(1000)}
		wg.Add(3)
		go func() { defer wg.Done(); p.Run(ctx) }()
		go func() {
			defer wg.Done()
			// Start the file after the pipeline's reader is attached.
			for raw.Stats().Readers == 0 && ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
			// Stagger the cameras over one frame interval, as real cameras are.
			time.Sleep(time.Duration(i) * 40 * time.Millisecond / time.Duration(n))
			src.Run(ctx)
		}()
		go func(r *media.FanoutReader[*media.Meta]) {
			defer wg.Done()
			for {
				m, err := r.Read(ctx)
				if err != nil {
					return
				}
				select {
				case <-measuring:
				default:
					continue
				}
				latMu.Lock()
				lat = append(lat, time.Since(m.CapturedAt))
				infSum += m.Inference
				infN++
				latMu.Unlock()
			}
		}(cams[i].meta)
	}
	if err := sleepCtx(ctx, c.warmup); err != nil {
		return camerasRun{}, err
	}
	before := make([]pipeline.Status, n)
	for i, cm := range cams {
		before[i] = cm.p.Status()
	}
	close(measuring)
	cpu, machine := startCPU(os.Getpid()), startMachine()
	if err := sleepCtx(ctx, c.duration); err != nil {
		return camerasRun{}, err
	}
	r := camerasRun{Cameras: n, Expected: uint64(c.duration.Seconds() * c.fps * float64(n)),
		ProcessCPU: cpu.percent(), MachineCPU: machine.percent()}
	for i, cm := range cams {
		st := cm.p.Status()
		r.Sampled += st.Sampled - before[i].Sampled
		r.Analysed += st.Analysed - before[i].Analysed
		r.Dropped += st.Dropped - before[i].Dropped
		r.StreamDropped += st.StreamDropped - before[i].StreamDropped
	}
	if r.Sampled > 0 {
		r.PctOfSampled = 100 * float64(r.Analysed) / float64(r.Sampled)
	}
	if r.Expected > 0 {
		r.PctOfExpected = 100 * float64(r.Analysed) / float64(r.Expected)
	}
	latMu.Lock()
	if infN > 0 {
		r.InferenceMs = float64(infSum.Microseconds()) / 1000 / float64(infN)
	}
	r.LatencyP50Ms = pctMs(lat, 0.50)
	r.LatencyP99Ms = pctMs(lat, 0.99)
	latMu.Unlock()
	return r, nil
}

func pctMs(d []time.Duration, q float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	for i := 1; i < len(s); i++ { // insertion sort is fine for a few thousand values
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return float64(s[int(q*float64(len(s)-1))].Microseconds()) / 1000
}

func printCameras(w io.Writer, c camerasConfig, runs []camerasRun, asJSON bool) {
	if asJSON {
		printJSON(w, runs)
		return
	}
	fmt.Fprintf(w, "720p clip cameras (looped in real time), decode every frame + YOLOX-Nano at %g fps; %d model sessions x %d thread(s), queue %d; %d CPUs\n",
		c.fps, c.workers, c.threads, c.queue, runtime.NumCPU())
	fmt.Fprintf(w, "%8s %9s %8s %9s %8s %10s %12s %12s %8s %8s %8s %8s\n", "cameras", "expected", "sampled", "analysed",
		"dropped", "streamDrop", "%ofSampled", "%ofExpected", "infMs", "p50ms", "p99ms", "cpu%")
	for _, r := range runs {
		fmt.Fprintf(w, "%8d %9d %8d %9d %8d %10d %12.2f %12.2f %8.1f %8.0f %8.0f %8.0f\n", r.Cameras, r.Expected, r.Sampled,
			r.Analysed, r.Dropped, r.StreamDropped, r.PctOfSampled, r.PctOfExpected, r.InferenceMs, r.LatencyP50Ms, r.LatencyP99Ms, r.ProcessCPU)
	}
	io.WriteString(w, "(%ofSampled = analysed / sampled; %ofExpected = analysed / (duration x fps x cameras); latency = capture to Meta)\n")
}
