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
		var c latencyConfig
		if c, err = latencyFlags(args[1:], stderr); err == nil {
			if !c.json {
				fmt.Fprintf(stdout, "$ %s\n\n", commandLine())
			}
			var r *latencyResult
			if r, err = runLatency(ctx, c, stdout); err == nil {
				printLatency(stdout, r, c.json)
			}
		}
	case "fanout":
		var c fanoutConfig
		if c, err = fanoutFlags(args[1:], stderr); err == nil {
			if !c.json {
				fmt.Fprintf(stdout, "$ %s\n\n", commandLine())
			}
			var r *fanoutResult
			r, err = runFanout(ctx, c, stderr)
			if r != nil {
				printFanout(stdout, r, c.json)
			}
		}
	case "cameras":
		var c camerasConfig
		if c, err = camerasFlags(args[1:], stderr); err == nil {
			if !c.json {
				fmt.Fprintf(stdout, "$ %s\n\n", commandLine())
			}
			var runs []camerasRun
			runs, err = runCameras(ctx, c, stderr)
			if len(runs) > 0 {
				printCameras(stdout, c, runs, c.json)
			}
		}
	case "annotated":
		var c annotatedConfig
		if c, err = annotatedFlags(args[1:], stderr); err == nil {
			if !c.json {
				fmt.Fprintf(stdout, "$ %s\n\n", commandLine())
			}
			var r *annotatedResult
			if r, err = runAnnotated(ctx, c, stderr); err == nil {
				printAnnotated(stdout, r, c.json)
			}
		}
	case "firstframe":
		var c firstFrameConfig
		if c, err = firstFrameFlags(args[1:], stderr); err == nil {
			if !c.json {
				fmt.Fprintf(stdout, "$ %s\n\n", commandLine())
			}
			var r *firstFrameResult
			if r, err = runFirstFrame(ctx, c, stderr); err == nil {
				printFirstFrame(stdout, r, c.json)
			}
		}
	case "alerts":
		var c alertsConfig
		if c, err = alertsFlags(args[1:], stderr); err == nil {
			if !c.json {
				fmt.Fprintf(stdout, "$ %s\n\n", commandLine())
			}
			var r *alertsResult
			if r, err = runAlerts(ctx, c, stderr); err == nil {
				printAlerts(stdout, r, c.json)
			}
		}
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
