package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"sightline/media"
	"sightline/webrtc"
)

// Gateway is a running Sightline: cameras, WebRTC server and HTTP listener.
type Gateway struct {
	cfg *Config
	log *slog.Logger

	cameras *registry
	rtc     *webrtc.Server
	handler http.Handler

	srv      *http.Server
	listener net.Listener
	ready    atomic.Bool
	cancel   context.CancelFunc
	served   chan struct{} // closed when the HTTP server stops
	serveErr error         // set before served is closed
	closeOne sync.Once
}

// New builds every component from cfg; nothing runs until Start.
func New(cfg *Config, log *slog.Logger) (*Gateway, error) {
	if log == nil {
		log = slog.Default()
	}
	g := &Gateway{cfg: cfg, log: log, cameras: newRegistry(log)}
	for _, cc := range cfg.Cameras {
		if err := g.cameras.add(cfg, cc); err != nil {
			return nil, err
		}
	}
	rtc, err := webrtc.NewServer(webrtc.Config{
		UDPPort:         cfg.WebRTC.UDPPort,
		LoopbackOnly:    cfg.WebRTC.LoopbackOnly,
		NAT1To1IPs:      cfg.WebRTC.NAT1To1IPs,
		AdditionalHosts: cfg.WebRTC.AdditionalHosts,
		ICEServers:      cfg.WebRTC.ICEServers,
		MaxSessions:     cfg.WebRTC.MaxSessions,
		Logger:          log,
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
	default:
		return nil, fmt.Errorf("camera %q has no %q stream yet (the annotated track needs the codec bridge)", cameraID, variant)
	}
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
		"cameras", len(g.cfg.Cameras), "loopback_only", g.cfg.WebRTC.LoopbackOnly)
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
