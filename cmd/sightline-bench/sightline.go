package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"sightline/gateway"
)

// startSightline runs Sightline in-process via the gateway API with one camera "cam1" pulling rtspURL,
// WebRTC on loopback only (ephemeral UDP mux port) and HTTP on 127.0.0.1:0.
func startSightline(ctx context.Context, rtspURL, transport string, logLevel slog.Level) (*gateway.Gateway, error) {
	yaml := fmt.Sprintf(`http:
  listen: "127.0.0.1:0"
auth:
  enabled: false # loopback-only benchmark process
log: {level: %q, format: text}
webrtc:
  udpPort: 0
  loopbackOnly: true
  iceServers: []
cameras:
  - id: cam1
    url: %q
    transport: %s
`, levelName(logLevel), rtspURL, transport)
	return startSightlineYAML(ctx, yaml, logLevel)
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
