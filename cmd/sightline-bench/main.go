// Command sightline-bench measures Sightline's live path on loopback: added latency of the WHEP
// passthrough over a direct RTSP reader (latency) and fan-out to many WHEP viewers (fanout). Every run is
// bounded in time, stops by itself, and never sends a packet to a non-loopback address.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: sightline-bench <command> [flags]

commands:
  latency   per-frame latency, RTSP direct vs Sightline WHEP, and the latency Sightline adds
  fanout    N WHEP viewers of one camera: delivery, CPU, RSS, goroutines
  cameras   N looped 720p clip cameras decoded + analysed (YOLOX-Nano) at 5 fps: share analysed
  annotated latency of the annotated track vs the raw track in the same run (visual stamp, decoded)
  firstframe time from the WHEP POST to the first decoded frame, annotated and raw
  alerts    rule event latency: frame capture to a /ws/alerts subscriber
  whip      per-frame latency, WHIP publisher -> Sightline -> WHEP vs a direct WebRTC hop, and the difference

run "sightline-bench <command> -h" for flags
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "latency":
		err = runMode(args[1:], stdout, stderr, latencyFlags, func(c latencyConfig) error {
			r, err := runLatency(ctx, c, stdout)
			if err == nil {
				printLatency(stdout, r, c.json)
			}
			return err
		})
	case "fanout":
		err = runMode(args[1:], stdout, stderr, fanoutFlags, func(c fanoutConfig) error {
			r, err := runFanout(ctx, c, stderr)
			if r != nil { // the runs done before an error
				printFanout(stdout, r, c.json)
			}
			return err
		})
	case "cameras":
		err = runMode(args[1:], stdout, stderr, camerasFlags, func(c camerasConfig) error {
			runs, err := runCameras(ctx, c, stderr)
			if len(runs) > 0 { // the runs done before an error
				printCameras(stdout, c, runs, c.json)
			}
			return err
		})
	case "annotated":
		err = runMode(args[1:], stdout, stderr, annotatedFlags, func(c annotatedConfig) error {
			r, err := runAnnotated(ctx, c, stderr)
			if err == nil {
				printAnnotated(stdout, r, c.json)
			}
			return err
		})
	case "firstframe":
		err = runMode(args[1:], stdout, stderr, firstFrameFlags, func(c firstFrameConfig) error {
			r, err := runFirstFrame(ctx, c, stderr)
			if err == nil {
				printFirstFrame(stdout, r, c.json)
			}
			return err
		})
	case "alerts":
		err = runMode(args[1:], stdout, stderr, alertsFlags, func(c alertsConfig) error {
			r, err := runAlerts(ctx, c, stderr)
			if err == nil {
				printAlerts(stdout, r, c.json)
			}
			return err
		})
	case "whip":
		err = runMode(args[1:], stdout, stderr, whipFlags, func(c whipConfig) error {
			r, err := runWhip(ctx, c)
			if err == nil {
				printWhip(stdout, r, c.json)
			}
			return err
		})
	case "fanout-clients":
		err = runFanoutClients(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "unknown command %q\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "sightline-bench %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// jsonConfig is a mode's configuration that knows whether -json was given.
type jsonConfig interface{ printsJSON() bool }

// runMode parses a mode's flags with parse, prints the exact command line first (tables only), then
// runs body, which runs the mode and prints its result.
func runMode[C jsonConfig](args []string, stdout, stderr io.Writer, parse func([]string, io.Writer) (C, error), body func(C) error) error {
	c, err := parse(args, stderr)
	if err != nil {
		return err
	}
	if !c.printsJSON() {
		fmt.Fprintf(stdout, "$ %s\n\n", commandLine())
	}
	return body(c)
}
