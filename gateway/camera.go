package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sync"
	"time"

	"sightline/analytics/pipeline"
	"sightline/filesource"
	"sightline/media"
	"sightline/overlay"
	"sightline/rtsp"
	"sightline/webrtc"
)

// source is what every camera input (RTSP, file, WHIP) offers the registry.
type source interface {
	Run(ctx context.Context) error
	Status() media.SourceStatus
}

// camera is one configured camera: its raw stream and the source that feeds it. The stream outlives
// the source: changing a camera's URL swaps the source and keeps the stream (and its viewers).
type camera struct {
	cfg     CameraConfig
	raw     *media.Stream
	source  source // nil when disabled
	stopped bool   // stopped by an operator (POST .../stop); persisted

	cancel context.CancelFunc // non-nil while the source runs
	done   chan struct{}

	// Analytics (nil pipe when analytics is off or the camera disabled): the pipeline runs while the
	// source runs, reading raw with its own reader, and publishes on meta (which, like raw, outlives it).
	meta *media.Fanout[*media.Meta]
	pipe *pipeline.Pipeline
	// ann publishes the annotated stream (decode, draw the pipeline's predicted boxes and the rules'
	// zones, encode) while it has readers; replaced with the camera's configuration.
	ann *overlay.Annotator
}

// registry owns the cameras and their pipelines' lifetimes. Changes (add, replace, remove, start,
// stop) are serialized by ops; mu guards the map for readers.
type registry struct {
	log       *slog.Logger
	newSource func(CameraConfig, *media.Stream) (source, error)
	// newPipeline builds a camera's analytics; nil when analytics is off.
	newPipeline func(CameraConfig, *media.Stream, *media.Fanout[*media.Meta]) (*pipeline.Pipeline, error)

	ops     sync.Mutex
	mu      sync.RWMutex
	cameras map[string]*camera
	order   []string
	ctx     context.Context // set by startAll; nil before
	wg      sync.WaitGroup
}

func newRegistry(log *slog.Logger, newSource func(CameraConfig, *media.Stream) (source, error)) *registry {
	return &registry{log: log, newSource: newSource, cameras: map[string]*camera{}}
}

// errCameraExists and errNoCamera are returned by add and by changes to unknown cameras.
var (
	errCameraExists = errors.New("camera already exists")
	errNoCamera     = errors.New("no such camera")
)

// add creates a camera's stream and source, and starts it when the registry runs.
func (r *registry) add(cc CameraConfig, stopped bool) error {
	r.ops.Lock()
	defer r.ops.Unlock()
	if _, ok := r.get(cc.ID); ok {
		return fmt.Errorf("camera %s: %w", cc.ID, errCameraExists)
	}
	cam := &camera{cfg: cc, raw: media.NewStream(cc.ID + "/raw"), stopped: stopped, meta: media.NewFanout[*media.Meta](cc.ID + "/meta")}
	// The GOP cache lets the annotated track and snapshots show a current picture at once.
	cam.raw.KeepGOP()
	if cc.IsEnabled() {
		src, err := r.newSource(cc, cam.raw)
		if err != nil {
			return fmt.Errorf("camera %s: %w", cc.ID, err)
		}
		cam.source = src
		if cam.pipe, err = r.pipelineFor(cc, cam); err != nil {
			return err
		}
	}
	cam.ann = r.annotatorFor(cam, cc)
	r.mu.Lock()
	r.cameras[cc.ID] = cam
	r.order = append(r.order, cc.ID)
	r.mu.Unlock()
	r.runLocked(cam)
	return nil
}

// replace gives a camera a new configuration: the old source stops, a new one feeds the same stream.
// Other cameras are untouched.
func (r *registry) replace(cc CameraConfig) error {
	r.ops.Lock()
	defer r.ops.Unlock()
	cam, ok := r.get(cc.ID)
	if !ok {
		return fmt.Errorf("camera %s: %w", cc.ID, errNoCamera)
	}
	var src source
	var pipe *pipeline.Pipeline
	if cc.IsEnabled() {
		var err error
		if src, err = r.newSource(cc, cam.raw); err != nil {
			return fmt.Errorf("camera %s: %w", cc.ID, err)
		}
		if pipe, err = r.pipelineFor(cc, cam); err != nil {
			return err
		}
	}
	r.haltLocked(cam)
	// The annotated stream ends (its viewers reconnect to the new one): zones may have changed.
	r.mu.Lock()
	old := cam.ann
	r.mu.Unlock()
	old.Close()
	r.mu.Lock()
	cam.cfg, cam.source = cc, src
	cam.pipe = pipe
	r.mu.Unlock()
	ann := r.annotatorFor(cam, cc)
	r.mu.Lock()
	cam.ann = ann
	r.mu.Unlock()
	r.runLocked(cam)
	return nil
}

// remove stops a camera and closes its stream, which ends its viewers.
func (r *registry) remove(id string) error {
	r.ops.Lock()
	defer r.ops.Unlock()
	cam, ok := r.get(id)
	if !ok {
		return fmt.Errorf("camera %s: %w", id, errNoCamera)
	}
	r.haltLocked(cam)
	r.mu.Lock()
	delete(r.cameras, id)
	r.order = slices.DeleteFunc(r.order, func(s string) bool { return s == id })
	r.mu.Unlock()
	cam.ann.Close()
	cam.raw.Close()
	cam.meta.Close()
	return nil
}

// pipelineFor builds cc's analytics pipeline (nil when analytics is off).
func (r *registry) pipelineFor(cc CameraConfig, cam *camera) (*pipeline.Pipeline, error) {
	if r.newPipeline == nil {
		return nil, nil
	}
	p, err := r.newPipeline(cc, cam.raw, cam.meta)
	if err != nil {
		return nil, fmt.Errorf("camera %s: analytics: %w", cc.ID, err)
	}
	return p, nil
}

// setStopped stops or starts a camera's source (the operator's switch); the camera stays configured.
func (r *registry) setStopped(id string, stopped bool) error {
	r.ops.Lock()
	defer r.ops.Unlock()
	cam, ok := r.get(id)
	if !ok {
		return fmt.Errorf("camera %s: %w", id, errNoCamera)
	}
	r.mu.Lock()
	cam.stopped = stopped
	r.mu.Unlock()
	if stopped {
		r.haltLocked(cam)
	} else {
		r.runLocked(cam)
	}
	return nil
}

// runLocked starts cam's source if the registry runs and the camera should (r.ops held).
func (r *registry) runLocked(cam *camera) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctx == nil || cam.source == nil || cam.stopped || cam.cancel != nil {
		return
	}
	cctx, cancel := context.WithCancel(r.ctx)
	src, done := cam.source, make(chan struct{})
	cam.cancel, cam.done = cancel, done
	pipe, id := cam.pipe, cam.cfg.ID
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(done)
		var analysing sync.WaitGroup
		if pipe != nil {
			analysing.Add(1)
			go func() {
				defer analysing.Done()
				if err := pipe.Run(cctx); err != nil {
					r.log.Error("camera analytics ended", "camera", id, "err", err)
				}
			}()
		}
		if err := src.Run(cctx); err != nil && !errors.Is(err, context.Canceled) {
			r.log.Error("camera source ended", "camera", id, "err", err)
		}
		analysing.Wait() // until the camera is halted (cancel)
	}()
}

// haltLocked stops cam's source and waits for it (r.ops held, r.mu not).
func (r *registry) haltLocked(cam *camera) {
	r.mu.Lock()
	cancel, done := cam.cancel, cam.done
	cam.cancel, cam.done = nil, nil
	r.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// startAll runs every enabled, not stopped camera's source until ctx ends or the camera is stopped.
func (r *registry) startAll(ctx context.Context) {
	r.ops.Lock()
	defer r.ops.Unlock()
	r.mu.Lock()
	r.ctx = ctx
	r.mu.Unlock()
	for _, cam := range r.list() {
		r.runLocked(cam)
	}
}

// close stops every source, waits for them and closes the streams so readers end.
func (r *registry) close() {
	r.ops.Lock()
	defer r.ops.Unlock()
	for _, cam := range r.list() {
		r.haltLocked(cam)
	}
	r.wg.Wait()
	// Annotators first, without r.mu: their box source reads the camera's pipeline under it.
	for _, cam := range r.list() {
		cam.ann.Close()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ctx = nil
	for _, cam := range r.cameras {
		cam.raw.Close()
		cam.meta.Close()
	}
}

func (r *registry) get(id string) (*camera, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	cam, ok := r.cameras[id]
	return cam, ok
}

func (r *registry) list() []*camera {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*camera, 0, len(r.order))
	for _, id := range r.order {
		out = append(out, r.cameras[id])
	}
	return out
}

// snapshot returns a camera's configuration, whether an operator stopped it, and its source status:
// disabled cameras report StateDisabled, stopped ones StateStopped.
func (r *registry) snapshot(c *camera) (CameraConfig, bool, media.SourceStatus) {
	r.mu.RLock()
	cfg, src, stopped, running := c.cfg, c.source, c.stopped, c.cancel != nil
	r.mu.RUnlock()
	switch {
	case src == nil:
		return cfg, stopped, media.SourceStatus{State: media.StateDisabled}
	case stopped || (!running && r.isRunning()):
		st := src.Status()
		st.State = media.StateStopped
		st.FPS, st.BitrateBps = 0, 0
		return cfg, stopped, st
	}
	return cfg, stopped, src.Status()
}

// analyticsStatus returns the camera's analytics status, nil without a pipeline.
func (r *registry) analyticsStatus(c *camera) *pipeline.Status {
	r.mu.RLock()
	p := c.pipe
	r.mu.RUnlock()
	if p == nil {
		return nil
	}
	st := p.Status()
	return &st
}

// annotatorStats returns the counters of the camera's annotator (decoder in use, frames, ...).
func (r *registry) annotatorStats(c *camera) overlay.Stats {
	r.mu.RLock()
	a := c.ann
	r.mu.RUnlock()
	return a.Stats()
}

// annotated returns the camera's annotated stream.
func (r *registry) annotated(c *camera) *media.Stream {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return c.ann.Stream()
}

func (r *registry) isRunning() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.ctx != nil
}

// newSource builds the source a camera's URL names (file:, rtsp[s]:// or whip:).
func newSource(cfg *Config, cc CameraConfig, out *media.Stream, log *slog.Logger) (source, error) {
	kind, err := cameraKind(cc.URL)
	if err != nil {
		return nil, err
	}
	if kind == kindWHIP {
		return webrtc.NewWHIPSource(out, log), nil
	}
	if kind == kindFile {
		path, err := cfg.filePath(cc.URL)
		if err != nil {
			return nil, err
		}
		return filesource.New(filesource.Config{Path: path, Loop: true, Logger: log}, out), nil
	}
	u := cc.URL
	if cc.Username != "" || cc.Password != "" {
		parsed, err := url.Parse(cc.URL)
		if err != nil {
			return nil, fmt.Errorf("parse url %s: %w", rtsp.Redact(cc.URL), err)
		}
		parsed.User = url.UserPassword(cc.Username, cc.Password)
		u = parsed.String()
	}
	return rtsp.New(rtsp.Config{
		URL:         u,
		Transport:   cc.Transport,
		ReadTimeout: time.Duration(cc.ReadTimeout),
		TLSInsecure: cc.TLSInsecure,
		Logger:      log,
	}, out), nil
}
