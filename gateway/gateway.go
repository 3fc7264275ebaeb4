package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"sightline/analytics"
	"sightline/auth"
	"sightline/media"
	"sightline/metrics"
	"sightline/webrtc"
)

// Gateway is a running Sightline: cameras, WebRTC server and HTTP listener.
type Gateway struct {
	cfg *Config
	log *slog.Logger
	// analytics is shared by every camera's pipeline; nil when analytics is off.
	analytics *analyticsRuntime

	cameras  *registry
	rtc      *webrtc.Server
	handler  http.Handler
	mux      *http.ServeMux
	policies map[string]policy   // route pattern → what it needs
	auth     *auth.Authenticator // nil when auth is disabled
	metrics  *metrics.Registry
	limits   *limiters
	proxies  proxies // http.trustedProxies
	// probeSlots bounds the POST /api/v1/probe requests running at once.
	probeSlots chan struct{}

	statePath string
	stateMu   sync.Mutex // serializes API changes: state file and registry move together
	state     *runtimeState

	srv      *http.Server
	listener net.Listener
	ready    atomic.Bool
	cancel   context.CancelFunc
	served   chan struct{} // closed when the HTTP server stops
	serveErr error         // set before served is closed
	closeOne sync.Once
}

// Option adjusts what New builds beyond the configuration (for embedding programs and benchmarks).
type Option func(*options)

type options struct {
	wrapDetector func(analytics.Detector) analytics.Detector
}

// WithDetectorWrapper wraps every model session the analytics pool runs (e.g. to slow inference down in
// a benchmark that proves video never waits for the model). It has no effect without a model.
func WithDetectorWrapper(wrap func(analytics.Detector) analytics.Detector) Option {
	return func(o *options) { o.wrapDetector = wrap }
}

// New builds every component from cfg; nothing runs until Start.
func New(cfg *Config, log *slog.Logger, opts ...Option) (_ *Gateway, err error) {
	if log == nil {
		log = slog.Default()
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	g := &Gateway{cfg: cfg, log: log, statePath: cfg.statePath(), proxies: newProxies(cfg.HTTP.TrustedProxies)}
	g.cameras = newRegistry(log, func(cc CameraConfig, out *media.Stream) (source, error) {
		return newSource(cfg, cc, out, log.With("camera", cc.ID))
	})
	if g.analytics, err = newAnalytics(cfg, log, o.wrapDetector); err != nil {
		return nil, err
	}
	if g.analytics != nil {
		g.cameras.newPipeline = g.analytics.newPipeline
		defer func() {
			if err != nil {
				g.analytics.close()
			}
		}()
	}
	if cfg.Auth.IsEnabled() {
		keys, err := cfg.publicKeys()
		if err != nil {
			return nil, fmt.Errorf("auth.jwt.publicKeyFile: %w", err)
		}
		ac := auth.Config{HS256Secret: []byte(cfg.Auth.JWT.HS256Secret), PublicKeys: keys}
		for _, t := range cfg.Auth.Tokens {
			role, _ := auth.ParseRole(t.Role) // validated
			ac.Tokens = append(ac.Tokens, auth.StaticToken{Token: t.Token, Role: role})
		}
		if g.auth, err = auth.New(ac); err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
	}
	st, err := loadState(g.statePath)
	if err != nil {
		return nil, err
	}
	cams, err := st.apply(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", g.statePath, err)
	}
	g.state = st
	for _, cc := range cams {
		if err := g.cameras.add(cc, slices.Contains(st.Stopped, cc.ID)); err != nil {
			return nil, err
		}
	}
	if len(st.Cameras)+len(st.Deleted)+len(st.Stopped) > 0 {
		log.Info("runtime camera changes loaded", "state_file", g.statePath, "changed", len(st.Cameras),
			"deleted", len(st.Deleted), "stopped", len(st.Stopped))
	}
	g.metrics = metrics.New(g.metricSamples, g.analytics.collector())
	g.limits = newLimiters(cfg.Limits)
	g.probeSlots = make(chan struct{}, maxProbes)
	rtc, err := webrtc.NewServer(webrtc.Config{
		UDPPort:         cfg.WebRTC.UDPPort,
		LoopbackOnly:    cfg.WebRTC.LoopbackOnly,
		NAT1To1IPs:      cfg.WebRTC.NAT1To1IPs,
		AdditionalHosts: cfg.WebRTC.AdditionalHosts,
		ICEServers:      cfg.WebRTC.ICEServers,
		MaxSessions:     cfg.WebRTC.MaxSessions,
		// The cap is enforced inside webrtc, atomically with session setup (concurrent offers).
		MaxSessionsPerCamera: cfg.Limits.MaxSessionsPerCamera,
		AllowOrigins:         cfg.HTTP.AllowOrigins,
		Logger:               log,
	}, g)
	if err != nil {
		return nil, fmt.Errorf("start webrtc on udp port %d: %w", cfg.WebRTC.UDPPort, err)
	}
	g.rtc = rtc
	g.handler = g.routes()
	return g, nil
}

// ResolveStream implements webrtc.StreamResolver.
func (g *Gateway) ResolveStream(cameraID, variant string) (*media.Stream, error) {
	cam, ok := g.cameras.get(cameraID)
	if !ok {
		return nil, fmt.Errorf("camera %q: %w", cameraID, webrtc.ErrUnknownCamera)
	}
	switch variant {
	case "raw", "":
		return cam.raw, nil
	case webrtc.VariantAnnotated:
		return g.cameras.annotated(cam), nil
	default:
		return nil, fmt.Errorf("camera %q has no %q stream", cameraID, variant)
	}
}

// ResolveWHIP implements webrtc.WHIPResolver: the WHIP source of a camera whose url is whip:.
func (g *Gateway) ResolveWHIP(cameraID string) (*webrtc.WHIPSource, error) {
	cam, ok := g.cameras.get(cameraID)
	if !ok {
		return nil, fmt.Errorf("camera %q: %w", cameraID, webrtc.ErrUnknownCamera)
	}
	g.cameras.mu.RLock()
	cfg, src := cam.cfg, cam.source
	g.cameras.mu.RUnlock()
	if kind, err := cameraKind(cfg.URL); err != nil || kind != kindWHIP {
		return nil, fmt.Errorf("camera %q: %w", cameraID, webrtc.ErrNotWHIPCamera)
	}
	ws, ok := src.(*webrtc.WHIPSource)
	if !ok {
		return nil, fmt.Errorf("camera %q is disabled: %w", cameraID, webrtc.ErrCameraNotRunning)
	}
	return ws, nil
}

// Handler returns the HTTP surface (for tests that serve it themselves).
func (g *Gateway) Handler() http.Handler { return g.handler }

// Start opens the HTTP listener, starts every enabled camera and returns once listening.
func (g *Gateway) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", g.cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("listen http on %s: %w", g.cfg.HTTP.Listen, err)
	}
	g.listener = ln
	runCtx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	go func() {
		<-ctx.Done()
		cancel()
	}()
	g.cameras.startAll(runCtx)
	if !g.cfg.Auth.IsEnabled() {
		g.log.Warn("authentication is DISABLED (auth.enabled: false): anyone who reaches the HTTP listener may watch, change and delete cameras",
			"http", ln.Addr().String())
	}
	for _, t := range g.cfg.Auth.Tokens {
		if len(t.Token) < 16 {
			g.log.Warn("a static token is shorter than 16 characters; use long random tokens", "role", t.Role)
		}
	}
	// Per-request read and write deadlines (limits.requestTimeout) are set by the policy middleware,
	// which leaves WebSockets alone; the server-wide ones bound headers and idle connections.
	g.srv = &http.Server{
		Handler:           g.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return runCtx },
	}
	g.served = make(chan struct{})
	go func() {
		defer close(g.served)
		if err := g.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			g.serveErr = fmt.Errorf("serve http: %w", err)
		}
	}()
	g.ready.Store(true)
	g.log.Info("sightline started", "http", ln.Addr().String(), "udp_port", g.cfg.WebRTC.UDPPort,
		"cameras", len(g.cameras.list()), "loopback_only", g.cfg.WebRTC.LoopbackOnly, "auth", g.cfg.Auth.IsEnabled())
	return nil
}

// HTTPAddr returns the address the HTTP listener is bound to.
func (g *Gateway) HTTPAddr() string {
	if g.listener == nil {
		return ""
	}
	return g.listener.Addr().String()
}

// Wait blocks until the HTTP server stops and returns its error; nil after Close.
func (g *Gateway) Wait() error {
	<-g.served
	return g.serveErr
}

// Close stops the listener, every WebRTC session and every camera, and waits for them.
func (g *Gateway) Close() error {
	var err error
	g.closeOne.Do(func() {
		g.ready.Store(false)
		if g.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err = g.srv.Shutdown(ctx)
			cancel()
		}
		if g.cancel != nil {
			g.cancel()
		}
		if cerr := g.rtc.Close(); cerr != nil && err == nil {
			err = cerr
		}
		g.cameras.close()
		g.analytics.close()
		if g.served != nil {
			<-g.served
			if g.serveErr != nil && err == nil {
				err = g.serveErr
			}
		}
	})
	return err
}

// SentFrames returns, for the camera's raw WebRTC track, the RTP timestamp and send wall-clock of the
// last frames written to viewers (empty while nobody watches). Latency benchmarks match them with what
// a viewer received.
func (g *Gateway) SentFrames(cameraID string) []webrtc.SentFrame {
	return g.rtc.SentFrames(cameraID, webrtc.VariantRaw)
}

// metricSamples is the per-camera snapshot /metrics reads at scrape time.
func (g *Gateway) metricSamples() []metrics.CameraSample {
	cams := g.cameras.list()
	rtc := map[string][]metrics.WebRTCSample{}
	for _, s := range g.rtc.Stats() {
		rtc[s.Camera] = append(rtc[s.Camera], metrics.WebRTCSample{
			Variant: s.Variant, FanoutDropped: s.FanoutDropped, ReaderDropped: s.ReaderDropped,
			Sessions: map[string]int{"new": s.Sessions.New, "connecting": s.Sessions.Connecting,
				"connected": s.Sessions.Connected, "disconnected": s.Sessions.Disconnected, "failed": s.Sessions.Failed},
		})
	}
	out := make([]metrics.CameraSample, 0, len(cams))
	for _, c := range cams {
		cfg, _, st := g.cameras.snapshot(c)
		out = append(out, metrics.CameraSample{
			ID: cfg.ID, State: string(st.State), Streaming: st.State == media.StateStreaming,
			Frames: st.Frames, Bytes: st.Bytes, FPS: st.FPS, BitrateBps: st.BitrateBps,
			Restarts: st.RestartCount, Viewers: g.rtc.Viewers(cfg.ID), Readers: c.raw.Stats().Readers,
			WebRTC: rtc[cfg.ID],
		})
	}
	return out
}
