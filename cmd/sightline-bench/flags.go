package main

// The flags the modes share: their flag set, -json and -log-level, -model and -onnx-library, the clip
// and model defaults, and the range checks several modes make. Each mode registers its own flags beside
// these; usage strings stay the mode's where they differ.

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"sightline/internal/testenv"
)

// outputFlags are -json and -log-level, the flags of every mode that runs Sightline.
type outputFlags struct {
	json     bool
	logLevel slog.Level
}

func (o outputFlags) printsJSON() bool { return o.json }

// modeFlags is a mode's flag set with its outputFlags registered.
type modeFlags struct {
	*flag.FlagSet
	out      *outputFlags
	logLevel *string
}

// newFlagSet is the flag set of mode name: errors and -h go to stderr, parsing stops at an error.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// newModeFlags is newFlagSet with -json and -log-level registered into out.
func newModeFlags(name string, stderr io.Writer, out *outputFlags) *modeFlags {
	fs := newFlagSet(name, stderr)
	fs.BoolVar(&out.json, "json", false, "print JSON instead of tables")
	ll := fs.String("log-level", "error", "Sightline log level (debug, info, warn, error)")
	return &modeFlags{FlagSet: fs, out: out, logLevel: ll}
}

// parse parses args and then the -log-level value.
func (m *modeFlags) parse(args []string) error {
	if err := m.Parse(args); err != nil {
		return err
	}
	if err := m.out.logLevel.UnmarshalText([]byte(*m.logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	return nil
}

// assetsDir is $SIGHTLINE_ASSETS, else ../shared/assets beside the repository (relative to the working
// directory: run from the repository root).
func assetsDir() string {
	if d := testenv.AssetsDir(); d != "" {
		return d
	}
	return filepath.Join("..", "shared", "assets")
}

// defaultClip is the street clip in assetsDir: camera/cam_street_1280x720_25fps.h264.
func defaultClip() string {
	return filepath.Join(assetsDir(), "camera", "cam_street_1280x720_25fps.h264")
}

// modelFlags registers -model and -onnx-library into model and library: defaults the shared assets'
// YOLOX-Nano and the library `make onnxruntime` puts under var/onnxruntime/ ($SIGHTLINE_ONNX_LIBRARY
// where set).
func modelFlags(fs *flag.FlagSet, model, library *string) {
	lib := os.Getenv(testenv.ONNXLibraryEnv)
	if lib == "" {
		lib = testenv.ONNXLibraryRel
	}
	fs.StringVar(model, "model", filepath.Join(assetsDir(), "models", "yolox_nano.onnx"), "ONNX model")
	fs.StringVar(library, "onnx-library", lib, "libonnxruntime.so.1")
}

// checkDuration accepts a -duration in (0, 1h].
func checkDuration(d time.Duration) error {
	if d <= 0 || d > time.Hour {
		return fmt.Errorf("-duration %v: want (0, 1h]", d)
	}
	return nil
}

// checkTransport accepts a -transport of tcp or udp.
func checkTransport(t string) error {
	if t != "tcp" && t != "udp" {
		return fmt.Errorf("-transport %q: want tcp or udp", t)
	}
	return nil
}

// checkAnalyticsFPS accepts an -analytics-fps in (0, 30].
func checkAnalyticsFPS(fps float64) error {
	if fps <= 0 || fps > 30 {
		return fmt.Errorf("-analytics-fps %g: want (0, 30]", fps)
	}
	return nil
}

// firstError is the first of errs that is not nil: checks made in order, the first failure reported.
func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
