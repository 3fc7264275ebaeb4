package overlay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"sightline/codec"
	"sightline/media"
)

// Config configures an Annotator. Zero values take the defaults noted.
type Config struct {
	// Camera is the camera id, for logs and the stream's name.
	Camera string
	// DecoderAccel is the decoding path (default auto: VAAPI, CUDA, then software).
	DecoderAccel codec.Accel
	// EncoderAccel is the encoding path (default software: libx264 ultrafast/zerolatency).
	EncoderAccel codec.Accel
	// BitrateBps of the annotated stream (default 2 Mbit/s at 720p, scaled by pixel count, at least
	// 500 kbit/s).
	BitrateBps int
	// GOP is the number of frames between IDRs when no reader joins or asks (default 50).
	GOP int
	// FPS is the nominal frame rate for the encoder's rate control (default 25).
	FPS int
	// Zones are drawn on every frame.
	Zones []Zone
	// TrailLen is how many past positions a track's trail keeps (default 25; one per frame).
	TrailLen int
	// QueueLen is the queue of the annotator's reader on the raw stream (default media.DefaultQueueLen).
	QueueLen int
	// Frames, when set, supplies decoded frames from the camera's analytics decoder while that runs;
	// the annotator decodes the raw stream itself otherwise.
	Frames FrameSource
	// Warm keeps decoding the raw stream while nobody watches (the encoder still runs only while watched),
	// so that a joining reader's first frame is the camera's next frame rather than the frame after the
	// camera's next keyframe. Costs one decoder's CPU per camera.
	Warm bool
}

// Stats counts what an Annotator did.
type Stats struct {
	// Running is true while the annotator reads the raw stream.
	Running bool `json:"running"`
	// Starts counts how often it started reading (first reader after none, or Warm).
	Starts uint64 `json:"starts"`
	// Frames drawn and encoded; AccessUnits written to the annotated stream.
	Frames      uint64 `json:"frames"`
	AccessUnits uint64 `json:"accessUnits"`
	// Skipped counts frames decoded but not encoded because newer ones were waiting (a GOP backlog at
	// start, or catching up after a stall).
	Skipped uint64 `json:"skipped"`
	// DecodeErrors counts corrupt raw access units (the decoder restarts at the next keyframe).
	DecodeErrors uint64 `json:"decodeErrors"`
	// Decoder is the decoding path in use ("" before the first access unit; "shared" while frames come
	// from Config.Frames); Encoder the libavcodec encoder.
	Decoder string `json:"decoder,omitempty"`
	// SharedDecoder is true while the frames come from Config.Frames.
	SharedDecoder bool   `json:"sharedDecoder"`
	Encoder       string `json:"encoder,omitempty"`
	// LastError is the last error that stopped the pipeline ("" when none).
	LastError string `json:"lastError,omitempty"`
}

// Annotator publishes a camera's annotated stream: it reads the raw stream with its own reader, decodes
// every frame, draws the boxes its BoxSource predicts for the frame's PTS (never waiting for a detector),
// encodes with codec.Encoder and writes the access units (with the raw frame's PTS, RTP time and NTP) to
// Stream(). It runs only while Stream() has readers (DESIGN.md decision 3): it starts on the first reader
// and stops, freeing decoder and encoder, when the last leaves. A joining reader or a keyframe request
// (RTCP PLI/FIR through media.Stream.RequestKeyframe) makes the next encoded frame an IDR.
type Annotator struct {
	cfg   Config
	raw   *media.Stream
	out   *media.Stream
	boxes BoxSource
	log   *slog.Logger

	wake     chan struct{}
	forceIDR atomic.Bool
	cancel   context.CancelFunc
	done     chan struct{}

	mu    sync.Mutex
	stats Stats
}

// NewAnnotator returns a started annotator for raw. It does no work until its stream gets a reader
// (unless cfg.Warm). boxes may be nil (frames are re-encoded with zones only). Close it when the camera
// goes away.
func NewAnnotator(cfg Config, raw *media.Stream, boxes BoxSource, log *slog.Logger) *Annotator {
	if cfg.GOP <= 0 {
		cfg.GOP = 50
	}
	if cfg.FPS <= 0 {
		cfg.FPS = 25
	}
	if cfg.TrailLen <= 0 {
		cfg.TrailLen = 25
	}
	if boxes == nil {
		boxes = BoxFunc(func(time.Duration) []Box { return nil })
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Annotator{
		cfg:   cfg,
		raw:   raw,
		out:   media.NewStream(cfg.Camera + "/annotated"),
		boxes: boxes,
		log:   log.With("camera", cfg.Camera, "stage", "annotate"),
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	a.out.SetParams(media.Params{Codec: media.CodecH264})
	a.out.SetKeyframeRequester(func() { a.forceIDR.Store(true) })
	a.out.SetReaderObserver(func(_ int, joined bool) {
		if joined {
			a.forceIDR.Store(true)
		}
		a.poke()
	})
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go a.supervise(ctx)
	a.poke()
	return a
}

// Stream returns the annotated stream (H.264). It is closed by Close.
func (a *Annotator) Stream() *media.Stream { return a.out }

// Stats returns the annotator's counters.
func (a *Annotator) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stats
}

// Close stops the pipeline, waits for it, and closes the annotated stream (its readers end).
func (a *Annotator) Close() {
	a.cancel()
	<-a.done
	a.out.SetReaderObserver(nil)
	a.out.SetKeyframeRequester(nil)
	a.out.Close()
}

func (a *Annotator) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *Annotator) update(fn func(*Stats)) {
	a.mu.Lock()
	fn(&a.stats)
	a.mu.Unlock()
}

// errRawClosed ends the pipeline for good: the camera's raw stream was closed.
var errRawClosed = errors.New("raw stream closed")

// supervise starts the pipeline when the annotated stream gains its first reader and stops it when the
// last leaves. It owns the pipeline goroutine.
func (a *Annotator) supervise(ctx context.Context) {
	defer close(a.done)
	var (
		stop     context.CancelFunc
		finished chan error
		rawGone  bool
	)
	halt := func() {
		if stop != nil {
			stop()
			<-finished
			stop, finished = nil, nil
			a.update(func(s *Stats) { s.Running = false })
		}
	}
	defer halt()
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-finished:
			stop()
			stop, finished = nil, nil
			a.update(func(s *Stats) { s.Running = false })
			if errors.Is(err, errRawClosed) {
				rawGone = true
				a.log.Info("raw stream closed; annotated stream idle")
			} else if err != nil {
				a.log.Error("annotated pipeline stopped", "err", err)
				a.update(func(s *Stats) { s.LastError = err.Error() })
			}
			continue // restart on the next reader change, not in a loop
		case <-a.wake:
		}
		want := (a.out.Stats().Readers > 0 || a.cfg.Warm) && !rawGone && !a.raw.Closed()
		switch {
		case want && stop == nil:
			pctx, cancel := context.WithCancel(ctx)
			stop, finished = cancel, make(chan error, 1)
			a.update(func(s *Stats) { s.Running = true; s.Starts++ })
			a.log.Debug("annotated pipeline starting", "readers", a.out.Stats().Readers)
			go func() { finished <- a.run(pctx) }()
		case !want && stop != nil:
			halt()
			a.log.Debug("annotated pipeline stopped: no readers")
		}
	}
}

// maxRewind bounds continuity's skipping: a frame more than this before the last one written is a
// restarted source (an RTSP reconnect may start its timestamps over), not a replay, and is encoded.
const maxRewind = 5 * time.Second

// continuity keeps one run's output moving forward when it switches between the shared decoder and its
// own: the two decoders are at different places in the stream, so the new pipeline's first frames may be
// ones the old one already wrote (the same RTP timestamp twice, or going back). Those are not encoded
// again. Owned by the run goroutine.
type continuity struct {
	last     time.Duration // PTS of the last frame written
	wrote    bool
	resuming bool // the current pipeline has not yet passed last
}

// restart marks the start of a new pipeline in the run.
func (c *continuity) restart() { c.resuming = true }

// replayed reports whether a frame at pts was already written by an earlier pipeline of the run.
func (c *continuity) replayed(pts time.Duration) bool {
	if !c.resuming {
		return false
	}
	if c.wrote && pts <= c.last && c.last-pts < maxRewind {
		return true
	}
	c.resuming = false
	return false
}

func (c *continuity) written(pts time.Duration) { c.last, c.wrote = pts, true }

// pipeline is the state of one run: decoder, encoder and trails, owned by the run goroutine.
type pipeline struct {
	cont   *continuity
	dec    *codec.Decoder
	codec  media.Codec
	enc    *codec.Encoder
	encW   int
	encH   int
	encF   codec.PixelFormat
	frames []*codec.Frame
	aus    []*media.AccessUnit
	trails *trails
}

func (p *pipeline) encMatches(f *codec.Frame) bool {
	return f.Width == p.encW && f.Height == p.encH && f.Format == p.encF
}

func (p *pipeline) close() {
	if p.dec != nil {
		p.dec.Close()
	}
	if p.enc != nil {
		p.enc.Close()
	}
	for _, f := range p.frames {
		f.Release()
	}
}

// staleAfter is how old (since it arrived) a raw access unit must be, with newer ones already queued, for
// the annotator to decode it without drawing and encoding it: a GOP backlog or a stall is skipped
// through at decoding speed, and the first encoded frame is a current one.
const staleAfter = 100 * time.Millisecond

// run annotates the shared decoder's frames while there is one (Config.Frames), else decodes the raw
// stream itself (runOwn), until ctx ends (nil) or the raw stream closes (errRawClosed).
func (a *Annotator) run(ctx context.Context) error {
	cont := &continuity{}
	for {
		if a.cfg.Frames != nil {
			if handled, err := a.runShared(ctx, cont); handled {
				return err
			}
		}
		if err := a.runOwn(ctx, cont); !errors.Is(err, errSharedAvailable) {
			return err
		}
	}
}

// errSharedAvailable ends runOwn when Config.Frames starts offering frames (the analytics pipeline
// started after the annotator).
var errSharedAvailable = errors.New("shared decoder available")

// sharedProbeEvery is how often runOwn checks whether Config.Frames offers frames now.
const sharedProbeEvery = time.Second

// sharedAvailable reports whether Config.Frames offers frames now.
func (a *Annotator) sharedAvailable() bool {
	if a.cfg.Frames == nil {
		return false
	}
	cancel, _, ok := a.cfg.Frames.SubscribeFrames(func(*codec.Frame) {})
	cancel()
	return ok
}

// runOwn reads, decodes, draws and encodes until ctx ends (nil) or the raw stream closes (errRawClosed).
// It starts from the raw stream's GOP cache when there is one (media.Stream.KeepGOP): the first
// annotated frame then follows the join by one decode of the GOP so far, not by up to a whole GOP.
func (a *Annotator) runOwn(ctx context.Context, cont *continuity) error {
	started := time.Now()
	r := a.raw.NewReaderFromGOP(a.cfg.QueueLen)
	defer r.Close()
	backlog := r.Len()
	cont.restart()
	p := &pipeline{cont: cont, trails: newTrails(a.cfg.TrailLen)}
	defer p.close()
	first := true
	probed := time.Now()
	for {
		if time.Since(probed) > sharedProbeEvery {
			if a.sharedAvailable() {
				a.log.Debug("shared decoder available; switching to it")
				return errSharedAvailable
			}
			probed = time.Now()
		}
		au, err := r.Read(ctx)
		if errors.Is(err, media.ErrStreamClosed) {
			return errRawClosed
		}
		if err != nil {
			return nil // ctx ended
		}
		if p.dec == nil || au.Codec != p.codec {
			if err := a.openDecoder(p, au.Codec); err != nil {
				return err
			}
		}
		stale := !au.Received.IsZero() && time.Since(au.Received) > staleAfter && r.Len() > 0
		p.frames, err = p.dec.Decode(au, p.frames[:0])
		if err != nil {
			if !errors.Is(err, codec.ErrCorrupt) {
				return fmt.Errorf("decode %s: %w", a.cfg.Camera, err)
			}
			a.update(func(s *Stats) { s.DecodeErrors++ })
			a.log.Debug("corrupt access unit; waiting for a keyframe", "err", err)
		}
		for i, f := range p.frames {
			if stale {
				f.Release()
				p.frames[i] = nil
				a.update(func(s *Stats) { s.Skipped++ })
				continue
			}
			err := a.annotate(p, f)
			f.Release()
			p.frames[i] = nil
			if first && err == nil && p.enc != nil {
				first = false
				a.log.Debug("first annotated frame", "after", time.Since(started), "gop_backlog", backlog,
					"skipped", a.Stats().Skipped)
			}
			if err != nil {
				for _, g := range p.frames[i+1:] {
					g.Release()
				}
				p.frames = p.frames[:0]
				return err
			}
		}
		p.frames = p.frames[:0]
	}
}

func (a *Annotator) openDecoder(p *pipeline, c media.Codec) error {
	if p.dec != nil {
		p.dec.Close()
		p.dec = nil
	}
	if c == "" {
		c = a.raw.Params().Codec
	}
	dec, err := codec.NewDecoder(codec.DecoderConfig{Codec: c, Params: a.raw.Params(), Accel: a.cfg.DecoderAccel})
	if err != nil {
		return fmt.Errorf("open decoder for %s: %w", a.cfg.Camera, err)
	}
	p.dec, p.codec = dec, c
	a.update(func(s *Stats) { s.Decoder = string(dec.Accel()) })
	return nil
}

// annotate draws the boxes predicted for f and encodes it, when someone watches.
func (a *Annotator) annotate(p *pipeline, f *codec.Frame) error {
	if a.cfg.Warm && a.out.Stats().Readers == 0 {
		if p.enc != nil { // nobody watches: free the encoder, keep decoding
			p.enc.Close()
			p.enc = nil
		}
		return nil
	}
	if p.cont != nil && p.cont.replayed(f.PTS) {
		a.update(func(s *Stats) { s.Skipped++ })
		return nil
	}
	boxes := a.boxes.Boxes(f.PTS)
	if err := f.MakeWritable(); err != nil {
		return fmt.Errorf("annotate %s: %w", a.cfg.Camera, err)
	}
	im, err := FrameImage(f)
	if err != nil {
		return fmt.Errorf("annotate %s: %w", a.cfg.Camera, err)
	}
	im.Draw(Scene{Boxes: boxes, Trails: p.trails.update(boxes), Zones: a.cfg.Zones}, StyleFor(f.Height))
	if err := a.ensureEncoder(p, f); err != nil {
		return err
	}
	if a.forceIDR.Swap(false) {
		p.enc.ForceKeyframe()
	}
	p.aus, err = p.enc.Encode(f, p.aus[:0])
	if err != nil {
		return fmt.Errorf("encode %s: %w", a.cfg.Camera, err)
	}
	// Counted before they are written, so that a reader holding an access unit sees it in Stats.
	n := uint64(len(p.aus))
	a.update(func(s *Stats) { s.Frames++; s.AccessUnits += n })
	if p.cont != nil && n > 0 {
		p.cont.written(f.PTS)
	}
	for i, au := range p.aus {
		a.out.Write(au)
		p.aus[i] = nil
	}
	return nil
}

// ensureEncoder opens the encoder for f's size and format (again when they change).
func (a *Annotator) ensureEncoder(p *pipeline, f *codec.Frame) error {
	if p.enc != nil && p.encMatches(f) {
		return nil
	}
	if p.enc != nil {
		p.enc.Close()
		p.enc = nil
	}
	rate := a.cfg.BitrateBps
	if rate <= 0 {
		rate = max(500_000, int(int64(2_000_000)*int64(f.Width*f.Height)/(1280*720)))
	}
	enc, err := codec.NewEncoder(codec.EncoderConfig{Width: f.Width, Height: f.Height, Format: f.Format,
		Accel: a.cfg.EncoderAccel, BitrateBps: rate, GOP: a.cfg.GOP, FPS: a.cfg.FPS})
	if err != nil {
		return fmt.Errorf("open encoder for %s (%dx%d): %w", a.cfg.Camera, f.Width, f.Height, err)
	}
	p.enc = enc
	p.encW, p.encH, p.encF = f.Width, f.Height, f.Format
	a.update(func(s *Stats) { s.Encoder = enc.Name() })
	return nil
}
