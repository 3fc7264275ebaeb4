package browsertest

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { os.Exit(IsolateNetwork(m)) }

const page = `<!doctype html><title>browsertest</title>
<p id="answer">pending</p>
<script>
window.answer = 6 * 7;
setTimeout(() => { document.getElementById('answer').textContent = 'ready'; }, 300);
console.log('browsertest page loaded');
</script>`

func TestBrowserReadsPage(t *testing.T) {
	b := Start(t, Options{Width: 800, Height: 600})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(page))
	}))
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("test server must listen on 127.0.0.1, got %s", srv.URL)
	}
	if err := b.Navigate(srv.URL + "/"); err != nil {
		b.Fatalf("%v", err)
	}

	var answer int
	if err := b.Eval(&answer, "return window.answer + arguments[0]", 1); err != nil {
		b.Fatalf("%v", err)
	}
	if answer != 43 {
		t.Errorf("window.answer + 1 = %d, want 43", answer)
	}

	raw, err := b.ExecAsync(`const done = arguments[arguments.length - 1];
		setTimeout(() => done({title: document.title, sum: arguments[0] + arguments[1]}), 50);`, 2, 3)
	if err != nil {
		b.Fatalf("%v", err)
	}
	var got struct {
		Title string `json:"title"`
		Sum   int    `json:"sum"`
	}
	if err := json.Unmarshal(raw, &got); err != nil || got.Title != "browsertest" || got.Sum != 5 {
		t.Errorf("async result %s (err %v), want title browsertest and sum 5", raw, err)
	}

	raw, err = b.Poll(context.Background(), 10*time.Second,
		`const t = document.getElementById('answer').textContent; return t === 'ready' ? t : null;`)
	if err != nil {
		b.Fatalf("%v", err)
	}
	if string(raw) != `"ready"` {
		t.Errorf("poll returned %s, want \"ready\"", raw)
	}

	if _, err := b.Poll(context.Background(), 300*time.Millisecond, "return false"); err == nil {
		t.Error("poll of a falsy script succeeded, want timeout error")
	}
	if _, err := b.Exec("throw new Error('boom')"); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("script error = %v, want one naming boom", err)
	}

	shot := filepath.Join(t.TempDir(), "page.png")
	if err := b.Screenshot(shot); err != nil {
		b.Fatalf("%v", err)
	}
	data, err := os.ReadFile(shot)
	if err != nil || !bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("screenshot is not a PNG (err %v, %d bytes)", err, len(data))
	}

	console, err := b.ConsoleLog()
	if err != nil {
		t.Errorf("console log: %v", err)
	} else if !strings.Contains(console, "browsertest page loaded") {
		t.Errorf("console log %q lacks the page's message", console)
	}
}

func TestArgsMatchBrowserMD(t *testing.T) {
	args := Args("/tmp/p")
	want := []string{"--headless", "--user-data-dir=/tmp/p", "--allow-loopback-in-peer-connection",
		"--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"}
	for _, w := range want {
		found := false
		for _, a := range args {
			found = found || a == w
		}
		if !found {
			t.Errorf("Args lacks %q", w)
		}
	}
	n := 0
	for _, a := range args {
		if strings.HasPrefix(a, "--disable-features=") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d --disable-features flags, want exactly one (Chromium keeps only the last)", n)
	}
}

func TestTruthy(t *testing.T) {
	for raw, want := range map[string]bool{"null": false, "false": false, "0": false, `""`: false, "": false,
		"true": true, "1": true, `"x"`: true, "{}": true, "[]": true} {
		if got := truthy(json.RawMessage(raw)); got != want {
			t.Errorf("truthy(%s) = %v, want %v", raw, got, want)
		}
	}
}

func TestIsolatedNamespaceHasOnlyLoopback(t *testing.T) {
	if reason := networkUnavailable(); reason != "" {
		t.Skip(reason) // TestBrowserReadsPage reports unavailability through testenv
	}
	if os.Getenv(isolatedEnv) != "1" {
		t.Skip("running on the host network by " + AllowHostNetworkEnv)
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagLoopback == 0 {
			t.Errorf("interface %s in the test namespace; want loopback only", ifc.Name)
		} else if ifc.Flags&net.FlagUp == 0 {
			t.Errorf("loopback %s is down", ifc.Name)
		}
	}
}
