package browsertest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"sightline/internal/testenv"
)

// Debian's browser and driver (apt-get install -y chromium chromium-driver).
const (
	ChromiumPath     = "/usr/bin/chromium"
	ChromedriverPath = "/usr/bin/chromedriver"
)

// Args returns the Chromium flag set of shared/testing/BROWSER.md, with userDataDir as the profile.
// It keeps WebRTC on loopback, disables every background request, and lets muted video autoplay.
func Args(userDataDir string) []string {
	return []string{
		"--headless",
		"--no-sandbox",
		"--disable-gpu",
		"--disable-quic",
		"--no-first-run",
		"--disable-background-networking",
		"--disable-component-update",
		"--disable-sync",
		"--user-data-dir=" + userDataDir,
		"--disable-features=WebRtcHideLocalIpsWithMdns,MediaRouter,DialMediaRouteProvider,OptimizationHints," +
			"Translate,AutofillServerCommunication,CertificateTransparencyComponentUpdater",
		"--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
		"--disable-domain-reliability",
		"--no-pings",
		"--disable-breakpad",
		"--metrics-recording-only",
		"--disable-client-side-phishing-detection",
		"--disable-default-apps",
		"--autoplay-policy=no-user-gesture-required",
		"--force-webrtc-ip-handling-policy=default_public_interface_only",
		"--allow-loopback-in-peer-connection",
	}
}

// Browser is one headless Chromium session driven through its own chromedriver process. Its methods
// return errors (safe to call from any goroutine of the test); Start registers the teardown.
type Browser struct {
	t       testing.TB
	base    string // chromedriver URL, e.g. http://127.0.0.1:9515
	session string // WebDriver session id
	client  *http.Client
	logPath string
}

// Options tune Start. The zero value is a 1280x900 window.
type Options struct {
	// Width and Height of the browser window in CSS pixels (screenshots have this size).
	Width, Height int
	// FakeMedia gives getUserMedia Chromium's synthetic camera and microphone and grants them without
	// a prompt.
	FakeMedia bool
}

// Start launches chromedriver on a free 127.0.0.1 port and opens a headless Chromium session with the
// flags of Args and a fresh profile in t.TempDir(). Missing chromium, chromedriver, or network
// isolation (see IsolateNetwork) mark the test unavailable. The session and chromedriver (with the
// browser it started) end in t.Cleanup.
func Start(t testing.TB, opts Options) *Browser {
	t.Helper()
	if reason := networkUnavailable(); reason != "" {
		testenv.Unavailable(t, reason)
	}
	for _, p := range []struct{ path, pkg string }{{ChromiumPath, "chromium"}, {ChromedriverPath, "chromium-driver"}} {
		if _, err := os.Stat(p.path); err != nil {
			testenv.Unavailable(t, p.path+" not installed (apt-get install -y "+p.pkg+")")
		}
	}
	if opts.Width <= 0 || opts.Height <= 0 {
		opts.Width, opts.Height = 1280, 900
	}
	dir := t.TempDir()
	b := &Browser{
		t:       t,
		client:  &http.Client{Timeout: 90 * time.Second},
		logPath: filepath.Join(dir, "chromedriver.log"),
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ { // a free port can be taken between probe and bind
		if err = b.startDriver(t); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("browsertest: %v", err)
	}
	if err := b.newSession(filepath.Join(dir, "profile"), opts.FakeMedia); err != nil {
		t.Fatalf("browsertest: %v\n%s", err, b.driverLogTail())
	}
	if _, err := b.do(http.MethodPost, "/window/rect", map[string]int{"width": opts.Width, "height": opts.Height}); err != nil {
		t.Logf("browsertest: set window size: %v", err)
	}
	return b
}

func (b *Browser) startDriver(t testing.TB) error {
	port, err := freePort()
	if err != nil {
		return fmt.Errorf("find a free port for chromedriver: %w", err)
	}
	cmd := exec.Command(ChromedriverPath, "--port="+strconv.Itoa(port), "--allowed-ips=127.0.0.1",
		"--log-path="+b.logPath)
	// Own process group: teardown ends chromedriver and any browser it left behind, and nothing else.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", ChromedriverPath, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	kill := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	b.base = "http://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err // let kill's receive return
			kill()
			return fmt.Errorf("chromedriver exited at start (%v)\n%s", err, b.driverLogTail())
		default:
		}
		if b.driverReady() {
			break
		}
		if time.Now().After(deadline) {
			kill()
			return fmt.Errorf("chromedriver on %s not ready within 15s\n%s", b.base, b.driverLogTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		if b.session != "" {
			if _, err := b.do(http.MethodDelete, "", nil); err != nil {
				t.Logf("browsertest: delete session: %v", err)
			}
			b.session = ""
		}
		kill()
		b.client.CloseIdleConnections()
	})
	return nil
}

func (b *Browser) driverReady() bool {
	res, err := b.client.Get(b.base + "/status")
	if err != nil {
		return false
	}
	defer res.Body.Close()
	var st struct {
		Value struct {
			Ready bool `json:"ready"`
		} `json:"value"`
	}
	return json.NewDecoder(res.Body).Decode(&st) == nil && st.Value.Ready
}

func (b *Browser) newSession(profile string, fakeMedia bool) error {
	args := Args(profile)
	if fakeMedia {
		args = append(args, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")
	}
	caps := map[string]any{
		"capabilities": map[string]any{
			"alwaysMatch": map[string]any{
				"browserName": "chrome",
				"goog:chromeOptions": map[string]any{
					"binary": ChromiumPath,
					"args":   args,
				},
				"goog:loggingPrefs": map[string]string{"browser": "ALL"},
				"timeouts":          map[string]int{"script": 60000, "pageLoad": 60000, "implicit": 0},
			},
		},
	}
	val, err := b.post("/session", caps)
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	var s struct {
		SessionID string `json:"sessionId"`
	}
	if err := json.Unmarshal(val, &s); err != nil || s.SessionID == "" {
		return fmt.Errorf("create session: no session id in %s", val)
	}
	b.session = s.SessionID
	return nil
}

// Navigate loads url and waits for the page load to finish.
func (b *Browser) Navigate(url string) error {
	if _, err := b.do(http.MethodPost, "/url", map[string]string{"url": url}); err != nil {
		return fmt.Errorf("navigate to %s: %w", url, err)
	}
	return nil
}

// Exec runs script as the body of a function in the page (WebDriver "Execute Script") and returns its
// JSON-encoded return value. args are available as arguments[0..].
func (b *Browser) Exec(script string, args ...any) (json.RawMessage, error) {
	return b.do(http.MethodPost, "/execute/sync", map[string]any{"script": script, "args": nonNil(args)})
}

// ExecAsync runs script like Exec, with a callback as its last argument; the result is the value
// passed to the callback (WebDriver "Execute Async Script", bounded by the 60 s script timeout).
func (b *Browser) ExecAsync(script string, args ...any) (json.RawMessage, error) {
	return b.do(http.MethodPost, "/execute/async", map[string]any{"script": script, "args": nonNil(args)})
}

// Eval runs script like Exec and decodes its result into out.
func (b *Browser) Eval(out any, script string, args ...any) error {
	raw, err := b.Exec(script, args...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode script result %s: %w", raw, err)
	}
	return nil
}

// Poll runs script (like Exec) every interval until it returns a truthy value (anything but null,
// false, 0 or ""), and returns that value. It gives up after timeout, or when ctx ends, with an error
// that carries the last value or script error seen.
func (b *Browser) Poll(ctx context.Context, timeout time.Duration, script string, args ...any) (json.RawMessage, error) {
	const interval = 100 * time.Millisecond
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last json.RawMessage
	var lastErr error
	for {
		raw, err := b.Exec(script, args...)
		if err == nil && truthy(raw) {
			return raw, nil
		}
		last, lastErr = raw, err
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return nil, fmt.Errorf("poll %.60q: no truthy result within %v; last error: %w", script, timeout, lastErr)
			}
			return nil, fmt.Errorf("poll %.60q: no truthy result within %v; last result %s", script, timeout, last)
		case <-time.After(interval):
		}
	}
}

func truthy(raw json.RawMessage) bool {
	switch strings.TrimSpace(string(raw)) {
	case "", "null", "false", "0", `""`:
		return false
	}
	return true
}

// Screenshot saves a PNG of the current viewport to path.
func (b *Browser) Screenshot(path string) error {
	raw, err := b.do(http.MethodGet, "/screenshot", nil)
	if err != nil {
		return fmt.Errorf("screenshot: %w", err)
	}
	var enc string
	if err := json.Unmarshal(raw, &enc); err != nil {
		return fmt.Errorf("screenshot: decode: %w", err)
	}
	png, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return fmt.Errorf("screenshot: decode base64: %w", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		return fmt.Errorf("screenshot: %w", err)
	}
	return nil
}

// ConsoleLog returns and clears the browser console messages gathered so far, one per line
// ("LEVEL message"); useful in failure messages.
func (b *Browser) ConsoleLog() (string, error) {
	raw, err := b.do(http.MethodPost, "/se/log", map[string]string{"type": "browser"})
	if err != nil {
		return "", fmt.Errorf("read console log: %w", err)
	}
	var entries []struct {
		Level   string `json:"level"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(raw, &entries); err != nil {
		return "", fmt.Errorf("read console log: decode: %w", err)
	}
	var sb strings.Builder
	for _, e := range entries {
		fmt.Fprintf(&sb, "%s %s\n", e.Level, e.Message)
	}
	return sb.String(), nil
}

// Fatalf fails the test with the message, the browser's console log and the tail of chromedriver's log.
func (b *Browser) Fatalf(format string, args ...any) {
	b.t.Helper()
	console, err := b.ConsoleLog()
	if err != nil {
		console = err.Error()
	}
	b.t.Fatalf("%s\n--- browser console ---\n%s--- chromedriver log (tail) ---\n%s",
		fmt.Sprintf(format, args...), console, b.driverLogTail())
}

// do calls a session endpoint (path relative to /session/{id}) and returns the response's "value".
func (b *Browser) do(method, path string, body any) (json.RawMessage, error) {
	if b.session == "" {
		return nil, errors.New("no browser session")
	}
	return b.call(method, "/session/"+b.session+path, body)
}

func (b *Browser) post(path string, body any) (json.RawMessage, error) {
	return b.call(http.MethodPost, path, body)
}

// webdriverError is the W3C error object in a failed command's "value".
type webdriverError struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func (b *Browser) call(method, path string, body any) (json.RawMessage, error) {
	var rd io.Reader
	if body != nil {
		buf, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, b.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := b.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("webdriver %s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("webdriver %s %s: read: %w", method, path, err)
	}
	var env struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("webdriver %s %s: status %d, undecodable body %.200q", method, path, res.StatusCode, data)
	}
	if res.StatusCode != http.StatusOK {
		var we webdriverError
		_ = json.Unmarshal(env.Value, &we)
		msg, _, _ := strings.Cut(we.Message, "\n  (Session info")
		return nil, fmt.Errorf("webdriver %s %s: %s: %s", method, path, we.Error, msg)
	}
	return env.Value, nil
}

func (b *Browser) driverLogTail() string {
	data, err := os.ReadFile(b.logPath)
	if err != nil {
		return "(no chromedriver log: " + err.Error() + ")"
	}
	const max = 4000
	if len(data) > max {
		data = data[len(data)-max:]
	}
	return string(data)
}

func nonNil(args []any) []any {
	if args == nil {
		return []any{}
	}
	return args
}

func freePort() (int, error) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
