// Package onnx owns object detection with ONNX Runtime (github.com/yalue/onnxruntime_go): loading the
// shared library and a YOLO-family model, running it on caller-filled tensors and decoding its output
// (YOLOX, YOLOv8/YOLO11 layouts) into analytics.Detections. It never decodes video or draws.
package onnx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"sightline/analytics"
)

// Execution providers.
const (
	ProviderCPU      = "cpu"
	ProviderCUDA     = "cuda"
	ProviderTensorRT = "tensorrt"
)

// Config configures a Detector. Zero values take the defaults noted.
type Config struct {
	// Library is the path of libonnxruntime.so (ONNX Runtime 1.24.x). Required.
	Library string
	// Model is the path of the .onnx model. Required.
	Model string
	// Layout of the model's output; LayoutAuto (default) picks it from the output shape.
	Layout Layout
	// Classes names the model's classes in order; default COCO-80 (or "class N" when the model has
	// another class count).
	Classes []string
	// ScoreThreshold drops detections scoring below it; default 0.3.
	ScoreThreshold float32
	// NMSIoU is the overlap above which NMS suppresses a box; default 0.45.
	NMSIoU float32
	// ClassAgnosticNMS suppresses overlapping boxes of different classes too (one vehicle is then not
	// counted as both car and truck).
	ClassAgnosticNMS bool
	// ClassFilter keeps only these class names; empty keeps all.
	ClassFilter []string
	// IntraOpThreads is ONNX Runtime's intra-op thread count; default 1.
	IntraOpThreads int
	// Provider is the execution provider: cpu (default), cuda or tensorrt. One that cannot be enabled
	// falls back to cpu with a warning; Detector.Provider says which runs.
	Provider string
	// MaxBatch caps the frames per inference for models with a dynamic batch axis; default 1.
	MaxBatch int
	// Logger receives the provider fallback warning; default slog.Default().
	Logger *slog.Logger
}

// The ONNX Runtime environment is process-wide in the C library (one shared library, one OrtEnv): this is
// the package's only global state, set up by the first New and kept for the life of the process.
var (
	envMu      sync.Mutex
	envLibrary string
)

func initEnvironment(library string) error {
	envMu.Lock()
	defer envMu.Unlock()
	if envLibrary != "" {
		if envLibrary != library {
			return fmt.Errorf("ONNX Runtime already loaded from %s, cannot also load %s", envLibrary, library)
		}
		return nil
	}
	if _, err := os.Stat(library); err != nil {
		return fmt.Errorf("ONNX Runtime library: %w (%w)", err, analytics.ErrUnavailable)
	}
	ort.SetSharedLibraryPath(library)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("load ONNX Runtime from %s: %w (%w)", library, err, analytics.ErrUnavailable)
	}
	envLibrary = library
	return nil
}

// RuntimeVersion is the loaded ONNX Runtime's version, "" before the first New.
func RuntimeVersion() string {
	envMu.Lock()
	defer envMu.Unlock()
	if envLibrary == "" {
		return ""
	}
	return ort.GetVersion()
}

// Detector runs one ONNX model session. Detect calls are serialized; run several Detectors for
// parallel inference.
type Detector struct {
	log      *slog.Logger
	spec     analytics.InputSpec
	layout   Layout
	names    []string
	allowed  []bool
	thr      float32
	iou      float32
	agnostic bool
	provider string
	inName   string
	outName  string
	outDims  []int64 // the model's declared output shape; -1 for dynamic axes

	mu      sync.Mutex
	closed  bool
	sess    *ort.DynamicAdvancedSession
	runOpts *ort.RunOptions
	batches map[int]*batchTensors
	cands   []candidate
}

type batchTensors struct {
	in  *ort.Tensor[float32] // nil for batch 1: the caller's tensor is wrapped as is
	out *ort.Tensor[float32] // nil when the output shape is dynamic
}

// New loads the ONNX Runtime library (once per process) and the model. Without a library or model it
// returns an error wrapping analytics.ErrUnavailable, which callers turn into "motion detector only".
func New(cfg Config) (*Detector, error) {
	if cfg.Library == "" {
		return nil, fmt.Errorf("object detector: no ONNX Runtime library configured (%w)", analytics.ErrUnavailable)
	}
	if cfg.Model == "" {
		return nil, fmt.Errorf("object detector: no model configured (%w)", analytics.ErrUnavailable)
	}
	if _, err := os.Stat(cfg.Model); err != nil {
		return nil, fmt.Errorf("object detector model: %w (%w)", err, analytics.ErrUnavailable)
	}
	if err := initEnvironment(cfg.Library); err != nil {
		return nil, err
	}
	d := &Detector{log: cfg.Logger, thr: cfg.ScoreThreshold, iou: cfg.NMSIoU, agnostic: cfg.ClassAgnosticNMS, batches: map[int]*batchTensors{}}
	if d.log == nil {
		d.log = slog.Default()
	}
	if d.thr == 0 {
		d.thr = 0.3
	}
	if d.iou == 0 {
		d.iou = 0.45
	}
	if d.thr < 0 || d.thr > 1 || d.iou < 0 || d.iou > 1 {
		return nil, fmt.Errorf("object detector: scoreThreshold %v and nmsIoU %v must be in 0..1", d.thr, d.iou)
	}
	if err := d.inspect(cfg); err != nil {
		return nil, fmt.Errorf("object detector model %s: %w", cfg.Model, err)
	}
	if err := d.open(cfg); err != nil {
		return nil, fmt.Errorf("object detector model %s: %w", cfg.Model, err)
	}
	return d, nil
}

// inspect reads the model's input and output and settles layout, input spec and class names.
func (d *Detector) inspect(cfg Config) error {
	ins, outs, err := ort.GetInputOutputInfo(cfg.Model)
	if err != nil {
		return fmt.Errorf("read inputs and outputs: %w", err)
	}
	if len(ins) != 1 || len(outs) < 1 {
		return fmt.Errorf("want 1 input and an output, model has %d inputs and %d outputs", len(ins), len(outs))
	}
	in, out := ins[0], outs[0]
	if in.DataType != ort.TensorElementDataTypeFloat || out.DataType != ort.TensorElementDataTypeFloat {
		return fmt.Errorf("want float32 input and output, model has %s and %s", in.DataType, out.DataType)
	}
	dims := in.Dimensions
	if len(dims) != 4 || dims[1] != 3 || dims[2] <= 0 || dims[3] <= 0 {
		return fmt.Errorf("input %q shape %v: want [batch, 3, height, width] with a fixed size", in.Name, dims)
	}
	maxBatch := 1
	switch {
	case dims[0] == 1:
	case dims[0] < 0:
		maxBatch = max(cfg.MaxBatch, 1)
	default:
		return fmt.Errorf("input %q has a fixed batch of %d: only 1 or a dynamic batch axis are supported", in.Name, dims[0])
	}
	d.inName, d.outName, d.outDims = in.Name, out.Name, out.Dimensions
	w, h := int(dims[3]), int(dims[2])

	// Settle the layout from the declared output shape when it is fixed (batch aside).
	layout, nc := cfg.Layout, 0
	if len(d.outDims) == 3 && d.outDims[1] > 0 && d.outDims[2] > 0 {
		var err error
		layout, nc, err = resolveLayout(cfg.Layout, outputShape{batch: 1, d1: int(d.outDims[1]), d2: int(d.outDims[2])}, w, h)
		if err != nil {
			return fmt.Errorf("output %q: %w", out.Name, err)
		}
	} else if layout == LayoutAuto {
		return fmt.Errorf("output %q shape %v is dynamic: set the layout (yolox or yolov8)", out.Name, d.outDims)
	}
	d.layout = layout
	d.spec = analytics.InputSpec{Width: w, Height: h, Channels: 3, Pad: 114, MaxBatch: maxBatch}
	switch layout {
	case LayoutYOLOX:
		d.spec.BGR, d.spec.Scale = true, 1
	case LayoutYOLOv8:
		d.spec.BGR, d.spec.Scale = false, 1.0/255
	default:
		return fmt.Errorf("unknown output layout %q (want yolox or yolov8)", layout)
	}

	d.names = cfg.Classes
	switch {
	case len(d.names) == 0 && (nc == 80 || nc == 0):
		d.names = analytics.COCO80()
	case len(d.names) == 0:
		for i := 0; i < nc; i++ {
			d.names = append(d.names, fmt.Sprintf("class %d", i))
		}
	case nc != 0 && len(d.names) != nc:
		return fmt.Errorf("%d class names configured, model has %d classes", len(d.names), nc)
	}
	if len(cfg.ClassFilter) > 0 {
		d.allowed = make([]bool, len(d.names))
		for _, want := range cfg.ClassFilter {
			found := false
			for i, n := range d.names {
				if n == want {
					d.allowed[i], found = true, true
				}
			}
			if !found {
				return fmt.Errorf("class filter: unknown class %q", want)
			}
		}
	}
	return nil
}

// open creates the session with the configured threads and execution provider.
func (d *Detector) open(cfg Config) error {
	threads := cfg.IntraOpThreads
	if threads <= 0 {
		threads = 1
	}
	provider := cfg.Provider
	if provider == "" {
		provider = ProviderCPU
	}
	if provider != ProviderCPU && provider != ProviderCUDA && provider != ProviderTensorRT {
		return fmt.Errorf("unknown execution provider %q (want cpu, cuda or tensorrt)", provider)
	}
	newOptions := func(provider string) (*ort.SessionOptions, error) {
		opts, err := ort.NewSessionOptions()
		if err != nil {
			return nil, fmt.Errorf("session options: %w", err)
		}
		if err := opts.SetIntraOpNumThreads(threads); err != nil {
			opts.Destroy()
			return nil, fmt.Errorf("intra-op threads %d: %w", threads, err)
		}
		if err := opts.SetInterOpNumThreads(1); err != nil {
			opts.Destroy()
			return nil, fmt.Errorf("inter-op threads: %w", err)
		}
		if err := appendProvider(opts, provider); err != nil {
			opts.Destroy()
			return nil, err
		}
		return opts, nil
	}
	opts, err := newOptions(provider)
	if err == nil {
		d.sess, err = ort.NewDynamicAdvancedSession(cfg.Model, []string{d.inName}, []string{d.outName}, opts)
		opts.Destroy()
	}
	if err != nil && provider != ProviderCPU {
		d.log.Warn("analytics: execution provider unavailable, falling back to cpu", "provider", provider, "error", err)
		provider = ProviderCPU
		if opts, err = newOptions(provider); err == nil {
			d.sess, err = ort.NewDynamicAdvancedSession(cfg.Model, []string{d.inName}, []string{d.outName}, opts)
			opts.Destroy()
		}
	}
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	d.provider = provider
	if d.runOpts, err = ort.NewRunOptions(); err != nil {
		d.sess.Destroy()
		return fmt.Errorf("run options: %w", err)
	}
	return nil
}

func appendProvider(opts *ort.SessionOptions, provider string) error {
	switch provider {
	case ProviderCUDA:
		co, err := ort.NewCUDAProviderOptions()
		if err != nil {
			return fmt.Errorf("cuda provider options: %w", err)
		}
		defer co.Destroy()
		if err := opts.AppendExecutionProviderCUDA(co); err != nil {
			return fmt.Errorf("enable cuda: %w", err)
		}
	case ProviderTensorRT:
		to, err := ort.NewTensorRTProviderOptions()
		if err != nil {
			return fmt.Errorf("tensorrt provider options: %w", err)
		}
		defer to.Destroy()
		if err := opts.AppendExecutionProviderTensorRT(to); err != nil {
			return fmt.Errorf("enable tensorrt: %w", err)
		}
		// Nodes TensorRT cannot take run on CUDA rather than the CPU.
		if err := appendProvider(opts, ProviderCUDA); err != nil {
			return err
		}
	}
	return nil
}

// InputSpec implements analytics.Detector.
func (d *Detector) InputSpec() analytics.InputSpec { return d.spec }

// Provider is the execution provider the session runs on (cpu after a fallback).
func (d *Detector) Provider() string { return d.provider }

// Layout is the output layout being decoded.
func (d *Detector) Layout() Layout { return d.layout }

// Classes returns the class names, indexed by class (a copy).
func (d *Detector) Classes() []string { return append([]string(nil), d.names...) }

// Detect implements analytics.Detector.
func (d *Detector) Detect(ctx context.Context, inputs []analytics.Input) ([]analytics.Result, error) {
	for i, in := range inputs {
		if len(in.Tensor) != d.spec.Len() {
			return nil, fmt.Errorf("detect: input %d has %d values, want %d (%dx%dx%d)", i, len(in.Tensor), d.spec.Len(), d.spec.Channels, d.spec.Height, d.spec.Width)
		}
		lb := in.Letterbox
		if lb.SrcW <= 0 || lb.SrcH <= 0 || lb.Scale <= 0 {
			return nil, fmt.Errorf("detect: input %d has no letterbox geometry", i)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, errors.New("detect: detector closed")
	}
	results := make([]analytics.Result, 0, len(inputs))
	for start := 0; start < len(inputs); start += d.spec.MaxBatch {
		chunk := inputs[start:min(start+d.spec.MaxBatch, len(inputs))]
		res, err := d.run(ctx, chunk)
		if err != nil {
			return nil, err
		}
		results = append(results, res...)
	}
	return results, nil
}

// run infers one batch. d.mu is held.
func (d *Detector) run(ctx context.Context, inputs []analytics.Input) ([]analytics.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("detect: %w", err)
	}
	n := len(inputs)
	bt, err := d.batchTensors(n)
	if err != nil {
		return nil, err
	}
	in := bt.in
	if in == nil {
		// One frame: wrap the caller's tensor for the length of the run instead of copying it.
		in, err = ort.NewTensor(ort.NewShape(1, 3, int64(d.spec.Height), int64(d.spec.Width)), inputs[0].Tensor)
		if err != nil {
			return nil, fmt.Errorf("detect: input tensor: %w", err)
		}
		defer in.Destroy()
	} else {
		data := in.GetData()
		for i, x := range inputs {
			copy(data[i*d.spec.Len():], x.Tensor)
		}
	}
	outs := []ort.Value{nil}
	if bt.out != nil {
		outs[0] = bt.out
	}

	// A cancelled context terminates the run in progress.
	terminated := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		d.runOpts.Terminate()
		close(terminated)
	})
	t0 := time.Now()
	err = d.sess.RunWithOptions([]ort.Value{in}, outs, d.runOpts)
	took := time.Since(t0)
	if !stop() {
		<-terminated
		d.runOpts.UnsetTerminate()
	}
	runtime.KeepAlive(inputs)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("detect: %w", ctx.Err())
		}
		return nil, fmt.Errorf("detect: run model: %w", err)
	}
	out, ok := outs[0].(*ort.Tensor[float32])
	if !ok {
		if outs[0] != nil {
			outs[0].Destroy()
		}
		return nil, fmt.Errorf("detect: output is %T, want a float32 tensor", outs[0])
	}
	if bt.out == nil {
		defer out.Destroy()
	}
	return d.decodeBatch(inputs, out.GetShape(), out.GetData(), took)
}

// decodeBatch turns a batch's output into results. d.mu is held.
func (d *Detector) decodeBatch(inputs []analytics.Input, dims []int64, data []float32, took time.Duration) ([]analytics.Result, error) {
	s, err := parseShape(dims)
	if err != nil {
		return nil, fmt.Errorf("detect: %w", err)
	}
	if s.batch != len(inputs) || len(data) != s.batch*s.d1*s.d2 {
		return nil, fmt.Errorf("detect: output shape %v for a batch of %d", dims, len(inputs))
	}
	layout, nc, err := resolveLayout(d.layout, s, d.spec.Width, d.spec.Height)
	if err != nil {
		return nil, fmt.Errorf("detect: %w", err)
	}
	if nc != len(d.names) {
		return nil, fmt.Errorf("detect: model gives %d classes, %d names configured", nc, len(d.names))
	}
	results := make([]analytics.Result, len(inputs))
	item := s.d1 * s.d2
	for i, in := range inputs {
		d.cands, err = decode(layout, data[i*item:(i+1)*item], s, d.spec.Width, d.spec.Height, d.thr, d.allowed, d.cands[:0])
		if err != nil {
			return nil, fmt.Errorf("detect: %w", err)
		}
		results[i] = analytics.Result{Detections: d.finish(d.cands, in.Letterbox), Inference: took}
	}
	return results, nil
}

// finish maps candidates to the frame, drops boxes clipped to nothing and applies NMS.
func (d *Detector) finish(cands []candidate, lb analytics.Letterbox) []analytics.Detection {
	dets := make([]analytics.Detection, 0, len(cands))
	for _, c := range cands {
		b := lb.ToFrame(c.x1, c.y1, c.x2, c.y2)
		if b.W <= 0 || b.H <= 0 {
			continue
		}
		dets = append(dets, analytics.Detection{Class: c.class, Label: d.names[c.class], Score: c.score, Box: b})
	}
	return analytics.NMS(dets, d.iou, d.agnostic)
}

// batchTensors returns (creating once) the tensors for a batch of n. d.mu is held.
func (d *Detector) batchTensors(n int) (*batchTensors, error) {
	if bt, ok := d.batches[n]; ok {
		return bt, nil
	}
	bt := &batchTensors{}
	var err error
	if n > 1 {
		if bt.in, err = ort.NewEmptyTensor[float32](ort.NewShape(int64(n), 3, int64(d.spec.Height), int64(d.spec.Width))); err != nil {
			return nil, fmt.Errorf("detect: batch input tensor: %w", err)
		}
	}
	if len(d.outDims) == 3 && d.outDims[1] > 0 && d.outDims[2] > 0 {
		if bt.out, err = ort.NewEmptyTensor[float32](ort.NewShape(int64(n), d.outDims[1], d.outDims[2])); err != nil {
			if bt.in != nil {
				bt.in.Destroy()
			}
			return nil, fmt.Errorf("detect: output tensor: %w", err)
		}
	}
	d.batches[n] = bt
	return bt, nil
}

// Close implements analytics.Detector: it waits for a Detect in progress and releases the session.
func (d *Detector) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	for _, bt := range d.batches {
		if bt.in != nil {
			bt.in.Destroy()
		}
		if bt.out != nil {
			bt.out.Destroy()
		}
	}
	d.batches = nil
	d.runOpts.Destroy()
	return d.sess.Destroy()
}

var _ analytics.Detector = (*Detector)(nil)
