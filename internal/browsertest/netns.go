// Package browsertest owns driving headless Debian Chromium from Go tests through chromedriver's W3C
// WebDriver HTTP API, and keeping those tests inside a loopback-only network namespace; it must never
// let a browser test run on the host network unless explicitly allowed.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	// isolatedEnv marks a test process that runs inside the private network namespace.
	isolatedEnv = "SIGHTLINE_BROWSERTEST_NETNS"
	// unisolatedEnv carries, to Start, why IsolateNetwork could not isolate this process.
	unisolatedEnv = "SIGHTLINE_BROWSERTEST_UNISOLATED"
	// AllowHostNetworkEnv, set to 1, lets browser tests run on the host network when isolation is
	// impossible (a developer machine without root). Chromium may then send a neighbour probe on the
	// real interface (see shared/testing/BROWSER.md); CI never sets it.
	AllowHostNetworkEnv = "SIGHTLINE_BROWSER_HOST_NETWORK"
)

// reexecScript brings loopback up inside the new namespace and replaces the shell with the test binary.
const reexecScript = `ip link set lo up && exec "$0" "$@"`

// unshareArgs make a network namespace (only lo) and a PID namespace whose init is the test binary:
// when it exits, even killed by a timeout before its cleanups ran, the kernel kills every browser and
// driver it started, so no Chromium outlives its test. --mount-proc gives them a matching /proc.
var unshareArgs = []string{"--net", "--pid", "--fork", "--kill-child", "--mount-proc"}

// IsolateNetwork runs the package's tests inside a private network namespace that has only a loopback
// interface, so that every packet a browser or server sends stays on lo. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(browsertest.IsolateNetwork(m)) }
//
// When the process is root and not yet isolated, it re-executes the test binary under
// `unshare --net --pid --fork --kill-child --mount-proc -- sh -c 'ip link set lo up && exec "$0" "$@"'`
// and returns the child's exit code. Inside the namespace, or when isolation is
// impossible (not root, unshare or ip missing or refused), it runs m.Run in this process; in the latter
// case Start marks every browser test unavailable with the reason.
func IsolateNetwork(m *testing.M) int {
	if os.Getenv(isolatedEnv) == "1" {
		return m.Run()
	}
	if reason := cannotIsolate(); reason != "" {
		os.Setenv(unisolatedEnv, reason)
		return m.Run()
	}
	unshare, _ := exec.LookPath("unshare")
	args := append(append(append([]string{}, unshareArgs...), "--", "sh", "-c", reexecScript, os.Args[0]), os.Args[1:]...)
	cmd := exec.Command(unshare, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), isolatedEnv+"=1")
	// The child dies with us (go test's own timeout kills only this process). Pdeathsig fires when the
	// forking thread exits, so keep this goroutine on its thread until the child is done.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "browsertest: start %s: %v\n", unshare, err)
		return 1
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGQUIT)
	done := make(chan struct{})
	forwarded := make(chan struct{})
	go func() {
		defer close(forwarded)
		for {
			select {
			case s := <-sigs:
				_ = cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	<-forwarded
	signal.Stop(sigs)
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			if code := ee.ExitCode(); code >= 0 {
				return code
			}
		}
		fmt.Fprintf(os.Stderr, "browsertest: isolated test binary: %v\n", err)
		return 1
	}
	return 0
}

// cannotIsolate returns why this process cannot enter a private network namespace, or "" if it can.
// It tries once for real, so that a kernel or container that refuses unshare is found before the
// tests run rather than reported as a test failure.
func cannotIsolate() string {
	if os.Geteuid() != 0 {
		return "browser tests need root to run in a private network namespace (unshare --net); " +
			"run as root or set " + AllowHostNetworkEnv + "=1 to use the host network"
	}
	for _, name := range []string{"unshare", "ip", "sh"} {
		if _, err := exec.LookPath(name); err != nil {
			return name + " not found: cannot isolate browser tests (apt-get install -y util-linux iproute2)"
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	probe := append(append([]string{}, unshareArgs...), "--", "sh", "-c", "ip link set lo up")
	out, err := exec.CommandContext(ctx, "unshare", probe...).CombinedOutput()
	if err != nil {
		return strings.TrimSpace(fmt.Sprintf("unshare %s refused (%v): %s", strings.Join(unshareArgs, " "), err, out))
	}
	return ""
}

// networkUnavailable returns why browser tests must not run in this process, or "".
func networkUnavailable() string {
	if os.Getenv(isolatedEnv) == "1" || os.Getenv(AllowHostNetworkEnv) == "1" {
		return ""
	}
	if reason := os.Getenv(unisolatedEnv); reason != "" {
		return reason
	}
	return "TestMain must call browsertest.IsolateNetwork so that browser traffic stays on loopback"
}
