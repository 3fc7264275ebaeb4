package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"sightline/alerts"
	"sightline/analytics"
	"sightline/analytics/onnx"
	"sightline/analytics/pipeline"
	"sightline/analytics/pool"
	"sightline/analytics/rules"
	"sightline/analytics/sampler"
	"sightline/codec"
	"sightline/media"
	"sightline/metrics"
)

// AnalyticsConfig configures live analytics. Without the section analytics is off; with it every
// enabled camera is decoded and analysed. Without a model or ONNX Runtime library (absent or unreadable)
// the motion detector runs instead, and status and logs say so.
type AnalyticsConfig struct {
	// Enabled turns analytics off when false (default true when the section is present).
	Enabled *bool `yaml:"enabled"`
	// ONNXLibrary is libonnxruntime.so (1.24.x); Model the YOLOX / YOLOv8 / YOLO11 .onnx file. Relative
	// paths are relative to the config file's folder.
	ONNXLibrary string `yaml:"onnxLibrary"`
	Model       string `yaml:"model"`
	// FPS caps analysed frames per second per camera (default 5).
	FPS float64 `yaml:"fps"`
	// MotionGate skips inference while nothing moves, forcing a frame every ForceEvery (default 2s).
	MotionGate bool     `yaml:"motionGate"`
	ForceEvery Duration `yaml:"forceEvery"`
	// KeyframesOnly decodes and analyses keyframes only (cheapest; about 1 fps on most cameras).
	KeyframesOnly bool `yaml:"keyframesOnly"`
	// Decoder: auto (VAAPI, CUDA, software), vaapi, cuda or software.
	Decoder string `yaml:"decoder"`
	// Workers is the number of model sessions shared by all cameras (default 1); Threads ONNX Runtime's
	// intra-op threads per session (default 1); Provider cpu, cuda or tensorrt (falls back to cpu).
	Workers  int    `yaml:"workers"`
	Threads  int    `yaml:"threads"`
	Provider string `yaml:"provider"`
	// MaxBatch batches frames of several cameras per inference for models with a dynamic batch axis,
	// waiting at most BatchWait (default 5ms) for them.
	MaxBatch  int      `yaml:"maxBatch"`
	BatchWait Duration `yaml:"batchWait"`
	// QueueLen is how many sampled frames per camera may wait for inference (default 2); older ones are
	// dropped and counted.
	QueueLen int `yaml:"queueLen"`
	// ScoreThreshold (default 0.3), NMSIoU (default 0.45), Classes (only these labels; empty: all).
	ScoreThreshold float32  `yaml:"scoreThreshold"`
	NMSIoU         float32  `yaml:"nmsIoU"`
	Classes        []string `yaml:"classes"`
	// KeepEvents is how many recent rule events GET /api/v1/events can list (default 1000).
	KeepEvents int `yaml:"keepEvents"`
}

// CameraAnalytics overrides the analytics section for one camera; a key left out takes the section's
// value. It tunes what this camera costs: a busy entrance analysed at 10 fps, a quiet yard at 1 fps
// behind the motion gate, a car park that only reports cars, a camera that only streams.
type CameraAnalytics struct {
	// Enabled false runs no analytics on this camera: no decoder for it, no boxes, Meta or events (its
	// annotated track shows the plain picture). Its rules are then refused.
	Enabled *bool `yaml:"enabled" json:"enabled,omitempty"`
	// FPS, MotionGate, ForceEvery, KeyframesOnly and Decoder as in the analytics section.
	FPS           float64  `yaml:"fps" json:"fps,omitempty"`
	MotionGate    *bool    `yaml:"motionGate" json:"motionGate,omitempty"`
	ForceEvery    Duration `yaml:"forceEvery" json:"forceEvery,omitempty"`
	KeyframesOnly *bool    `yaml:"keyframesOnly" json:"keyframesOnly,omitempty"`
	Decoder       string   `yaml:"decoder" json:"decoder,omitempty"`
	// Classes keeps only these of the model's labels for this camera (they must be among
	// analytics.classes when that is set); ScoreThreshold raises the section's threshold for it. Both
	// filter the model's detections before tracking, so rules, Meta and boxes see only what is kept;
	// the motion detector's boxes are not filtered.
	Classes        []string `yaml:"classes" json:"classes,omitempty"`
	ScoreThreshold float32  `yaml:"scoreThreshold" json:"scoreThreshold,omitempty"`
}

// analyticsOn reports whether the camera runs analytics (the section is on and the camera does not turn
// it off).
func (c CameraConfig) analyticsOn(a *AnalyticsConfig) bool {
	return a.On() && (c.Analytics == nil || c.Analytics.Enabled == nil || *c.Analytics.Enabled)
}

// samplerConfig is the camera's sampler: the section's values with the camera's overrides.
func (c CameraConfig) samplerConfig(a *AnalyticsConfig) sampler.Config {
	s := sampler.Config{FPS: a.FPS, MotionGate: a.MotionGate, ForceEvery: time.Duration(a.ForceEvery), KeyframesOnly: a.KeyframesOnly}
	if o := c.Analytics; o != nil {
		if o.FPS != 0 {
			s.FPS = o.FPS
		}
		if o.MotionGate != nil {
			s.MotionGate = *o.MotionGate
		}
		if o.ForceEvery != 0 {
			s.ForceEvery = time.Duration(o.ForceEvery)
		}
		if o.KeyframesOnly != nil {
			s.KeyframesOnly = *o.KeyframesOnly
		}
	}
	return s
}

// decoder is the camera's decoder preference.
func (c CameraConfig) decoder(a *AnalyticsConfig) codec.Accel {
	if c.Analytics != nil && c.Analytics.Decoder != "" {
		return codec.Accel(c.Analytics.Decoder)
	}
	return codec.Accel(a.Decoder)
}

// validateCameraAnalytics checks cameras[i].analytics; prefix as in validateCamera.
func (cfg *Config) validateCameraAnalytics(c *CameraConfig, prefix string) error {
	o := c.Analytics
	if o == nil {
		return nil
	}
	key := prefix + "analytics"
	off := o.Enabled != nil && !*o.Enabled
	if off && len(c.Rules) > 0 {
		return keyErr(prefix+"rules", "rules need analytics, which %s.enabled turns off for this camera", key)
	}
	if cfg.Analytics == nil {
		if off {
			return nil
		}
		return keyErr(key, "needs the top-level analytics section (model, fps, ...) to override")
	}
	if err := c.samplerConfig(cfg.Analytics).Validate(); err != nil {
		k, msg, _ := strings.Cut(err.Error(), ":")
		return keyErr(key+"."+k, "%s", strings.TrimSpace(msg))
	}
	if _, err := codec.ParseAccel(o.Decoder); err != nil {
		return keyErr(key+".decoder", "%v", err)
	}
	if s := o.ScoreThreshold; s < 0 || s > 1 || math.IsNaN(float64(s)) {
		return keyErr(key+".scoreThreshold", "want 0..1")
	}
	for i, cl := range o.Classes {
		k := fmt.Sprintf("%s.classes[%d]", key, i)
		if cl == "" {
			return keyErr(k, "empty class name")
		}
		if g := cfg.Analytics.Classes; len(g) > 0 && !slices.Contains(g, cl) {
			return keyErr(k, "%q is not in analytics.classes (%s), so the detector never reports it", cl, strings.Join(g, ", "))
		}
	}
	return nil
}

// On reports whether analytics runs.
func (a *AnalyticsConfig) On() bool { return a != nil && (a.Enabled == nil || *a.Enabled) }

const defaultKeepEvents = 1000

// analyticsEnvKeys are the SIGHTLINE_ANALYTICS_* overrides; setting one turns the section on.
var analyticsEnvKeys = []string{"SIGHTLINE_ANALYTICS_ENABLED", "SIGHTLINE_ANALYTICS_ONNXLIBRARY", "SIGHTLINE_ANALYTICS_MODEL",
	"SIGHTLINE_ANALYTICS_FPS", "SIGHTLINE_ANALYTICS_WORKERS"}

// applyAnalyticsEnv applies one SIGHTLINE_ANALYTICS_* variable.
func applyAnalyticsEnv(cfg *Config, k, v string) error {
	if cfg.Analytics == nil {
		cfg.Analytics = &AnalyticsConfig{}
	}
	a := cfg.Analytics
	var err error
	switch k {
	case "SIGHTLINE_ANALYTICS_ENABLED":
		var b bool
		if b, err = strconv.ParseBool(v); err == nil {
			a.Enabled = &b
		}
	case "SIGHTLINE_ANALYTICS_ONNXLIBRARY":
		a.ONNXLibrary = v
	case "SIGHTLINE_ANALYTICS_MODEL":
		a.Model = v
	case "SIGHTLINE_ANALYTICS_FPS":
		a.FPS, err = strconv.ParseFloat(v, 64)
	case "SIGHTLINE_ANALYTICS_WORKERS":
		a.Workers, err = strconv.Atoi(v)
	default:
		return fmt.Errorf("%s: unknown setting (known: %s)", k, strings.Join(analyticsEnvKeys, ", "))
	}
	return err
}

func (cfg *Config) validateAnalytics() error {
	a := cfg.Analytics
	if a == nil {
		return nil
	}
	if err := (sampler.Config{FPS: a.FPS, ForceEvery: time.Duration(a.ForceEvery)}).Validate(); err != nil {
		return keyErr("analytics."+strings.SplitN(err.Error(), ":", 2)[0], "%s", strings.TrimSpace(strings.SplitN(err.Error(), ":", 2)[1]))
	}
	if _, err := codec.ParseAccel(a.Decoder); err != nil {
		return keyErr("analytics.decoder", "%v", err)
	}
	switch a.Provider {
	case "", onnx.ProviderCPU, onnx.ProviderCUDA, onnx.ProviderTensorRT:
	default:
		return keyErr("analytics.provider", "%q is not one of cpu, cuda, tensorrt", a.Provider)
	}
	checks := []struct {
		key string
		bad bool
		msg string
	}{
		{"workers", a.Workers < 0 || a.Workers > 64, "want 0 (default 1) to 64 model sessions"},
		{"threads", a.Threads < 0 || a.Threads > 64, "want 0 (default 1) to 64 threads"},
		{"maxBatch", a.MaxBatch < 0 || a.MaxBatch > 64, "want 0 (the model's) to 64"},
		{"batchWait", a.BatchWait < 0 || a.BatchWait > Duration(time.Second), "want 0 (default 5ms) to 1s"},
		{"queueLen", a.QueueLen < 0 || a.QueueLen > 100, "want 0 (default 2) to 100 frames"},
		{"scoreThreshold", a.ScoreThreshold < 0 || a.ScoreThreshold > 1 || math.IsNaN(float64(a.ScoreThreshold)), "want 0..1"},
		{"nmsIoU", a.NMSIoU < 0 || a.NMSIoU > 1 || math.IsNaN(float64(a.NMSIoU)), "want 0..1"},
		{"keepEvents", a.KeepEvents < 0 || a.KeepEvents > 1_000_000, "want 0 (default 1000) to 1000000"},
	}
	for _, c := range checks {
		if c.bad {
			return keyErr("analytics."+c.key, "%s", c.msg)
		}
	}
	for i, c := range a.Classes {
		if c == "" {
			return keyErr(fmt.Sprintf("analytics.classes[%d]", i), "empty class name")
		}
	}
	return nil
}

// validateRules checks a camera's rules; errors name cameras[i].rules[j].key.
func validateRules(c *CameraConfig, prefix string) error {
	if err := rules.Validate(c.Rules); err != nil {
		first := strings.SplitN(err.Error(), "\n", 2)[0]
		key, msg, _ := strings.Cut(first, ": ")
		return keyErr(prefix+key, "%s", msg)
	}
	return nil
}

// analyticsPath resolves a model or library path against the config's folder.
func (cfg *Config) analyticsPath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(cfg.baseDir, p)
}

// analyticsRuntime is what all cameras' analytics share: the model sessions and their pool, and the
// recent events.
type analyticsRuntime struct {
	cfg      *Config
	log      *slog.Logger
	detector string // onnx or motion
	reason   string // why motion, when it is
	dets     []analytics.Detector
	pool     *pool.Pool
	metrics  *metrics.Analytics // stage durations, detections and events per camera

	// Alerts: the hub numbers, keeps and fans out events; snapshots renders their frames (nil when off);
	// webhooks, MQTT and Kafka sinks deliver them. The worker goroutines run until close.
	hub       *alerts.Hub
	snapshots *snapshotStore
	webhooks  []*alerts.Webhook
	mqtt      []*alerts.MQTT
	kafka     []*alerts.Kafka
	publicURL string
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// newAnalytics loads the model (or settles for motion detection); nil when analytics is off.
func newAnalytics(cfg *Config, log *slog.Logger, wrap func(analytics.Detector) analytics.Detector) (_ *analyticsRuntime, err error) {
	a := cfg.Analytics
	if !a.On() {
		return nil, nil
	}
	keep := a.KeepEvents
	if keep == 0 {
		keep = defaultKeepEvents
	}
	rt := &analyticsRuntime{cfg: cfg, log: log, detector: pipeline.DetectorMotion, metrics: metrics.NewAnalytics()}
	if err := rt.startAlerts(keep); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			rt.close()
		}
	}()
	workers := max(a.Workers, 1)
	for i := 0; i < workers; i++ {
		d, err := onnx.New(onnx.Config{
			Library: cfg.analyticsPath(a.ONNXLibrary), Model: cfg.analyticsPath(a.Model),
			ScoreThreshold: a.ScoreThreshold, NMSIoU: a.NMSIoU, ClassFilter: a.Classes,
			IntraOpThreads: a.Threads, Provider: a.Provider, MaxBatch: a.MaxBatch, Logger: log,
		})
		if err != nil {
			if errors.Is(err, analytics.ErrUnavailable) {
				rt.closeDetectors()
				rt.reason = err.Error()
				log.Warn("analytics: no object detector, running the motion detector only", "reason", err)
				return rt, nil
			}
			return nil, fmt.Errorf("analytics: %w", err)
		}
		rt.dets = append(rt.dets, d)
	}
	sessions := rt.dets
	if wrap != nil {
		sessions = make([]analytics.Detector, len(rt.dets))
		for i, d := range rt.dets {
			sessions[i] = wrap(d)
		}
	}
	p, err := pool.New(pool.Config{Detectors: sessions, MaxBatch: a.MaxBatch, BatchWait: time.Duration(a.BatchWait), QueueLen: a.QueueLen})
	if err != nil {
		return nil, fmt.Errorf("analytics: %w", err)
	}
	rt.pool, rt.detector = p, pipeline.DetectorONNX
	spec := p.InputSpec()
	log.Info("analytics: object detector loaded", "model", cfg.analyticsPath(a.Model), "onnxruntime", onnx.RuntimeVersion(),
		"sessions", workers, "input", fmt.Sprintf("%dx%d", spec.Width, spec.Height), "batch", spec.MaxBatch)
	return rt, nil
}

// collector is what /metrics serves of analytics; nil when analytics is off.
func (rt *analyticsRuntime) collector() prometheus.Collector {
	if rt == nil {
		return nil
	}
	return rt.metrics
}

func (rt *analyticsRuntime) closeDetectors() {
	for _, d := range rt.dets {
		d.Close()
	}
	rt.dets = nil
}

func (rt *analyticsRuntime) close() {
	if rt == nil {
		return
	}
	if rt.pool != nil {
		rt.pool.Close()
	}
	rt.closeDetectors()
	rt.cancel()
	rt.hub.Close()
	rt.wg.Wait()
}

// startAlerts builds the hub, the snapshot store and the webhooks, and starts their goroutines.
func (rt *analyticsRuntime) startAlerts(keep int) error {
	ac := rt.cfg.Alerts
	rt.hub = alerts.NewHub(keep)
	rt.publicURL = strings.TrimSuffix(ac.PublicURL, "/")
	ctx, cancel := context.WithCancel(context.Background())
	rt.cancel = cancel
	var runs []func(context.Context)
	if ac.Snapshots >= 0 {
		n := ac.Snapshots
		if n == 0 {
			n = defaultSnapshots
		}
		q := ac.SnapshotQuality
		if q == 0 {
			q = defaultSnapshotQuality
		}
		rt.snapshots = newSnapshotStore(n, q, rt.log)
		runs = append(runs, rt.snapshots.run)
	}
	for i, wc := range ac.Webhooks {
		h, err := alerts.NewWebhook(wc.alertsConfig(nil, rt.log))
		if err != nil {
			cancel()
			return fmt.Errorf("alerts.webhooks[%d]: %w", i, err)
		}
		rt.webhooks = append(rt.webhooks, h)
		runs = append(runs, h.Subscribe(rt.hub))
	}
	for i, mc := range ac.MQTT {
		m, err := alerts.NewMQTT(mc.alertsConfig(rt.log))
		if err != nil {
			cancel()
			return fmt.Errorf("alerts.mqtt[%d]: %w", i, err)
		}
		rt.mqtt = append(rt.mqtt, m)
		runs = append(runs, m.Subscribe(rt.hub))
	}
	for i, kc := range ac.Kafka {
		k, err := alerts.NewKafka(kc.alertsConfig(rt.log))
		if err != nil {
			cancel()
			return fmt.Errorf("alerts.kafka[%d]: %w", i, err)
		}
		rt.kafka = append(rt.kafka, k)
		runs = append(runs, k.Subscribe(rt.hub))
	}
	for _, run := range runs {
		rt.wg.Add(1)
		go func() { defer rt.wg.Done(); run(ctx) }()
	}
	return nil
}

// newPipeline builds one camera's pipeline.
func (rt *analyticsRuntime) newPipeline(cc CameraConfig, raw *media.Stream, meta *media.Fanout[*media.Meta]) (*pipeline.Pipeline, error) {
	a := rt.cfg.Analytics
	if !cc.analyticsOn(a) {
		return nil, nil
	}
	var classes []string
	var minScore float32
	if o := cc.Analytics; o != nil {
		classes, minScore = o.Classes, o.ScoreThreshold
	}
	m := rt.metrics.Camera(cc.ID)
	zones := zonesOf(cc.Rules)
	return pipeline.New(pipeline.Config{
		Camera: cc.ID, Source: raw, Meta: meta, Pool: rt.pool,
		Events: func(b pipeline.EventBatch) {
			for _, e := range b.Events {
				m.Event(e.Rule)
			}
			rt.publishEvents(b, zones)
		},
		KeepEventFrames: rt.snapshots != nil,
		Observe:         m.ObserveStage,
		Analysed: func(dets []analytics.Detection) {
			m.Analysed()
			for _, d := range dets {
				if d.Label != "" {
					m.Detection(d.Label)
				} else {
					m.Detection(strconv.Itoa(d.Class))
				}
			}
		},
		Sampler: cc.samplerConfig(a), Accel: cc.decoder(a),
		Classes: classes, MinScore: minScore,
		Rules: cc.Rules, Logger: rt.log.With("camera", cc.ID),
	})
}

// listEvents answers GET /api/v1/events?camera=&rule=&class=&limit= (newest first, default limit 100).
func (g *Gateway) listEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10000 {
			writeError(w, http.StatusBadRequest, "bad_request", "limit must be a number from 1 to 10000")
			return
		}
		limit = n
	}
	body := map[string]any{"events": []alerts.Event{}, "analytics": "off"}
	if g.analytics != nil {
		body["events"] = g.analytics.hub.List(queryFilter(q.Get("camera"), q.Get("rule"), q.Get("class")), limit)
		body["analytics"] = g.analytics.detector
	}
	writeJSON(w, http.StatusOK, body)
}
