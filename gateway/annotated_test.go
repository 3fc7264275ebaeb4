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
//
// The annotator draws on the frames the analytics pipeline decodes (one decoder per camera). Cold (the
// default) it starts with the viewer and stops when the viewer leaves; warm (annotatedWarm), it keeps
// running and only the encoder stops.
func TestWHEPAnnotated(t *testing.T) {
	for _, warm := range []bool{false, true} {
		t.Run(fmt.Sprintf("warm=%v", warm), func(t *testing.T) { testWHEPAnnotated(t, warm) })
	}
}

func testWHEPAnnotated(t *testing.T, warm bool) {
	clip := testenv.Asset(t, "camera/cam_street_1280x720_25fps.h264")
	g, _ := startGateway(t, fmt.Sprintf(`analytics: {fps: 5, model: /nonexistent/model.onnx}
cameras:
  - id: street
    url: 'file://%s'
    annotatedWarm: %v
    rules:
      - {id: walkway, type: zone, polygon: [[0.1,0.5],[0.9,0.5],[0.9,1],[0.1,1]]}
`, clip, warm))
	cam, _ := g.cameras.get("street")
	waitFor(t, 10*time.Second, "streaming", func() bool {
		return cameraStatus(t, g, "street").Status.State == media.StateStreaming
	})
	if st := cam.ann.Stats(); st.Running != warm {
		t.Fatalf("annotator with nobody watching: %+v", st)
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
	// SendPLI: as a browser does, the viewer asks for a keyframe when its track starts, which the
	// annotated track answers with an IDR; the IDR forced when the reader joined can be written before
	// DTLS is up and lost, so the viewer starts at the first keyframe it receives.
	v, err := whepclient.Dial(dctx, "http://"+g.HTTPAddr()+"/whep/street/annotated", whepclient.Options{LoopbackOnly: true, SendPLI: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	first := nextFrame(t, v, 10*time.Second)
	for skipped := 0; !first.Keyframe; skipped++ {
		if skipped > 60 {
			t.Fatalf("no keyframe among the first %d annotated frames (keyframe requests unanswered)", skipped)
		}
		first = nextFrame(t, v, 10*time.Second)
	}
	var decoded []*codec.Frame
	decoded, err = dec.Decode(&media.AccessUnit{Codec: media.CodecH264, NALUs: first.NALUs, Keyframe: true}, decoded[:0])
	if err != nil || len(decoded) != 1 || decoded[0].Width != 1280 || decoded[0].Height != 720 {
		t.Fatalf("first annotated frame does not decode to 1280x720: %v, %d frames", err, len(decoded))
	}
	decodedAt := time.Now()
	decoded[0].Release()
	t.Logf("warm=%v: time to first annotated frame: %s complete after the WHEP POST, %s decoded (%d packets)", warm,
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
	// The test's raw reader starts at a keyframe, so a warm annotator's first frames may predate it:
	// from the first frame it saw on, every annotated RTP timestamp is one the camera sent.
	mu.Lock()
	matched := 0
	for i, f := range frames {
		switch {
		case rawTimes[f.RTPTime]:
			matched++
		case matched > 0:
			mu.Unlock()
			t.Fatalf("annotated frame %d has RTP timestamp %d, which the camera never sent", i, f.RTPTime)
		}
	}
	mu.Unlock()
	if matched < 25 {
		t.Fatalf("only %d of %d annotated RTP timestamps are the camera's", matched, len(frames))
	}
	for i := 1; i < len(frames); i++ {
		if frames[i].RTPTime == frames[i-1].RTPTime { // (the file camera's loop makes a jump)
			t.Fatalf("frame %d repeats RTP timestamp %d", i, frames[i].RTPTime)
		}
	}
	st := cam.ann.Stats()
	if !st.Running || st.Frames < 50 || st.Encoder == "" {
		t.Fatalf("annotator while watched: %+v", st)
	}
	// Analytics decodes every frame, so the annotator draws on those frames instead of decoding again.
	if !st.SharedDecoder || st.Decoder != "shared" {
		t.Fatalf("annotator decodes the camera a second time: %+v", st)
	}
	if api := cameraStatus(t, g, "street").Annotated; !api.Running || !api.SharedDecoder || api.Frames == 0 {
		t.Fatalf("GET /api/v1/cameras/street annotated: %+v", api)
	}

	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if !warm {
		waitFor(t, 10*time.Second, "the annotator to stop after the viewer left", func() bool { return !cam.ann.Stats().Running })
		return
	}
	var before uint64
	waitFor(t, 10*time.Second, "the encoder to stop after the viewer left", func() bool {
		n := cam.ann.Stats().Frames
		stopped := n == before
		before = n
		time.Sleep(200 * time.Millisecond)
		return stopped
	})
	if st := cam.ann.Stats(); !st.Running {
		t.Fatalf("warm annotator stopped decoding: %+v", st)
	}
}
