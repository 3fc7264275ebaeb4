// Package testenv owns how tests find optional dependencies (shared assets, external programs, root
// privileges) and decides whether their absence skips the test or, in CI, fails it.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// RequireAllEnv is the environment variable that turns every would-be skip into a failure. `.ci/run`
// sets it, so that nothing CI is meant to exercise skips silently.
const RequireAllEnv = "SIGHTLINE_REQUIRE_ALL"

// Unavailable skips the test with reason, or fails it when SIGHTLINE_REQUIRE_ALL is set.
func Unavailable(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv(RequireAllEnv) != "" {
		t.Fatalf("required by %s=1 but unavailable: %s", RequireAllEnv, reason)
	}
	t.Skip(reason)
}

// AssetsDir returns the shared assets folder: $SIGHTLINE_ASSETS when set, else ../shared/assets
// relative to the repository root, else "" when neither exists.
func AssetsDir() string {
	if d := os.Getenv("SIGHTLINE_ASSETS"); d != "" {
		return d
	}
	d := filepath.Join(RepoRoot(), "..", "shared", "assets")
	if st, err := os.Stat(d); err == nil && st.IsDir() {
		return d
	}
	return ""
}

// Asset returns the absolute path of a shared asset (e.g. "camera/cam_street_1280x720_25fps.h264"),
// or marks the test unavailable when it is missing.
func Asset(t testing.TB, rel string) string {
	t.Helper()
	dir := AssetsDir()
	if dir == "" {
		Unavailable(t, "shared assets not found: set SIGHTLINE_ASSETS or put ../shared/assets beside the repository")
	}
	p := filepath.Join(dir, rel)
	if _, err := os.Stat(p); err != nil {
		Unavailable(t, "asset "+rel+" not found in "+dir)
	}
	abs, _ := filepath.Abs(p)
	return abs
}

// LookPath returns the path of an executable or marks the test unavailable, naming the Debian package
// that provides it.
func LookPath(t testing.TB, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, name+" not installed (apt-get install -y "+debianPackage+")")
	}
	return p
}

// RepoRoot returns the repository root (the folder holding go.mod).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// WaitFor polls cond every 20 ms (gentle on servers that rate-limit polls) until it holds, and fails
// the test naming what it waited for when it still does not after timeout. It is for waiting on
// asynchronous state, never for timing assertions.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// GoroutinesSettle waits up to 10 s for the number of goroutines to fall back to base (what a test
// started has ended) and fails with every goroutine's stack when it does not.
func GoroutinesSettle(t testing.TB, base int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
