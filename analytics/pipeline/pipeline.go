// Package pipeline owns one camera's live analytics: it reads the camera's raw media.Stream with its own
// reader (so the video path never waits for it), decodes every frame, samples them, letterboxes the
// chosen ones into the shared inference pool's tensors (or runs the motion detector when no model is
// loaded), tracks the detections, evaluates the camera's rules, and publishes a media.Meta per analysed
// frame and the rules' Events. It never blocks the stream's writer and never touches another camera.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"sightline/analytics"
	"sightline/analytics/motion"
	"sightline/analytics/pool"
	"sightline/analytics/rules"
	"sightline/analytics/sampler"
	"sightline/analytics/track"
	"sightline/codec"
	"sightline/media"
)

// Detector names in Status.
const (
	DetectorMotion = "motion"
	DetectorONNX   = "onnx"
)

// Stage names passed to Config.Observe.
const (
	StageDecode     = "decode"     // one access unit through the decoder
	StagePreprocess = "preprocess" // letterboxing a sampled frame into the detector's tensor
	StageMotion     = "motion"     // the motion gate in front of the object detector
	StageInference  = "inference"  // the detector: the model's run, or the motion detector without a pool
	StageTrack      = "track"      // tracking and rule evaluation of an analysed frame
)

// DefaultReaderQueue is how many access units may wait between the stream and the decoder (about 2 s at
// 25 fps); beyond it the reader drops to the next keyframe, as every media.Reader does.
const DefaultReaderQueue = 50

// Config configures one camera's pipeline.
type Config struct {
	// Camera is the camera's id (in Meta, Events, logs).
	Camera string
	// Source is the camera's raw stream. Required.
	Source *media.Stream
	// Meta receives a media.Meta per analysed frame; nil: none published.
	Meta *media.Fanout[*media.Meta]
	// Events receives the rule events of each analysed frame that raised any; it must not block. nil:
	// events are dropped.
	Events func(EventBatch)
	// KeepEventFrames hands Events the analysed frame itself (for snapshots). Each sampled frame is then
	// held (a reference, no copy) until its inference is done.
	KeepEventFrames bool
	// Pool runs the object detector; nil runs the motion detector instead (Status says which).
	Pool *pool.Pool
	// DetectorName names the pool's detector in Status (default "onnx").
	DetectorName string
	// Sampler: fps cap, motion gate, keyframe-only.
	Sampler sampler.Config
	// Accel is the decoder preference ("" = auto: VAAPI, CUDA, software).
	Accel codec.Accel
	// Rules of the camera (validated by New).
	Rules []rules.Config
	// Classes keeps only the detector's detections with these labels (empty: all); MinScore drops those
	// scoring below it (0: none). Both apply to the model's detections, not the motion detector's, before
	// tracking, rules, Meta and Analysed.
	Classes  []string
	MinScore float32
	// Tracker and Motion tune those stages.
	Tracker track.Config
	Motion  motion.Config
	// ReaderQueue is the raw stream reader's queue; default DefaultReaderQueue.
	ReaderQueue int
	// Logger gets the pipeline's logs; the caller sets the camera field. nil: slog.Default().
	Logger *slog.Logger
	// Observe, when set, gets each stage's duration (the Stage* names) for metrics; nil: nothing is
	// timed. Analysed, when set, gets each analysed frame's detections (before tracking; it must not keep
	// the slice). Both are called from the pipeline's and the pool's goroutines and must not block.
	Observe  func(stage string, d time.Duration)
	Analysed func(dets []analytics.Detection)
}

// Status is a snapshot of a camera's analytics.
type Status struct {
	// State: waiting (no frame decoded yet), running, stopped.
	State string `json:"state"`
	// Detector is onnx (the pool's model) or motion (no model).
	Detector string `json:"detector"`
	// Decoder is the decoding path in use (software, vaapi, cuda); "" before the first frame.
	Decoder string `json:"decoder"`
	// KeyframesOnly is true when only keyframes are decoded.
	KeyframesOnly bool `json:"keyframesOnly,omitempty"`
	// AnalysedFPS is analysed frames per second over the last 2 s.
	AnalysedFPS float64 `json:"analysedFps"`
	// InferenceMs is the detector time of the last analysed frame; LatencyMs from the frame's arrival to
	// its Meta (decode, queueing, inference, tracking).
	InferenceMs float64 `json:"inferenceMs"`
	LatencyMs   float64 `json:"latencyMs"`
	// Decoded frames; Sampled frames chosen for the detector; Analysed frames it returned; Dropped
	// sampled frames that never ran (pushed out of the inference queue); Gated due frames the motion gate
	// skipped; StreamDropped access units the raw reader lost because decoding fell behind.
	Decoded       uint64 `json:"decoded"`
	Sampled       uint64 `json:"sampled"`
	Analysed      uint64 `json:"analysed"`
	Dropped       uint64 `json:"dropped"`
	Gated         uint64 `json:"gated"`
	StreamDropped uint64 `json:"streamDropped"`
	Corrupt       uint64 `json:"corrupt"`
	// Tracks is the number of objects in the last analysed frame; Events raised so far.
	Tracks    int    `json:"tracks"`
	Events    uint64 `json:"events"`
	LastError string `json:"lastError,omitempty"`
}

// Pipeline is one camera's analytics. Run it once; Status from any goroutine.
type Pipeline struct {
	cfg     Config
	log     *slog.Logger
	sampler *sampler.Sampler
	motion  *motion.Detector
	tracker *track.Tracker
	rules   *rules.Engine
	spec    analytics.InputSpec
	lb      *codec.Letterbox
	queue   *pool.Queue

	recv   [32]received // PTS → arrival wall-clock of recent access units
	recvN  int
	meter  media.Meter
	reader *media.Reader
	taps   frameTaps // see tap.go

	tensorMu sync.Mutex
	tensors  [][]float32 // free tensors

	mu     sync.Mutex // guards st and the post-inference stages (tracker, rules)
	st     Status
	events uint64
}

type received struct {
	pts time.Duration
	at  time.Time
}

// frameInfo is what the post-inference stages need of a frame after it was released.
type frameInfo struct {
	pts      time.Duration
	rtp      uint32
	captured time.Time
	arrived  time.Time
	frame    *codec.Frame // a reference to the frame when KeepEventFrames; released by finish or on drop
}

// release drops the frame reference, if any.
func (i *frameInfo) release() {
	if i.frame != nil {
		i.frame.Release()
		i.frame = nil
	}
}

// EventBatch is the rule events one analysed frame raised.
type EventBatch struct {
	Events []rules.Event
	// RTPTime is the RTP timestamp of the frame (as Meta's).
	RTPTime uint32
	// Tracks are the confirmed tracks in that frame.
	Tracks []track.Track
	// Frame is the analysed frame when KeepEventFrames is set (else nil). It is valid during the call
	// only: Ref it to keep it; never write to it (MakeWritable on the reference first).
	Frame *codec.Frame
}

// New checks cfg and builds the stages; nothing runs until Run.
func New(cfg Config) (*Pipeline, error) {
	if cfg.Source == nil {
		return nil, errors.New("analytics pipeline: no source stream")
	}
	if err := cfg.Sampler.Validate(); err != nil {
		return nil, fmt.Errorf("analytics pipeline %s: %w", cfg.Camera, err)
	}
	eng, err := rules.New(cfg.Camera, cfg.Rules)
	if err != nil {
		return nil, err
	}
	if _, err := codec.ParseAccel(string(cfg.Accel)); err != nil {
		return nil, fmt.Errorf("analytics pipeline %s: %w", cfg.Camera, err)
	}
	if cfg.MinScore < 0 || cfg.MinScore > 1 || math.IsNaN(float64(cfg.MinScore)) {
		return nil, fmt.Errorf("analytics pipeline %s: min score %v is not in 0..1", cfg.Camera, cfg.MinScore)
	}
	if cfg.ReaderQueue <= 0 {
		cfg.ReaderQueue = DefaultReaderQueue
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	p := &Pipeline{cfg: cfg, log: log, sampler: sampler.New(cfg.Sampler), tracker: track.New(cfg.Tracker), rules: eng}
	p.st = Status{State: "waiting", Detector: DetectorMotion, KeyframesOnly: cfg.Sampler.KeyframesOnly}
	if cfg.Pool == nil || cfg.Sampler.MotionGate {
		p.motion = motion.New(cfg.Motion)
	}
	if cfg.Pool != nil {
		p.st.Detector = cfg.DetectorName
		if p.st.Detector == "" {
			p.st.Detector = DetectorONNX
		}
		p.spec = cfg.Pool.InputSpec()
		if p.lb, err = codec.NewLetterbox(LetterboxConfig(p.spec)); err != nil {
			return nil, fmt.Errorf("analytics pipeline %s: %w", cfg.Camera, err)
		}
	}
	return p, nil
}

// LetterboxConfig is the codec letterbox that fills a detector's input tensor as analytics.FillImage
// does: top-left placement, the detector's channel order, pad and value scale (codec writes Pad as is,
// analytics scales it with the values).
func LetterboxConfig(spec analytics.InputSpec) codec.LetterboxConfig {
	order := codec.OrderRGB
	if spec.BGR {
		order = codec.OrderBGR
	}
	scale := spec.Scale
	if scale == 0 {
		scale = 1
	}
	return codec.LetterboxConfig{Width: spec.Width, Height: spec.Height, Anchor: codec.AnchorTopLeft, Order: order,
		Pad: spec.Pad * scale, Scale: scale}
}

// ToLetterbox converts codec's placement of a srcW x srcH frame into the detector's Letterbox.
func ToLetterbox(p codec.Placement, srcW, srcH int, spec analytics.InputSpec) analytics.Letterbox {
	return analytics.Letterbox{SrcW: srcW, SrcH: srcH, DstW: spec.Width, DstH: spec.Height, Scale: p.Ratio,
		ScaledW: p.Width, ScaledH: p.Height, PadX: p.OffsetX, PadY: p.OffsetY}
}

// Status returns a snapshot.
func (p *Pipeline) Status() Status {
	p.mu.Lock()
	st, q, r := p.st, p.queue, p.reader
	st.Events = p.events
	p.mu.Unlock()
	fps, _ := p.meter.Rates(time.Now())
	st.AnalysedFPS = fps
	if st.State != "running" {
		st.AnalysedFPS = 0
	}
	if q != nil {
		st.Dropped += q.Stats().Dropped
	}
	if r != nil {
		st.StreamDropped = r.Dropped()
	}
	return st
}

// Predict returns the camera's confirmed tracks extrapolated to ts (the camera's PTS of a frame being
// shown), at once from what the tracker holds: it never waits for inference. The overlay calls it for
// every frame while the analytics loop updates the tracker.
func (p *Pipeline) Predict(ts time.Duration) []track.Track {
	return p.tracker.Predict(ts)
}

func (p *Pipeline) setError(err error) {
	p.mu.Lock()
	p.st.LastError = err.Error()
	p.mu.Unlock()
}

// Run reads, decodes and analyses until ctx ends or the stream closes (then it returns nil). Frames
// still in the inference queue are abandoned; Run returns after the running one's results are handled.
func (p *Pipeline) Run(ctx context.Context) error {
	r := p.cfg.Source.NewReader(p.cfg.ReaderQueue)
	defer r.Close()
	p.mu.Lock()
	p.reader = r
	p.mu.Unlock()
	if p.cfg.Pool != nil {
		q := p.cfg.Pool.Queue(p.cfg.Camera)
		defer q.Close()
		p.mu.Lock()
		p.queue = q
		p.mu.Unlock()
	}
	defer func() {
		p.mu.Lock()
		p.st.State = "stopped"
		p.mu.Unlock()
	}()
	p.startTaps()
	defer p.stopTaps()
	p.log.Info("analytics started", "detector", p.st.Detector, "fps", p.sampler.Config().FPS,
		"motion_gate", p.cfg.Sampler.MotionGate, "keyframes_only", p.cfg.Sampler.KeyframesOnly, "rules", len(p.cfg.Rules))

	var dec *codec.Decoder
	defer func() {
		if dec != nil {
			dec.Close()
		}
	}()
	var decCodec media.Codec
	var frames []*codec.Frame
	for {
		au, err := r.Read(ctx)
		if err != nil {
			if errors.Is(err, media.ErrStreamClosed) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("analytics %s: read stream: %w", p.cfg.Camera, err)
		}
		if dec == nil || au.Codec != decCodec {
			if dec != nil {
				dec.Close()
			}
			dec, err = codec.NewDecoder(codec.DecoderConfig{Codec: au.Codec, Params: p.cfg.Source.Params(), Accel: p.cfg.Accel,
				KeyframesOnly: p.cfg.Sampler.KeyframesOnly})
			if err != nil {
				return fmt.Errorf("analytics %s: %w", p.cfg.Camera, err)
			}
			decCodec = au.Codec
			p.mu.Lock()
			p.st.Decoder = string(dec.Accel())
			p.st.State = "running"
			p.mu.Unlock()
			p.log.Info("analytics decoder opened", "codec", au.Codec, "decoder", dec.Accel(), "skipped", dec.Skipped())
		}
		p.recv[p.recvN%len(p.recv)] = received{pts: au.PTS, at: au.Received}
		p.recvN++
		t0 := p.startTimer()
		frames, err = dec.Decode(au, frames[:0])
		p.observe(StageDecode, t0)
		if err != nil {
			p.mu.Lock()
			p.st.Corrupt++
			p.st.LastError = err.Error()
			p.mu.Unlock()
		}
		for i, f := range frames {
			p.tap(f)
			p.frame(f)
			f.Release()
			frames[i] = nil
		}
	}
}

// startTimer returns now when stages are observed (zero otherwise: no clock read).
func (p *Pipeline) startTimer() time.Time {
	if p.cfg.Observe == nil {
		return time.Time{}
	}
	return time.Now()
}

// observe reports the time since t0 (from startTimer) for stage.
func (p *Pipeline) observe(stage string, t0 time.Time) {
	if p.cfg.Observe != nil {
		p.cfg.Observe(stage, time.Since(t0))
	}
}

// arrival returns the wall-clock at which the access unit of pts arrived (now if no longer known).
func (p *Pipeline) arrival(pts time.Duration) time.Time {
	for i := range p.recv {
		if p.recv[i].pts == pts && !p.recv[i].at.IsZero() {
			return p.recv[i].at
		}
	}
	return time.Now()
}

// frame handles one decoded frame (the caller releases it).
func (p *Pipeline) frame(f *codec.Frame) {
	p.mu.Lock()
	p.st.Decoded++
	if p.st.Decoder == "" {
		p.st.Decoder = "software"
	}
	p.mu.Unlock()
	if !p.sampler.Due(f.PTS, f.Keyframe) {
		return
	}
	var moving []analytics.Detection
	isMoving := true
	if p.motion != nil {
		t0 := p.startTimer()
		dets, _, err := p.motion.Detect(f.Planes[0], f.Width, f.Height, f.Strides[0])
		if p.cfg.Pool == nil {
			p.observe(StageInference, t0)
		} else {
			p.observe(StageMotion, t0)
		}
		if err != nil {
			p.setError(err)
			return
		}
		moving, isMoving = dets, len(dets) > 0
	}
	selected := p.sampler.Select(f.PTS, isMoving)
	p.mu.Lock()
	p.st.Gated = p.sampler.Stats().Gated
	if selected {
		p.st.Sampled++
	}
	p.mu.Unlock()
	if !selected {
		return
	}
	info := frameInfo{pts: f.PTS, rtp: f.RTPTime, captured: f.NTP, arrived: p.arrival(f.PTS)}
	if info.captured.IsZero() {
		info.captured = info.arrived
	}
	if p.cfg.KeepEventFrames && p.cfg.Events != nil && len(p.cfg.Rules) > 0 {
		if ref, err := f.Ref(); err == nil {
			info.frame = ref
		}
	}
	if p.cfg.Pool == nil {
		p.finish(info, moving, 0)
		return
	}
	buf := p.tensor()
	t0 := p.startTimer()
	place, err := p.lb.Apply(f, buf)
	p.observe(StagePreprocess, t0)
	if err != nil {
		p.putTensor(buf)
		info.release()
		p.setError(fmt.Errorf("letterbox: %w", err))
		return
	}
	in := analytics.Input{Tensor: buf, Letterbox: ToLetterbox(place, f.Width, f.Height, p.spec)}
	p.queueRef().Submit(pool.Job{Input: in, Done: func(res analytics.Result, err error) {
		p.putTensor(buf)
		if err != nil {
			info.release()
		}
		switch {
		case err == nil:
			if p.cfg.Observe != nil {
				p.cfg.Observe(StageInference, res.Inference)
			}
			p.finish(info, p.keep(res.Detections), res.Inference)
		case errors.Is(err, pool.ErrDropped), errors.Is(err, pool.ErrClosed):
			// counted by the queue
		default:
			p.setError(err)
		}
	}})
}

func (p *Pipeline) queueRef() *pool.Queue {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.queue
}

// tensor returns a free input tensor. At most queue length + 2 are ever out (queued, running, filling).
func (p *Pipeline) tensor() []float32 {
	p.tensorMu.Lock()
	defer p.tensorMu.Unlock()
	if n := len(p.tensors); n > 0 {
		t := p.tensors[n-1]
		p.tensors = p.tensors[:n-1]
		return t
	}
	return make([]float32, p.spec.Len())
}

func (p *Pipeline) putTensor(t []float32) {
	p.tensorMu.Lock()
	p.tensors = append(p.tensors, t)
	p.tensorMu.Unlock()
}

// keep applies Classes and MinScore to the detector's detections (a new slice when it drops any).
func (p *Pipeline) keep(dets []analytics.Detection) []analytics.Detection {
	if len(p.cfg.Classes) == 0 && p.cfg.MinScore <= 0 {
		return dets
	}
	out := make([]analytics.Detection, 0, len(dets))
	for _, d := range dets {
		if d.Score >= p.cfg.MinScore && (len(p.cfg.Classes) == 0 || slices.Contains(p.cfg.Classes, d.Label)) {
			out = append(out, d)
		}
	}
	return out
}

// finish tracks one analysed frame's detections, evaluates the rules and publishes Meta and Events.
// Calls come in frame order (the pool runs one frame per camera at a time).
func (p *Pipeline) finish(info frameInfo, dets []analytics.Detection, inference time.Duration) {
	defer info.release()
	if p.cfg.Analysed != nil {
		p.cfg.Analysed(dets)
	}
	t0 := p.startTimer()
	p.mu.Lock()
	tracks := p.tracker.Update(info.pts, dets)
	events := p.rules.Update(info.pts, info.captured, tracks)
	now := time.Now()
	p.st.Analysed++
	p.st.InferenceMs = float64(inference.Microseconds()) / 1000
	p.st.LatencyMs = float64(now.Sub(info.arrived).Microseconds()) / 1000
	p.st.Tracks = len(tracks)
	p.events += uint64(len(events))
	p.mu.Unlock()
	if p.cfg.Observe != nil {
		p.cfg.Observe(StageTrack, now.Sub(t0))
	}
	p.meter.Add(0, now)

	if p.cfg.Meta != nil {
		m := &media.Meta{Camera: p.cfg.Camera, RTPTime: info.rtp, PTS: info.pts, CapturedAt: info.captured,
			Inference: inference, Objects: make([]media.Object, 0, len(tracks))}
		for _, t := range tracks {
			m.Objects = append(m.Objects, media.Object{ID: t.ID, Class: t.Class, Label: t.Label, Score: t.Score, Box: t.Box.Array()})
		}
		p.cfg.Meta.Write(m)
	}
	if p.cfg.Events != nil && len(events) > 0 {
		p.cfg.Events(EventBatch{Events: events, RTPTime: info.rtp, Tracks: tracks, Frame: info.frame})
	}
}
