package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"sightline/filesource"
	"sightline/media"
	"sightline/rtsp"
)

// source is what every camera input (RTSP, file) offers the registry.
type source interface {
	Run(ctx context.Context) error
	Status() media.SourceStatus
}

// camera is one configured camera: its raw stream and the source that feeds it.
type camera struct {
	cfg    CameraConfig
	raw    *media.Stream
	source source // nil when disabled

	cancel context.CancelFunc
	done   chan struct{}
}

// registry owns the cameras and their pipelines' lifetimes.
type registry struct {
	log *slog.Logger

	mu      sync.RWMutex
	cameras map[string]*camera
	order   []string
	wg      sync.WaitGroup
}

func newRegistry(log *slog.Logger) *registry {
	return &registry{log: log, cameras: map[string]*camera{}}
}

// add creates a camera's stream and source; it does not start it.
func (r *registry) add(cfg *Config, cc CameraConfig) error {
	cam := &camera{cfg: cc, raw: media.NewStream(cc.ID + "/raw")}
	if cc.IsEnabled() {
		src, err := newSource(cfg, cc, cam.raw, r.log.With("camera", cc.ID))
		if err != nil {
			return fmt.Errorf("camera %s: %w", cc.ID, err)
		}
		cam.source = src
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.cameras[cc.ID]; dup {
		return fmt.Errorf("camera %s already exists", cc.ID)
	}
	r.cameras[cc.ID] = cam
	r.order = append(r.order, cc.ID)
	return nil
}

func newSource(cfg *Config, cc CameraConfig, out *media.Stream, log *slog.Logger) (source, error) {
	kind, err := cameraKind(cc.URL)
	if err != nil {
		return nil, err
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

// startAll runs every enabled camera's source until ctx ends or the camera is stopped.
func (r *registry) startAll(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range r.order {
		cam := r.cameras[id]
		if cam.source == nil || cam.cancel != nil {
			continue
		}
		cctx, cancel := context.WithCancel(ctx)
		cam.cancel, cam.done = cancel, make(chan struct{})
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer close(cam.done)
			if err := cam.source.Run(cctx); err != nil && !errors.Is(err, context.Canceled) {
				r.log.Error("camera source ended", "camera", cam.cfg.ID, "err", err)
			}
		}()
	}
}

// close stops every source, waits for them and closes the streams so readers end.
func (r *registry) close() {
	r.mu.Lock()
	for _, cam := range r.cameras {
		if cam.cancel != nil {
			cam.cancel()
		}
	}
	r.mu.Unlock()
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, cam := range r.cameras {
		cam.raw.Close()
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

// status returns the camera's source status; disabled cameras report StateDisabled.
func (c *camera) status() media.SourceStatus {
	if c.source == nil {
		return media.SourceStatus{State: media.StateDisabled}
	}
	return c.source.Status()
}
