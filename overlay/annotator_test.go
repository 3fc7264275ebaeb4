package overlay

import (
	"context"
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sightline/codec"
	"sightline/internal/testenv"
	"sightline/media"
)

// syntheticClip encodes n frames of a flat grey picture with a white square moving along the top row
// (away from where the tests draw boxes), with an IDR every gop frames.
func syntheticClip(t testing.TB, w, h, gop, n int) []*media.AccessUnit {
	t.Helper()
	enc, err := codec.NewEncoder(codec.EncoderConfig{Width: w, Height: h, GOP: gop, BitrateBps: 1_000_000})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	var aus []*media.AccessUnit
	for i := 0; i < n; i++ {
		f, err := codec.NewFrame(w, h, codec.FormatI420)
		if err != nil {
			t.Fatal(err)
		}
		im, err := FrameImage(f)
		if err != nil {
			t.Fatal(err)
		}
		im.FillRect(Rect{0, 0, w, h}, grey)
		im.FillRect(Rect{(i * 8) % (w - 16), 0, (i*8)%(w-16) + 16, 16}, White)
		f.PTS = time.Duration(i) * 40 * time.Millisecond
		f.RTPTime = uint32(i * 3600)
		if aus, err = enc.Encode(f, aus); err != nil {
			t.Fatal(err)
		}
		f.Release()
	}
	if len(aus) != n {
		t.Fatalf("%d access units for %d frames", len(aus), n)
	}
	return aus
}

// feed writes the clip to s in a loop, every period, with PTS and RTP time running on, until ctx ends.
// The returned function waits for the feeding goroutine.
func feed(ctx context.Context, s *media.Stream, clip []*media.AccessUnit, period time.Duration) (wait func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(period)
		defer tick.Stop()
		for i := 0; ; i++ {
			src := clip[i%len(clip)]
			au := *src
			au.PTS = time.Duration(i) * 40 * time.Millisecond
			au.RTPTime = uint32(i * 3600)
			au.Received = time.Now()
			s.Write(&au)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return wg.Wait
}

func readAU(t testing.TB, r *media.Reader, timeout time.Duration) *media.AccessUnit {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	au, err := r.Read(ctx)
	if err != nil {
		t.Fatalf("read annotated access unit: %v", err)
	}
	return au
}

type rig struct {
	raw  *media.Stream
	ann  *Annotator
	stop func()
}

// newRig feeds a 640x360 synthetic camera (IDR every gop frames) at 100 frames/s into a raw stream with
// a GOP cache and puts an annotator on it with encoder GOP encGOP.
func newRig(t testing.TB, gop, encGOP int, boxes BoxSource) *rig {
	t.Helper()
	clip := syntheticClip(t, 640, 360, gop, 2*gop)
	raw := media.NewStream("cam/raw")
	raw.KeepGOP() // as the gateway's cameras do: every start decodes a GOP backlog first
	ctx, cancel := context.WithCancel(context.Background())
	wait := feed(ctx, raw, clip, 10*time.Millisecond)
	ann := NewAnnotator(Config{Camera: "cam", DecoderAccel: codec.AccelSoftware, GOP: encGOP}, raw, boxes, nil)
	r := &rig{raw: raw, ann: ann}
	r.stop = func() {
		ann.Close()
		cancel()
		wait()
		raw.Close()
	}
	return r
}

func TestAnnotatorRunsOnlyWhileWatched(t *testing.T) {
	base := runtime.NumGoroutine()
	rg := newRig(t, 10, 50, nil)
	defer func() { rg.stop(); testenv.GoroutinesSettle(t, base) }()

	time.Sleep(200 * time.Millisecond) // the camera runs; nobody watches
	if st := rg.ann.Stats(); st.Running || st.Starts != 0 || rg.raw.Stats().Readers != 0 {
		t.Fatalf("annotator works with no reader: %+v, raw readers %d", st, rg.raw.Stats().Readers)
	}
	for round := 1; round <= 2; round++ {
		r := rg.ann.Stream().NewReader(0)
		first := readAU(t, r, 10*time.Second)
		if !first.Keyframe || first.Codec != media.CodecH264 {
			t.Fatalf("first access unit: keyframe %v codec %s", first.Keyframe, first.Codec)
		}
		for i := 0; i < 5; i++ {
			readAU(t, r, 5*time.Second)
		}
		r2 := rg.ann.Stream().NewReader(0) // a second reader shares the same pipeline
		readAU(t, r2, 5*time.Second)
		if st := rg.ann.Stats(); !st.Running || st.Starts != uint64(round) || rg.raw.Stats().Readers != 1 {
			t.Fatalf("round %d while watched: %+v, raw readers %d", round, st, rg.raw.Stats().Readers)
		}
		r.Close()
		readAU(t, r2, 5*time.Second) // one reader left: still running
		r2.Close()
		testenv.WaitFor(t, 10*time.Second, "the annotator to stop after the last reader", func() bool {
			return !rg.ann.Stats().Running && rg.raw.Stats().Readers == 0
		})
	}
	if st := rg.ann.Stats(); st.Decoder != "software" || st.Encoder != "libx264" || st.LastError != "" {
		t.Fatalf("stats %+v", st)
	}
}

// With the encoder's GOP at 1000 frames (10 s of this 100 fps feed), any keyframe after the first within
// a few seconds is a forced one: a joining reader and a keyframe request each get one at once.
func TestAnnotatorIDROnJoinAndRequest(t *testing.T) {
	base := runtime.NumGoroutine()
	rg := newRig(t, 10, 1000, nil)
	defer func() { rg.stop(); testenv.GoroutinesSettle(t, base) }()

	a := rg.ann.Stream().NewReader(256)
	defer a.Close()
	readAU(t, a, 10*time.Second)
	for i := 0; i < 10; i++ {
		if au := readAU(t, a, 5*time.Second); au.Keyframe {
			t.Fatalf("unforced keyframe at %d (GOP 1000)", i)
		}
	}
	joined := time.Now()
	b := rg.ann.Stream().NewReader(0)
	defer b.Close()
	first := readAU(t, b, 2*time.Second)
	t.Logf("joining reader's first access unit (a keyframe: %v) after %v", first.Keyframe, time.Since(joined))
	// Reader a sees the same forced IDR among the next few frames.
	sawKey := false
	for i := 0; i < 20 && !sawKey; i++ {
		au := readAU(t, a, 5*time.Second)
		sawKey = au.Keyframe && au.RTPTime == first.RTPTime
	}
	if !sawKey {
		t.Fatal("no forced IDR for the joining reader")
	}
	rg.ann.Stream().RequestKeyframe() // as webrtc does on PLI/FIR
	sawKey = false
	for i := 0; i < 20 && !sawKey; i++ {
		sawKey = readAU(t, a, 5*time.Second).Keyframe
	}
	if !sawKey {
		t.Fatal("no IDR after a keyframe request")
	}
}

// The boxes drawn are in the encoded video: decode the annotated stream and read a box edge.
func TestAnnotatorDrawsBoxes(t *testing.T) {
	base := runtime.NumGoroutine()
	var mu sync.Mutex
	var asked []time.Duration
	boxes := BoxFunc(func(pts time.Duration) []Box {
		mu.Lock()
		asked = append(asked, pts)
		mu.Unlock()
		return []Box{{ID: 1, Class: 0, Label: "person", Score: 0.9, X: 0.25, Y: 0.25, W: 0.5, H: 0.5}}
	})
	rg := newRig(t, 10, 50, boxes)
	defer func() { rg.stop(); testenv.GoroutinesSettle(t, base) }()

	r := rg.ann.Stream().NewReader(0)
	defer r.Close()
	dec, err := codec.NewDecoder(codec.DecoderConfig{Codec: media.CodecH264, Accel: codec.AccelSoftware})
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	var frames []*codec.Frame
	for n := 0; n < 10; {
		au := readAU(t, r, 10*time.Second)
		if frames, err = dec.Decode(au, frames[:0]); err != nil {
			t.Fatal(err)
		}
		for _, f := range frames {
			n++
			if f.PTS != au.PTS || f.RTPTime != au.RTPTime {
				t.Errorf("frame pts %v rtp %d, access unit %v %d", f.PTS, f.RTPTime, au.PTS, au.RTPTime)
			}
			red := ClassColor(0)
			// Box [160,90)-(480,270), 2 px outline at 360p: the left edge is columns 160-161.
			y := f.Planes[0][180*f.Strides[0]+160]
			inside := f.Planes[0][180*f.Strides[0]+320]
			cr := f.Planes[2][90*f.Strides[2]+80]
			if absDiff(y, red.Y) > 12 || absDiff(inside, grey.Y) > 12 || absDiff(cr, red.Cr) > 16 {
				t.Fatalf("frame %d: edge Y %d Cr %d (want ~%d, ~%d), inside Y %d (want ~%d)", n, y, cr, red.Y, red.Cr, inside, grey.Y)
			}
			f.Release()
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) < 10 {
		t.Fatalf("box source asked %d times for 10 frames", len(asked))
	}
}

func absDiff(a, b uint8) int {
	if a > b {
		return int(a - b)
	}
	return int(b - a)
}

func rssKiB(t testing.TB) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			v, _ := strconv.Atoi(strings.Fields(line)[1])
			return v
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// 100 join/leave cycles, each opening and closing decoder and encoder: goroutines return to the baseline
// and RSS stays roughly flat after a warm-up (measured: within 10 MiB over 300 more cycles).
func TestAnnotatorJoinLeaveNoLeak(t *testing.T) {
	if testing.Short() {
		t.Skip("100 cycles")
	}
	base := runtime.NumGoroutine()
	rg := newRig(t, 5, 50, BoxFunc(func(time.Duration) []Box {
		return []Box{{ID: 3, Class: 2, Label: "car", Score: 0.5, X: 0.1, Y: 0.5, W: 0.3, H: 0.3}}
	}))
	defer func() { rg.stop(); testenv.GoroutinesSettle(t, base) }()
	cycle := func() {
		r := rg.ann.Stream().NewReader(0)
		readAU(t, r, 10*time.Second)
		r.Close()
		testenv.WaitFor(t, 10*time.Second, "the annotator to stop", func() bool { return !rg.ann.Stats().Running })
	}
	const warmup = 50 // RSS settles (allocator arenas, heap) over the first few dozen cycles, then stays flat
	for i := 0; i < warmup; i++ {
		cycle()
	}
	runtime.GC()
	before := rssKiB(t)
	const cycles = 100
	for i := 0; i < cycles; i++ {
		cycle()
	}
	runtime.GC()
	after := rssKiB(t)
	st := rg.ann.Stats()
	t.Logf("%d cycles: RSS %d -> %d KiB (%+d), %d starts, %d frames", cycles, before, after, after-before, st.Starts, st.Frames)
	if st.Starts != cycles+warmup {
		t.Fatalf("%d starts for %d cycles", st.Starts, cycles+warmup)
	}
	// One leaked 360p frame per cycle would add 34 MiB, a leaked encoder or decoder several times that.
	if after-before > 24*1024 {
		t.Fatalf("RSS grew %d KiB over %d cycles", after-before, cycles)
	}
}

func TestAnnotatorRawClosed(t *testing.T) {
	base := runtime.NumGoroutine()
	rg := newRig(t, 10, 50, nil)
	r := rg.ann.Stream().NewReader(0)
	readAU(t, r, 10*time.Second)
	rg.raw.Close() // the camera goes away: the pipeline ends, the annotated stream stays open and idle
	testenv.WaitFor(t, 10*time.Second, "the pipeline to end", func() bool { return !rg.ann.Stats().Running })
	rg.stop()
	for {
		if _, err := r.Read(context.Background()); err != nil {
			if !errors.Is(err, media.ErrStreamClosed) {
				t.Fatal(err)
			}
			break
		}
	}
	r.Close()
	testenv.GoroutinesSettle(t, base)
}

// With the raw stream's GOP cache, a joining reader's first annotated frame is the camera's latest
// frame, encoded as an IDR at once: the backlog before it is decoded but not encoded. Without the cache
// nothing comes until the camera's next keyframe.
func TestAnnotatorStartsFromGOPCache(t *testing.T) {
	base := runtime.NumGoroutine()
	clip := syntheticClip(t, 640, 360, 100, 30) // one keyframe, then 29 frames that depend on it
	for _, keep := range []bool{true, false} {
		raw := media.NewStream("cam/raw")
		if keep {
			raw.KeepGOP()
		}
		old := time.Now().Add(-time.Second)
		for _, src := range clip {
			au := *src
			au.Received = old
			raw.Write(&au)
		}
		ann := NewAnnotator(Config{Camera: "cam", DecoderAccel: codec.AccelSoftware}, raw, nil, nil)
		r := ann.Stream().NewReader(0)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		first, err := r.Read(ctx)
		cancel()
		st := ann.Stats()
		r.Close()
		ann.Close()
		raw.Close()
		if !keep {
			if err == nil {
				t.Fatalf("without a GOP cache the annotator produced a frame (rtp %d) before any new keyframe", first.RTPTime)
			}
			continue
		}
		if err != nil {
			t.Fatalf("no annotated frame from the GOP cache: %v", err)
		}
		last := clip[len(clip)-1]
		if !first.Keyframe || first.RTPTime != last.RTPTime || st.Skipped != uint64(len(clip)-1) || st.Frames != 1 {
			t.Fatalf("first annotated AU: keyframe %v rtp %d (latest raw %d); stats %+v", first.Keyframe, first.RTPTime, last.RTPTime, st)
		}
	}
	testenv.GoroutinesSettle(t, base)
}
