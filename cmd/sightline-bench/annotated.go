package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"sightline/analytics"
	"sightline/gateway"
	"sightline/media"
)

type annotatedConfig struct {
	clip          string
	fps           int
	loop          int
	gop           int
	analyticsFPS  float64
	duration      time.Duration
	warmup        time.Duration
	detectorDelay time.Duration
	model         string
	library       string
	saveJPEG      string
	outputFlags
}

func annotatedFlags(args []string, stderr io.Writer) (annotatedConfig, error) {
	c := annotatedConfig{}
	fs := newModeFlags("annotated", stderr, &c.outputFlags)
	fs.StringVar(&c.clip, "clip", defaultClip(), "Annex-B H.264 clip the stamped source is made from")
	fs.IntVar(&c.fps, "fps", 30, "publishing frame rate of the stamped source")
	fs.IntVar(&c.loop, "loop", 300, "frames in the stamped loop (its visual stamp is the position in the loop)")
	fs.IntVar(&c.gop, "gop", 30, "IDR interval of the stamped source, in frames (a camera's is about 1 s)")
	fs.Float64Var(&c.analyticsFPS, "analytics-fps", 5, "analysed frames per second (analytics.fps)")
	fs.DurationVar(&c.duration, "duration", 20*time.Second, "measurement window")
	fs.DurationVar(&c.warmup, "warmup", 3*time.Second, "unmeasured time after both viewers decoded their first frame")
	fs.DurationVar(&c.detectorDelay, "detector-delay", 0, "sleep before every inference (e.g. 200ms: video must not wait for it)")
	modelFlags(fs.FlagSet, &c.model, &c.library)
	fs.StringVar(&c.saveJPEG, "save-frame", "", "write the annotated track's 150th decoded picture to this JPEG file")
	if err := fs.parse(args); err != nil {
		return c, err
	}
	switch {
	case c.fps < 1 || c.fps > 120:
		return c, fmt.Errorf("-fps %d: want 1..120", c.fps)
	case c.loop < c.fps || c.loop > 3600:
		return c, fmt.Errorf("-loop %d: want %d..3600 (at least one second)", c.loop, c.fps)
	case c.gop < 1 || c.loop%c.gop != 0:
		return c, fmt.Errorf("-gop %d: want a divisor of -loop %d", c.gop, c.loop)
	}
	if err := checkDuration(c.duration); err != nil {
		return c, err
	}
	if c.detectorDelay < 0 || c.detectorDelay > 10*time.Second {
		return c, fmt.Errorf("-detector-delay %v: want [0, 10s]", c.detectorDelay)
	}
	return c, checkAnalyticsFPS(c.analyticsFPS)
}

// annotatedReader is one viewer's figures over the window.
type annotatedReader struct {
	Name      string `json:"name"`
	Published int    `json:"frames_published"`
	Frames    int    `json:"frames"`
	Lost      int    `json:"frames_lost"`
	// Duplicated pictures showed a frame index already seen; Unreadable ones had no intact visual stamp.
	Duplicated int `json:"frames_duplicated"`
	Unreadable int `json:"stamps_unreadable"`
	// Latency is picture decoded at the client - publish; Arrival is access unit complete - publish.
	Latency summary `json:"latency"`
	Arrival summary `json:"arrival"`
	// RTPConsistent of RTPChecked frames have the same (RTP timestamp - index x 90000/fps) as most.
	RTPChecked    int `json:"rtp_checked"`
	RTPConsistent int `json:"rtp_consistent"`
	// SEIMismatch counts frames whose stamp SEI index differs from the visual stamp's (raw track only).
	SEIChecked  int `json:"sei_checked,omitempty"`
	SEIMismatch int `json:"sei_mismatch,omitempty"`
	// Client-side losses: RTP packets missing, access units the decoding goroutine dropped, decode errors.
	RTPPacketsLost uint64 `json:"rtp_packets_lost"`
	DecoderDropped int    `json:"decoder_dropped"`
	DecodeErrors   int    `json:"decode_errors"`
}

type annotatedResult struct {
	Command       string            `json:"command"`
	Clip          string            `json:"clip"`
	Source        string            `json:"source"`
	DetectorDelay string            `json:"detector_delay"`
	Window        string            `json:"window"`
	Readers       []annotatedReader `json:"readers"`
	Added         summary           `json:"added"`
	GoalMet       bool              `json:"goal_met"`
	// Analytics over the window.
	AnalysedFPS       float64 `json:"analysed_fps"`
	SampledFPS        float64 `json:"sampled_fps"`
	InferenceMs       float64 `json:"inference_ms_last"`
	AnalyticsLatency  float64 `json:"analytics_latency_ms_last"`
	AnalyticsDropped  uint64  `json:"analytics_dropped"`
	ProcessCPUPercent float64 `json:"process_cpu_pct"`
	MachineCPUPercent float64 `json:"machine_cpu_pct"`
	LoadAverage       string  `json:"load_average_before"`
}

// runAnnotated publishes a visually stamped 720p loop in real time, runs Sightline with the model on it,
// and decodes the raw and the annotated WHEP tracks side by side, reading the stamp back from every
// decoded picture.
func runAnnotated(ctx context.Context, c annotatedConfig, progress io.Writer) (*annotatedResult, error) {
	if err := checkModel(c.model, c.library); err != nil {
		return nil, err
	}
	load := loadAverage()
	fmt.Fprintf(progress, "annotated: stamping and encoding %d frames of %s...\n", c.loop, c.clip)
	clip, err := buildStampedClip(c.clip, c.loop, c.fps, c.gop)
	if err != nil {
		return nil, err
	}
	defer os.Remove(clip.Path)
	var opts []gateway.Option
	if c.detectorDelay > 0 {
		opts = append(opts, gateway.WithDetectorWrapper(func(d analytics.Detector) analytics.Detector {
			return slowDetector{Detector: d, delay: c.detectorDelay}
		}))
	}
	rg, err := startRig(ctx, clip.Path, float64(c.fps), c.logLevel, func(url string) string {
		return analyticsYAML(c.model, c.library, c.analyticsFPS) +
			fmt.Sprintf("cameras:\n  - {id: cam1, url: %q, transport: tcp}\n", url)
	}, opts...)
	if err != nil {
		return nil, err
	}
	defer rg.close()
	pub := rg.pub

	dialCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	raw, err := dialDecoding(dialCtx, rg.whep(""), &clip.Visual, "")
	if err != nil {
		return nil, err
	}
	defer raw.close()
	ann, err := dialDecoding(dialCtx, rg.whep("/annotated"), &clip.Visual, c.saveJPEG)
	if err != nil {
		return nil, err
	}
	defer ann.close()
	for _, v := range []*decodingViewer{raw, ann} {
		select {
		case <-v.firstDecoded():
		case <-dialCtx.Done():
			return nil, fmt.Errorf("no decoded picture within 30 s (raw stats %+v, annotated %+v)", raw.stats(), ann.stats())
		}
	}
	fmt.Fprintf(progress, "annotated: both tracks decoding; %v warm-up, then %v measured (detector delay %v)...\n",
		c.warmup, c.duration, c.detectorDelay)
	if err := sleepCtx(ctx, c.warmup); err != nil {
		return nil, err
	}

	st0, err := rg.status(ctx)
	if err != nil {
		return nil, err
	}
	rs0, as0 := raw.stats(), ann.stats()
	_, rd0, re0 := raw.snapshot()
	_, ad0, ae0 := ann.snapshot()
	cpu, machine := startCPU(os.Getpid()), startMachine()
	start := time.Now()
	if err := sleepCtx(ctx, c.duration); err != nil {
		return nil, err
	}
	end := time.Now()
	res := &annotatedResult{ProcessCPUPercent: cpu.percent(), MachineCPUPercent: machine.percent(), LoadAverage: load}
	st1, err := rg.status(ctx)
	if err != nil {
		return nil, err
	}
	// Let frames published just before the end be decoded.
	time.Sleep(time.Second)
	lo, hi := pub.indexRange(start, end)
	secs := end.Sub(start).Seconds()
	res.Command, res.Clip, res.DetectorDelay = commandLine(), c.clip, c.detectorDelay.String()
	res.Source = fmt.Sprintf("%dx%d %d fps, %s loop of %d frames (IDR every %d), visual stamp %d px blocks at (%d,%d)",
		clip.Width, clip.Height, c.fps, clip.Encoder, clip.Frames, c.gop, clip.Visual.Block, clip.Visual.X, clip.Visual.Y)
	res.Window = fmt.Sprintf("%v (frames %d..%d)", end.Sub(start).Round(time.Millisecond), lo, hi)
	if a0, a1 := st0.Analytics, st1.Analytics; a0 != nil && a1 != nil {
		res.AnalysedFPS = float64(a1.Analysed-a0.Analysed) / secs
		res.SampledFPS = float64(a1.Sampled-a0.Sampled) / secs
		res.InferenceMs, res.AnalyticsLatency = a1.InferenceMs, a1.LatencyMs
		res.AnalyticsDropped = a1.Dropped - a0.Dropped
	}

	lat := map[string]map[uint64]time.Duration{}
	for _, x := range []struct {
		name   string
		v      *decodingViewer
		st0    uint64
		d0, e0 int
	}{{"raw /whep/cam1", raw, rs0.Lost, rd0, re0}, {"annotated /whep/cam1/annotated", ann, as0.Lost, ad0, ae0}} {
		r, m := measureViewer(x.name, x.v, pub, c, lo, hi, start, end)
		r.RTPPacketsLost = x.v.stats().Lost - x.st0
		r.DecoderDropped -= x.d0
		r.DecodeErrors -= x.e0
		res.Readers = append(res.Readers, r)
		lat[x.name] = m
	}
	var added []time.Duration
	for i, a := range lat["annotated /whep/cam1/annotated"] {
		if r, ok := lat["raw /whep/cam1"][i]; ok {
			added = append(added, a-r)
		}
	}
	res.Added = summarize(added)
	res.GoalMet = res.Added.N > 0 && res.Added.Median <= 40
	return res, nil
}

// measureViewer maps every decoded picture of v to its frame index and sums up the window [lo, hi).
func measureViewer(name string, v *decodingViewer, pub *publisher, c annotatedConfig, lo, hi uint64, start, end time.Time) (annotatedReader, map[uint64]time.Duration) {
	frames, dropped, decErrs := v.snapshot()
	r := annotatedReader{Name: name, Published: int(hi - lo), DecoderDropped: dropped, DecodeErrors: decErrs}
	lat := map[uint64]time.Duration{}
	var decoded, arrival []time.Duration
	offsets := map[uint32]int{}
	for _, f := range frames {
		if f.Pos < 0 {
			if !f.Decoded.Before(start) && f.Decoded.Before(end.Add(time.Second)) {
				r.Unreadable++
			}
			continue
		}
		idx, pt, ok := pub.latestWithPos(f.Pos, c.loop, f.Decoded)
		if !ok || idx < lo || idx >= hi {
			continue
		}
		if _, dup := lat[idx]; dup {
			r.Duplicated++
			continue
		}
		d := f.Decoded.Sub(pt)
		lat[idx] = d
		decoded = append(decoded, d)
		if !f.Arrived.IsZero() {
			arrival = append(arrival, f.Arrived.Sub(pt))
		}
		offsets[f.RTP-uint32(idx*uint64(media.VideoClockRate)/uint64(c.fps))]++
		r.RTPChecked++
		if f.HasSEI {
			r.SEIChecked++
			if f.SEI != idx {
				r.SEIMismatch++
			}
		}
	}
	for _, n := range offsets {
		r.RTPConsistent = max(r.RTPConsistent, n)
	}
	r.Frames = len(lat)
	r.Lost = r.Published - r.Frames
	r.Latency, r.Arrival = summarize(decoded), summarize(arrival)
	return r, lat
}

func printAnnotated(w io.Writer, r *annotatedResult, asJSON bool) {
	if asJSON {
		printJSON(w, r)
		return
	}
	fmt.Fprintf(w, "source: %s\n  made from %s\ndetector delay: %s, window: %s\nload average before: %s\n\n",
		r.Source, r.Clip, r.DetectorDelay, r.Window, r.LoadAverage)
	t := table{head: []string{"reader", "published", "frames", "lost", "dup", "unreadable", "median ms", "p95 ms", "p99 ms", "max ms", "arrival p50"}}
	for _, v := range r.Readers {
		t.add(v.Name, fmt.Sprint(v.Published), fmt.Sprint(v.Frames), fmt.Sprint(v.Lost), fmt.Sprint(v.Duplicated),
			fmt.Sprint(v.Unreadable), ms(v.Latency.Median), ms(v.Latency.P95), ms(v.Latency.P99), ms(v.Latency.Max), ms(v.Arrival.Median))
	}
	t.add("added by the annotated path", "", fmt.Sprint(r.Added.N), "", "", "", ms(r.Added.Median), ms(r.Added.P95), ms(r.Added.P99), ms(r.Added.Max), "")
	t.print(w)
	fmt.Fprintf(w, "\ngoal: added by the annotated path <= 40 ms median: %s\n", verdict(r.GoalMet))
	fmt.Fprintf(w, "analytics during the window: %.2f analysed fps (%.2f sampled fps, %d dropped), last inference %.1f ms, last capture-to-meta %.1f ms\n",
		r.AnalysedFPS, r.SampledFPS, r.AnalyticsDropped, r.InferenceMs, r.AnalyticsLatency)
	fmt.Fprintf(w, "cpu: process %.0f %% of one core, machine %.0f %%\n", r.ProcessCPUPercent, r.MachineCPUPercent)
	for _, v := range r.Readers {
		fmt.Fprintf(w, "%s: RTP timestamp = index x 90000/fps + constant for %d of %d frames", v.Name, v.RTPConsistent, v.RTPChecked)
		if v.SEIChecked > 0 {
			fmt.Fprintf(w, "; SEI index = visual index for %d of %d", v.SEIChecked-v.SEIMismatch, v.SEIChecked)
		}
		fmt.Fprintf(w, "; client: %d RTP packets lost, %d AUs dropped before decoding, %d decode errors\n",
			v.RTPPacketsLost, v.DecoderDropped, v.DecodeErrors)
	}
	fmt.Fprintln(w, "latency = picture decoded at the client (libavcodec, software) - publisher wall-clock just before the frame's RTP packets were written; the frame is identified by the visual stamp read from the decoded picture")
}
