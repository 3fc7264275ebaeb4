// Command sightline runs the Sightline video server: it parses flags, loads the configuration, handles
// signals and hands everything else to the gateway package.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"sightline/gateway"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run())
}

func run() int {
	configPath := flag.String("config", "configs/sightline.yaml", "configuration file (YAML)")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println("sightline", version)
		return 0
	}

	cfg, err := gateway.LoadConfig(*configPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sightline:", err)
		return 2
	}
	log := newLogger(cfg.Log)
	log.Info("sightline", "version", version, "config", *configPath)

	g, err := gateway.New(cfg, log)
	if err != nil {
		log.Error("start", "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := g.Start(ctx); err != nil {
		log.Error("start", "err", err)
		_ = g.Close()
		return 1
	}
	fmt.Printf("Sightline UI: %s\n", uiURL(g.HTTPAddr()))

	served := make(chan error, 1)
	go func() { served <- g.Wait() }()
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-served:
		if err != nil {
			log.Error("http server stopped", "err", err)
		}
	}
	if err := g.Close(); err != nil {
		log.Error("shutdown", "err", err)
		return 1
	}
	return 0
}

// uiURL turns the listener's address into a URL a person can open.
func uiURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr + "/"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

func newLogger(c gateway.LogConfig) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // validated by the config
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
