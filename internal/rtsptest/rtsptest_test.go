package rtsptest

import (
	"net"
	"os"
	"testing"
	"time"

	"sightline/internal/testenv"
)

func TestSplitAUDAsset(t *testing.T) {
	buf, err := os.ReadFile(testenv.Asset(t, "camera/cam_street_1280x720_25fps.h264"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(SplitAUD(buf)); n != 250 {
		t.Fatalf("%d access units, want 250", n)
	}
}

func TestServerRecordsAndCloses(t *testing.T) {
	s := StartServer(t, ServerConfig{AnnexBPath: testenv.Asset(t, "camera/cam_street_1280x720_25fps.h264"), UDP: true})
	time.Sleep(200 * time.Millisecond)
	sent := s.Sent()
	if len(sent) < 2 || !sent[0].Keyframe || sent[1].RTPTime-sent[0].RTPTime != 3600 {
		t.Fatalf("sent log %d entries", len(sent))
	}
	s.Close()
	if c, err := net.DialTimeout("tcp", s.Host, time.Second); err == nil {
		c.Close()
		t.Fatal("server still accepts after Close")
	}
}

func TestGStreamerRestartSamePort(t *testing.T) {
	g := StartGStreamer(t, testenv.Asset(t, "camera/cam_street_1280x720_25fps.mp4"), 0, "tcp")
	g.Kill()
	if c, err := net.DialTimeout("tcp", g.URL[len("rtsp://"):len(g.URL)-len("/cam1")], time.Second); err == nil {
		c.Close()
		t.Fatal("still accepting after Kill")
	}
	if err := g.Restart(); err != nil {
		t.Fatal(err)
	}
}
