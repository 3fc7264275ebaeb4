package rtsp

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"

	"sightline/internal/rtsptest"
	"sightline/internal/testenv"
	"sightline/media"
)

const streetH264 = "camera/cam_street_1280x720_25fps.h264"
const streetMP4 = "camera/cam_street_1280x720_25fps.mp4"

// checkGoroutines fails the test if goroutines started during it are still running at its end.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf)
		}
	})
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type running struct {
	src    *Source
	stream *media.Stream
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

// run starts a Source; the test's cleanup stops it and checks Run returned nil promptly. Cleanups run
// last-in first-out, so call run after starting the server (the source stops before the server).
func run(t *testing.T, cfg Config) *running {
	t.Helper()
	r := &running{stream: media.NewStream("test"), logs: &syncBuffer{}, done: make(chan error, 1)}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("camera", "t")
	}
	r.src = New(cfg, r.stream)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- r.src.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("Run returned %v on cancel", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return 10s after cancel")
		}
		if st := r.src.Status(); st.State != media.StateStopped {
			t.Errorf("state after Run = %s, want stopped", st.State)
		}
	})
	return r
}

func readAU(t *testing.T, rd *media.Reader, timeout time.Duration) *media.AccessUnit {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	au, err := rd.Read(ctx)
	if err != nil {
		t.Fatalf("no access unit within %s: %v", timeout, err)
	}
	return au
}

func waitStatus(t *testing.T, src *Source, timeout time.Duration, what string, ok func(media.SourceStatus) bool) media.SourceStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := src.Status()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never %s within %s: %+v", what, timeout, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPullInProcessServer pulls from a gortsplib server over TCP and UDP and checks that every access
// unit is byte-identical to what the server sent, with the same RTP timestamp and keyframe flag.
func TestPullInProcessServer(t *testing.T) {
	asset := testenv.Asset(t, streetH264)
	for _, proto := range []string{"tcp", "udp"} {
		t.Run(proto, func(t *testing.T) {
			checkGoroutines(t)
			srv := rtsptest.StartServer(t, rtsptest.ServerConfig{AnnexBPath: asset, UDP: proto == "udp"})
			r := run(t, Config{URL: srv.URL, Transport: proto})
			rd := r.stream.NewReader(512)
			defer rd.Close()

			const n = 60 // 2.4 s, crossing at least two keyframes
			var prev *media.AccessUnit
			keyframes := 0
			for i := 0; i < n; i++ {
				au := readAU(t, rd, 10*time.Second)
				sent, ok := srv.FindSent(au.RTPTime)
				if !ok {
					t.Fatalf("AU %d: RTP time %d was never sent", i, au.RTPTime)
				}
				if !rtsptest.SameNALUs(au.NALUs, sent.NALUs) {
					t.Fatalf("AU %d (asset #%d): payload differs from what the server sent: got %d NALUs %d bytes, sent %d NALUs %d bytes; logs:\n%s",
						i, sent.Index, len(au.NALUs), au.Size(), len(sent.NALUs), (&media.AccessUnit{NALUs: sent.NALUs}).Size(), r.logs.String())
				}
				if au.Keyframe != sent.Keyframe {
					t.Fatalf("AU %d: keyframe %v, sent %v", i, au.Keyframe, sent.Keyframe)
				}
				if i == 0 && !au.Keyframe {
					t.Fatal("first AU a reader gets is not a keyframe")
				}
				if au.Keyframe {
					keyframes++
				}
				if au.Codec != media.CodecH264 || au.Received.IsZero() {
					t.Fatalf("AU %d: codec %q received %v", i, au.Codec, au.Received)
				}
				if prev != nil {
					// Over UDP a lost packet drops its access unit: steps are then multiples of 3600.
					d := au.RTPTime - prev.RTPTime
					if d != 3600 && (proto == "tcp" || d%3600 != 0) {
						t.Fatalf("AU %d: RTP step %d, want 3600", i, d)
					}
					if pd := au.PTS - prev.PTS; pd != time.Duration(d/3600)*40*time.Millisecond {
						t.Fatalf("AU %d: PTS step %s for RTP step %d", i, pd, d)
					}
					if d != 3600 {
						t.Logf("AU %d: %d access units lost over UDP", i, d/3600-1)
					}
				}
				prev = au
			}
			if keyframes < 2 {
				t.Fatalf("%d keyframes in %d AUs", keyframes, n)
			}
			st := r.src.Status()
			if st.State != media.StateStreaming || st.FPS <= 0 || st.BitrateBps <= 0 || st.Frames < n ||
				st.Codec != media.CodecH264 || st.Transport != proto || st.LastError != "" || st.RestartCount != 0 {
				t.Fatalf("status %+v", st)
			}
			if p := r.stream.Params(); len(p.SPS) == 0 || len(p.PPS) == 0 {
				t.Fatalf("SDP parameters not handed to the stream: %+v", p)
			}
		})
	}
}

// TestAutoTransportFallsBackToTCP: a TCP-only server refuses UDP SETUP with 461; auto must stream.
func TestAutoTransportFallsBackToTCP(t *testing.T) {
	checkGoroutines(t)
	srv := rtsptest.StartServer(t, rtsptest.ServerConfig{AnnexBPath: testenv.Asset(t, streetH264)})
	r := run(t, Config{URL: srv.URL})
	rd := r.stream.NewReader(0)
	defer rd.Close()
	readAU(t, rd, 10*time.Second)
	if st := r.src.Status(); st.Transport != "tcp" {
		t.Fatalf("transport %q, want tcp", st.Transport)
	}
}

// TestParamsFromSDP: a stream whose SDP carries SPS/PPS hands them to the media.Stream at connect.
func TestParamsFromSDPOnly(t *testing.T) {
	srv := rtsptest.StartServer(t, rtsptest.ServerConfig{AnnexBPath: testenv.Asset(t, streetH264), Silent: true})
	r := run(t, Config{URL: srv.URL, Transport: "tcp"})
	deadline := time.Now().Add(10 * time.Second)
	for r.stream.Params().Empty() {
		if time.Now().After(deadline) {
			t.Fatal("no SPS/PPS from the SDP")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if p := r.stream.Params(); p.Codec != media.CodecH264 || media.NALUType(media.CodecH264, p.SPS) != 7 ||
		media.NALUType(media.CodecH264, p.PPS) != 8 {
		t.Fatalf("params %+v", p)
	}
}

// TestWatchdog: a server that accepts PLAY but sends nothing makes the source reconnect, saying why;
// once the server sends, frames flow into the same reader.
func TestWatchdog(t *testing.T) {
	checkGoroutines(t)
	srv := rtsptest.StartServer(t, rtsptest.ServerConfig{AnnexBPath: testenv.Asset(t, streetH264), Silent: true})
	r := run(t, Config{URL: srv.URL, Transport: "tcp", ReadTimeout: 700 * time.Millisecond})
	rd := r.stream.NewReader(0)
	defer rd.Close()
	st := waitStatus(t, r.src, 10*time.Second, "restarted by the watchdog", func(st media.SourceStatus) bool {
		return st.RestartCount >= 1
	})
	if !strings.Contains(st.LastError, "no frames for 700ms") {
		t.Fatalf("last_error %q does not say no frames", st.LastError)
	}
	srv.SetSending(true)
	au := readAU(t, rd, 10*time.Second)
	if !au.Keyframe {
		t.Fatal("first AU after recovery is not a keyframe")
	}
	waitStatus(t, r.src, 5*time.Second, "streaming", func(st media.SourceStatus) bool { return st.State == media.StateStreaming })
}

// TestAuth pulls with the right credentials, and with wrong ones checks that the password appears
// neither in the status nor in any log line.
func TestAuth(t *testing.T) {
	asset := testenv.Asset(t, streetH264)
	const user, pass, wrong = "admin", "s3cr3t-Pa55", "wr0ng-Pa55w0rd"
	srv := rtsptest.StartServer(t, rtsptest.ServerConfig{AnnexBPath: asset, User: user, Pass: pass})

	t.Run("right", func(t *testing.T) {
		r := run(t, Config{URL: srv.URLWithAuth(user, pass), Transport: "tcp"})
		rd := r.stream.NewReader(0)
		defer rd.Close()
		readAU(t, rd, 10*time.Second)
		assertNoSecret(t, r, pass)
	})
	t.Run("wrong", func(t *testing.T) {
		r := run(t, Config{URL: srv.URLWithAuth(user, wrong), Transport: "tcp", BackoffMin: 50 * time.Millisecond})
		st := waitStatus(t, r.src, 10*time.Second, "failed twice", func(st media.SourceStatus) bool { return st.RestartCount >= 2 })
		if !strings.Contains(st.LastError, "401") || !strings.Contains(st.LastError, "rtsp://***@127.0.0.1") {
			t.Fatalf("last_error %q: want a redacted URL and the 401", st.LastError)
		}
		assertNoSecret(t, r, wrong)
	})
}

func assertNoSecret(t *testing.T, r *running, secret string) {
	t.Helper()
	st := r.src.Status()
	if strings.Contains(fmt.Sprintf("%+v", st), secret) {
		t.Fatalf("status leaks the password: %+v", st)
	}
	if logs := r.logs.String(); strings.Contains(logs, secret) {
		t.Fatalf("logs leak the password:\n%s", logs)
	} else if !strings.Contains(logs, "camera=t") {
		t.Fatalf("logs lack the caller's camera field:\n%s", logs)
	}
}

// TestUnreachable: nothing listens; the source keeps retrying with a redacted error.
func TestUnreachable(t *testing.T) {
	checkGoroutines(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	r := run(t, Config{URL: "rtsp://bob:hunter2-secret@" + addr + "/x", BackoffMin: 20 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	st := waitStatus(t, r.src, 10*time.Second, "retrying", func(st media.SourceStatus) bool { return st.RestartCount >= 3 })
	if st.State != media.StateReconnecting || !strings.Contains(st.LastError, "refused") {
		t.Fatalf("status %+v", st)
	}
	assertNoSecret(t, r, "hunter2-secret")
}

// TestInvalidConfigFailsAtOnce: a URL or transport that can never work ends Run with an error.
func TestInvalidConfigFailsAtOnce(t *testing.T) {
	for _, cfg := range []Config{
		{URL: "http://joe:pw-secret@cam/x"},
		{URL: "rtsp://joe:pw-secret@cam/x", Transport: "sctp"},
	} {
		src := New(cfg, media.NewStream("t"))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := src.Run(ctx)
		cancel()
		if err == nil {
			t.Fatalf("%+v: Run returned nil", cfg)
		}
		st := src.Status()
		if strings.Contains(err.Error(), "pw-secret") || strings.Contains(st.LastError, "pw-secret") || st.LastError == "" ||
			st.State != media.StateStopped {
			t.Fatalf("err %q status %+v", err, st)
		}
	}
}

// nonVideoServer serves one G.711 audio track and nothing else.
type nonVideoServer struct{ stream *gortsplib.ServerStream }

func (h *nonVideoServer) OnDescribe(*gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return &base.Response{StatusCode: base.StatusOK}, h.stream, nil
}

func (h *nonVideoServer) OnSetup(*gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return &base.Response{StatusCode: base.StatusOK}, h.stream, nil
}

func (h *nonVideoServer) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func TestNoVideoTrack(t *testing.T) {
	checkGoroutines(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	h := &nonVideoServer{}
	srv := &gortsplib.Server{Handler: h, RTSPAddress: addr}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	h.stream = &gortsplib.ServerStream{Server: srv, Desc: &description.Session{Medias: []*description.Media{{
		Type: description.MediaTypeAudio, Formats: []format.Format{&format.G711{PayloadTyp: 0, MULaw: true, SampleRate: 8000, ChannelCount: 1}},
	}}}}
	if err := h.stream.Initialize(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.stream.Close(); srv.Close() })
	r := run(t, Config{URL: "rtsp://u:pw-secret@" + addr + "/audio", Transport: "tcp", BackoffMin: 20 * time.Millisecond})
	st := waitStatus(t, r.src, 10*time.Second, "failed", func(st media.SourceStatus) bool { return st.RestartCount >= 2 })
	want := "no H.264/H.265 video track in rtsp://***@" + addr + "/audio"
	if st.LastError != want {
		t.Fatalf("last_error %q, want %q", st.LastError, want)
	}
}

// TestPullGStreamer pulls from GStreamer's RTSP server (an independent implementation) over TCP and UDP.
func TestPullGStreamer(t *testing.T) {
	mp4 := testenv.Asset(t, streetMP4)
	for _, proto := range []string{"tcp", "udp"} {
		t.Run(proto, func(t *testing.T) {
			g := rtsptest.StartGStreamer(t, mp4, 0, proto)
			r := run(t, Config{URL: g.URL, Transport: proto})
			rd := r.stream.NewReader(256)
			defer rd.Close()
			var prev *media.AccessUnit
			for i := 0; i < 50; i++ {
				au := readAU(t, rd, 10*time.Second)
				if i == 0 && !au.Keyframe {
					t.Fatal("first AU is not a keyframe")
				}
				if i == 0 && media.NALUType(media.CodecH264, au.NALUs[0]) != 9 && !hasType(au, 7) {
					t.Fatalf("keyframe lacks SPS: %d NALUs", len(au.NALUs))
				}
				if prev != nil && au.RTPTime-prev.RTPTime != 3600 {
					t.Fatalf("AU %d: RTP step %d, want 3600", i, au.RTPTime-prev.RTPTime)
				}
				prev = au
			}
			st := r.src.Status()
			if st.State != media.StateStreaming || st.FPS <= 0 || st.Transport != proto || st.Codec != media.CodecH264 {
				t.Fatalf("status %+v", st)
			}
		})
	}
}

func hasType(au *media.AccessUnit, typ int) bool {
	for _, n := range au.NALUs {
		if media.NALUType(au.Codec, n) == typ {
			return true
		}
	}
	return false
}

// TestReconnectAfterGStreamerRestart kills the server mid-stream and restarts it on the same port: the
// source must notice, report the failure, reconnect and feed the same reader again.
func TestReconnectAfterGStreamerRestart(t *testing.T) {
	mp4 := testenv.Asset(t, streetMP4)
	g := rtsptest.StartGStreamer(t, mp4, 0, "tcp")
	r := run(t, Config{URL: g.URL, Transport: "auto", ReadTimeout: 2 * time.Second})
	rd := r.stream.NewReader(512)
	defer rd.Close()
	for i := 0; i < 25; i++ {
		readAU(t, rd, 10*time.Second)
	}
	g.Kill()
	killed := time.Now()
	st := waitStatus(t, r.src, 10*time.Second, "reconnecting after the kill", func(st media.SourceStatus) bool {
		return st.State == media.StateReconnecting && st.LastError != ""
	})
	t.Logf("noticed the kill after %s: %q", time.Since(killed).Round(time.Millisecond), st.LastError)
	time.Sleep(time.Second) // down for a while: some reconnects fail with "connection refused"
	if err := g.Restart(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	for {
		au := readAU(t, rd, 15*time.Second)
		if au.Received.After(back) {
			if !au.Keyframe {
				var types []int
				for _, n := range au.NALUs {
					types = append(types, media.NALUType(au.Codec, n))
				}
				t.Fatalf("first AU after the reconnect is not a keyframe: NAL types %v", types)
			}
			t.Logf("RECONNECT: first frame %s after the server accepted again (down %s)",
				au.Received.Sub(back).Round(time.Millisecond), back.Sub(killed).Round(time.Millisecond))
			if testing.Verbose() {
				t.Logf("killed at %s, back at %s; logs:\n%s", killed.Format("15:04:05.000"), back.Format("15:04:05.000"), r.logs.String())
			}
			break
		}
	}
	st = r.src.Status()
	if st.RestartCount < 1 || st.State != media.StateStreaming {
		t.Fatalf("status after reconnect %+v", st)
	}
}
