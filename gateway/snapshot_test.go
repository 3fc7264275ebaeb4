package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"sightline/internal/testenv"
	"sightline/media"
)

func httpGet(t *testing.T, url string) (int, string, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), body
}

func TestHWAccelCap(t *testing.T) {
	g, _ := startGateway(t, "")
	var caps struct {
		Libavcodec string
		Accels     []struct {
			Accel     string
			Available bool
			Reason    string
		} `json:"accelerators"`
		Decoders map[string]bool
		Encoders map[string]bool
	}
	if code := getJSON(t, "http://"+g.HTTPAddr()+"/api/v1/hw-accel-cap", &caps); code != 200 {
		t.Fatalf("status %d", code)
	}
	if caps.Libavcodec == "" || !caps.Decoders["h264"] || !caps.Decoders["hevc"] {
		t.Fatalf("capabilities: %+v", caps)
	}
	seen := map[string]bool{}
	for _, a := range caps.Accels {
		seen[a.Accel] = true
		if !a.Available && a.Reason == "" {
			t.Errorf("%s unavailable without a reason", a.Accel)
		}
		if a.Accel == "software" && !a.Available {
			t.Error("software decoding unavailable")
		}
	}
	if !seen["vaapi"] || !seen["cuda"] || !seen["software"] {
		t.Fatalf("accelerators: %+v", caps.Accels)
	}
}

// A file camera: info from its SPS, and frame.jpg decodes to a JPEG of the stream's size or of ?width=
// with the aspect ratio kept, from the raw or (annotated=1, variant=annotated) the annotated stream.
// Unknown cameras are 404 unknown_camera, bad widths and variants 400, a camera that never sent a
// picture 404 no_frame naming its state.
func TestCameraInfoAndFrame(t *testing.T) {
	clip := testenv.Asset(t, "camera/cam_street_1280x720_25fps.h264")
	g, _ := startGateway(t, fmt.Sprintf("cameras:\n  - {id: street, url: 'file://%s'}\n  - {id: dead, url: 'rtsp://127.0.0.1:1/x'}\n", clip))
	base := "http://" + g.HTTPAddr() + "/api/v1/cameras/"

	// The unreachable camera has no SPS and no frame.
	var e struct{ Error, Code string }
	if code := getJSON(t, base+"dead/info", &e); code != 503 || e.Code != "no_stream_yet" || e.Error == "" {
		t.Fatalf("info without SPS: %d %+v", code, e)
	}
	for _, q := range []string{"", "?annotated=1"} {
		if code := getJSON(t, base+"dead/frame.jpg"+q, &e); code != 404 || e.Code != "no_frame" || !strings.Contains(e.Error, "state: ") {
			t.Fatalf("frame%s without stream: %d %+v", q, code, e)
		}
	}
	for _, p := range []string{"nope/info", "nope/frame.jpg"} {
		if code := getJSON(t, base+p, &e); code != 404 || e.Code != "unknown_camera" {
			t.Fatalf("%s: %d %+v", p, code, e)
		}
	}
	for _, w := range []string{"abc", "0", "1", "-320", "100000", "3.5", "1e3"} {
		if code := getJSON(t, base+"street/frame.jpg?width="+w, &e); code != 400 || e.Code != "bad_width" {
			t.Fatalf("width=%s: %d %+v", w, code, e)
		}
	}

	for _, q := range []string{"annotated=yes", "variant=boxes", "annotated=1&variant=raw", "annotated=0&variant=annotated"} {
		if code := getJSON(t, base+"street/frame.jpg?"+q, &e); code != 400 || e.Code != "bad_variant" {
			t.Fatalf("%s: %d %+v", q, code, e)
		}
	}

	waitFor(t, 10*time.Second, "streaming", func() bool {
		return cameraStatus(t, g, "street").Status.State == media.StateStreaming
	})
	var in streamInfo
	waitFor(t, 10*time.Second, "measured rates", func() bool {
		if code := getJSON(t, base+"street/info", &in); code != 200 {
			t.Fatalf("info: %d", code)
		}
		return in.BitrateBps > 0 && in.MeasuredFPS > 0
	})
	if in.Codec != media.CodecH264 || in.Width != 1280 || in.Height != 720 || in.Profile != "Constrained Baseline" ||
		in.ProfileIdc != 66 || in.Level == "" || in.FPS < 20 || in.FPS > 30 || in.Transport == "" {
		b, _ := json.Marshal(in)
		t.Fatalf("info: %s", b)
	}

	cam, _ := g.cameras.get("street")
	readers := cam.raw.Stats().Readers
	for _, c := range []struct {
		query         string
		width, height int
	}{{"", 1280, 720}, {"?width=320", 320, 180}, {"?width=1280", 1280, 720}} {
		checkJPEG(t, base+"street/frame.jpg"+c.query, c.width, c.height)
	}
	// The snapshots' readers are gone once the answers are sent.
	if n := cam.raw.Stats().Readers; n != readers {
		t.Fatalf("stream readers: %d after the snapshots, %d before", n, readers)
	}

	// The annotated stream: its annotator starts for the snapshot and forces an IDR at once.
	ann := g.cameras.annotated(cam)
	for _, c := range []struct {
		query         string
		width, height int
	}{{"?annotated=1", 1280, 720}, {"?variant=annotated&width=320", 320, 180}, {"?annotated=true&variant=annotated", 1280, 720}} {
		checkJPEG(t, base+"street/frame.jpg"+c.query, c.width, c.height)
	}
	// Nobody watches the annotated stream afterwards: its annotator stops and leaves the raw stream.
	waitFor(t, 10*time.Second, "annotator stopped", func() bool {
		return ann.Stats().Readers == 0 && cam.raw.Stats().Readers == readers
	})
}

func FuzzStreamInfo(f *testing.F) {
	f.Add("H264", []byte{0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8, 0x40})
	f.Add("H265", []byte{0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03})
	f.Fuzz(func(t *testing.T, c string, sps []byte) {
		in, err := parseStreamInfo(media.Params{Codec: media.Codec(c), SPS: sps})
		if err == nil && (in.Width <= 0 || in.Height <= 0) {
			t.Fatalf("accepted %dx%d", in.Width, in.Height)
		}
	})
}

// checkJPEG fetches url and fails unless it answers 200 with an image/jpeg of width x height.
func checkJPEG(t *testing.T, url string, width, height int) image.Image {
	t.Helper()
	code, ctype, body := httpGet(t, url)
	if code != 200 || ctype != "image/jpeg" {
		t.Fatalf("%s: %d %s %.200s", url, code, ctype, body)
	}
	img, err := jpeg.Decode(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	if b := img.Bounds(); b.Dx() != width || b.Dy() != height {
		t.Fatalf("%s: %v, want %dx%d", url, b, width, height)
	}
	return img
}
