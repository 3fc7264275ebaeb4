package main

// In-process Sightline for the benchmarks: its configuration pieces (loopback HTTP and WebRTC, no auth,
// camera cam1) and its start through the gateway API.

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"sightline/gateway"
)

// baseYAML is the part of every benchmark configuration before analytics and cameras: HTTP and WebRTC on
// loopback, no auth.
func baseYAML(logLevel string) string {
	return fmt.Sprintf(`http:
  listen: "127.0.0.1:0"
auth:
  enabled: false # loopback-only benchmark process
log: {level: %q, format: text}
webrtc:
  udpPort: 0
  loopbackOnly: true
  iceServers: []
`, logLevel)
}

// cameraYAML is the cameras section with the one camera cam1 pulling rtspURL over transport (tcp, udp).
func cameraYAML(rtspURL, transport string) string {
	return fmt.Sprintf("cameras:\n  - id: cam1\n    url: %q\n    transport: %s\n", rtspURL, transport)
}

// startSightlineYAML runs Sightline in-process from a whole configuration document.
func startSightlineYAML(ctx context.Context, yaml string, logLevel slog.Level, opts ...gateway.Option) (*gateway.Gateway, error) {
	cfg, err := gateway.ParseConfig([]byte(yaml), ".")
	if err != nil {
		return nil, fmt.Errorf("sightline config: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel}))
	g, err := gateway.New(cfg, log, opts...)
	if err != nil {
		return nil, fmt.Errorf("build sightline: %w", err)
	}
	if err := g.Start(ctx); err != nil {
		g.Close()
		return nil, fmt.Errorf("start sightline: %w", err)
	}
	return g, nil
}

func levelName(l slog.Level) string {
	switch {
	case l <= slog.LevelDebug:
		return "debug"
	case l <= slog.LevelInfo:
		return "info"
	case l <= slog.LevelWarn:
		return "warn"
	}
	return "error"
}
