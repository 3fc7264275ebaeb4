package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"sightline/codec"
	"sightline/internal/testenv"
	"sightline/internal/whepclient"
	"sightline/media"
)

// WHEP POST /whep/{camera}/annotated on a file camera with analytics and a zone: the viewer's first
// frame is a keyframe that decodes, frames keep coming with the camera's RTP timestamps, and the
// annotator stops once the viewer leaves.
func TestWHEPAnnotated(t *testing.T) {
	clip := testenv.Asset(t, "camera/cam_street_1280x720_25fps.h264")
	g, _ := startGateway(t, fmt.Sprintf(`analytics: {fps: 5, model: /nonexistent/model.onnx}
cameras:
  - id: street
    url: 'file://%s'
    rules:
      - {id: walkway, type: zone, polygon: [[0.1,0.5],[0.9,0.5],[0.9,1],[0.1,1]]}
`, clip))
	cam, _ := g.cameras.get("street")
	waitFor(t, 10*time.Second, "streaming", func() bool {
		return cameraStatus(t, g, "street").Status.State == media.StateStreaming
	})
	if st := cam.ann.Stats(); st.Running {
		t.Fatalf("annotator runs with nobody watching: %+v", st)
	}

	// Every RTP timestamp the camera writes from now on.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	rawTimes := map[uint32]bool{}
	rr := cam.raw.NewReader(500)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer rr.Close()
		for {
			au, err := rr.Read(ctx)
			if err != nil {
				return
			}
			mu.Lock()
			rawTimes[au.RTPTime] = true
			mu.Unlock()
		}
	}()
	defer wg.Wait()
	defer cancel()

	dec, err := codec.NewDecoder(codec.DecoderConfig{Codec: media.CodecH264, Accel: codec.AccelSoftware})
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()

	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer dcancel()
	posted := time.Now()
	v, err := whepclient.Dial(dctx, "http://"+g.HTTPAddr()+"/whep/street/annotated", whepclient.Options{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	first := nextFrame(t, v, 10*time.Second)
	if !first.Keyframe {
		t.Fatalf("first annotated frame (rtp %d) is not a keyframe", first.RTPTime)
	}
	var decoded []*codec.Frame
	decoded, err = dec.Decode(&media.AccessUnit{Codec: media.CodecH264, NALUs: first.NALUs, Keyframe: true}, decoded[:0])
	if err != nil || len(decoded) != 1 || decoded[0].Width != 1280 || decoded[0].Height != 720 {
		t.Fatalf("first annotated frame does not decode to 1280x720: %v, %d frames", err, len(decoded))
	}
	decodedAt := time.Now()
	decoded[0].Release()
	t.Logf("time to first annotated frame: %s complete after the WHEP POST, %s decoded (%d packets)",
		first.CompleteAt.Sub(posted).Round(time.Millisecond), decodedAt.Sub(posted).Round(time.Millisecond), first.Packets)

	frames := []whepclient.Frame{first}
	for len(frames) < 50 {
		frames = append(frames, nextFrame(t, v, 3*time.Second))
	}
	for i, f := range frames[1:] {
		decoded, err = dec.Decode(&media.AccessUnit{Codec: media.CodecH264, NALUs: f.NALUs, Keyframe: f.Keyframe}, decoded[:0])
		if err != nil && !errors.Is(err, codec.ErrCorrupt) {
			t.Fatal(err)
		}
		if err != nil || len(decoded) != 1 {
			t.Fatalf("annotated frame %d does not decode: %v (%d frames)", i+1, err, len(decoded))
		}
		decoded[0].Release()
	}
	time.Sleep(200 * time.Millisecond) // the test's raw reader may lag the viewer a little
	mu.Lock()
	for i, f := range frames {
		if !rawTimes[f.RTPTime] {
			mu.Unlock()
			t.Fatalf("annotated frame %d has RTP timestamp %d, which the camera never sent", i, f.RTPTime)
		}
	}
	mu.Unlock()
	for i := 1; i < len(frames); i++ {
		if d := frames[i].RTPTime - frames[i-1].RTPTime; d == 0 || d > 90000 {
			t.Fatalf("frame %d: RTP step %d", i, d)
		}
	}
	st := cam.ann.Stats()
	if !st.Running || st.Frames < 50 || st.Encoder == "" {
		t.Fatalf("annotator while watched: %+v", st)
	}

	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the annotator to stop after the viewer left", func() bool { return !cam.ann.Stats().Running })
}
