package rtsptest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sightline/internal/testenv"
)

// GStreamer is a running GStreamer RTSP server (gst_rtsp_server.py) serving an .mp4 as one shared live
// stream at rtsp://127.0.0.1:Port/cam1. A file is not a loop: the stream ends (EOS) at the file's end,
// counted from the first client of each server life.
type GStreamer struct {
	Port  int
	Proto string // "tcp" or "udp"
	URL   string

	t      testing.TB
	python string
	script string
	mp4    string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
}

// gstPython returns a python3 that can load GstRtspServer through gi, or "" when none can.
func gstPython() string {
	var cands []string
	if p, err := exec.LookPath("python3"); err == nil {
		cands = append(cands, p)
	}
	cands = append(cands, "/usr/bin/python3")
	for _, p := range cands {
		err := exec.Command(p, "-c", "import gi; gi.require_version('GstRtspServer','1.0'); "+
			"from gi.repository import GstRtspServer").Run()
		if err == nil {
			return p
		}
	}
	return ""
}

// StartGStreamer starts GStreamer's RTSP server on 127.0.0.1:port (a free port when port is 0) serving
// mp4Path over proto ("tcp" or "udp"), waits until it accepts connections, and stops it when the test
// ends. It marks the test unavailable when python3 with gi and GstRtspServer is missing.
func StartGStreamer(t testing.TB, mp4Path string, port int, proto string) *GStreamer {
	t.Helper()
	testenv.LookPath(t, "python3", "python3")
	py := gstPython()
	if py == "" {
		testenv.Unavailable(t, "python3 cannot load GstRtspServer (apt-get install -y python3-gi python3-gst-1.0 "+
			"gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)")
	}
	_, file, _, _ := runtime.Caller(0)
	if port == 0 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	g := &GStreamer{
		Port: port, Proto: proto, URL: fmt.Sprintf("rtsp://127.0.0.1:%d/cam1", port),
		t: t, python: py, script: filepath.Join(filepath.Dir(file), "gst_rtsp_server.py"), mp4: mp4Path,
	}
	if err := g.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)
	return g
}

func (g *GStreamer) start() error {
	cmd := exec.Command(g.python, g.script, "--mp4", g.mp4, "--port", strconv.Itoa(g.Port), "--proto", g.Proto)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start gstreamer rtsp server: %w", err)
	}
	done := make(chan struct{})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		signaled := false
		for sc.Scan() {
			if !signaled && strings.TrimSpace(sc.Text()) == "READY" {
				close(ready)
				signaled = true
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(done)
	}()
	g.mu.Lock()
	g.cmd, g.done = cmd, done
	g.mu.Unlock()
	select {
	case <-ready:
	case <-done:
		return fmt.Errorf("gstreamer rtsp server exited before it was ready: %s", stderr.String())
	case <-time.After(20 * time.Second):
		g.Stop()
		return fmt.Errorf("gstreamer rtsp server not ready after 20s: %s", stderr.String())
	}
	// READY is printed after attach(): the port accepts connections from here on.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", g.Port), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
	}
	return fmt.Errorf("gstreamer rtsp server does not accept on port %d", g.Port)
}

// Kill ends the server abruptly (SIGKILL), as a crashing camera would, and waits for it to exit.
func (g *GStreamer) Kill() {
	g.mu.Lock()
	cmd, done := g.cmd, g.done
	g.cmd = nil
	g.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // its own process group, started above
	<-done
}

// Stop ends the server; it is safe to call more than once.
func (g *GStreamer) Stop() { g.Kill() }

// Restart starts the server again on the same port (after Kill or Stop), waiting until it accepts.
func (g *GStreamer) Restart() error {
	g.Kill()
	var err error
	// The port is free again once the process is gone, but allow a few tries for a slow exit.
	for i := 0; i < 5; i++ {
		if err = g.start(); err == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return err
}

// lockedBuffer collects a child's stderr for error messages (bounded to its last 4 KiB).
type lockedBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	if len(l.b) > 4096 {
		l.b = l.b[len(l.b)-4096:]
	}
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}
