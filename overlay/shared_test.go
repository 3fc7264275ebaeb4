package overlay

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sightline/codec"
	"sightline/internal/testenv"
	"sightline/media"
)

// decoderSource is a FrameSource as the analytics pipeline is one: its own real decoder on the raw
// stream, handing every decoded frame to the subscribers until stopped.
type decoderSource struct {
	mu    sync.Mutex
	subs  map[int]func(*codec.Frame)
	next  int
	ended chan struct{}
	stop  func()
}

func startDecoderSource(t *testing.T, raw *media.Stream) *decoderSource {
	t.Helper()
	return startLaggingDecoderSource(t, raw, 0)
}

// startLaggingDecoderSource hands each decoded frame out only after lag more were decoded: a decoder
// running behind the stream.
func startLaggingDecoderSource(t *testing.T, raw *media.Stream, lag int) *decoderSource {
	t.Helper()
	s := &decoderSource{subs: map[int]func(*codec.Frame){}, ended: make(chan struct{})}
	r := raw.NewReader(0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer r.Close()
		dec, err := codec.NewDecoder(codec.DecoderConfig{Codec: media.CodecH264, Accel: codec.AccelSoftware})
		if err != nil {
			t.Error(err)
			return
		}
		defer dec.Close()
		var frames, held []*codec.Frame
		defer func() {
			for _, f := range held {
				f.Release()
			}
		}()
		for {
			au, err := r.Read(ctx)
			if err != nil {
				return
			}
			frames, _ = dec.Decode(au, frames[:0])
			held = append(held, frames...)
			for len(held) > lag {
				f := held[0]
				held = held[1:]
				s.mu.Lock()
				for _, fn := range s.subs {
					fn(f)
				}
				s.mu.Unlock()
				f.Release()
			}
		}
	}()
	s.stop = func() {
		cancel()
		<-done
		s.mu.Lock()
		clear(s.subs)
		close(s.ended)
		s.mu.Unlock()
	}
	return s
}

func (s *decoderSource) SubscribeFrames(fn func(*codec.Frame)) (func(), <-chan struct{}, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.ended:
		return func() {}, nil, false
	default:
	}
	id := s.next
	s.next++
	s.subs[id] = fn
	return func() { s.mu.Lock(); delete(s.subs, id); s.mu.Unlock() }, s.ended, true
}

// With a FrameSource the annotator draws on its frames and never reads the raw stream itself; when the
// source stops, it carries on with its own decoder; across both, frames keep coming and nothing leaks.
func TestAnnotatorUsesSharedFrames(t *testing.T) {
	base := runtime.NumGoroutine()
	clip := syntheticClip(t, 640, 360, 10, 20)
	raw := media.NewStream("cam/raw")
	raw.KeepGOP()
	ctx, cancel := context.WithCancel(context.Background())
	wait := feed(ctx, raw, clip, 10*time.Millisecond)
	src := startDecoderSource(t, raw)
	ann := NewAnnotator(Config{Camera: "cam", DecoderAccel: codec.AccelSoftware, Frames: src}, raw, nil, nil)
	defer func() {
		ann.Close()
		src.stop()
		cancel()
		wait()
		raw.Close()
		testenv.GoroutinesSettle(t, base)
	}()

	r := ann.Stream().NewReader(0)
	defer r.Close()
	if first := readAU(t, r, 10*time.Second); !first.Keyframe {
		t.Fatal("first annotated access unit is not a keyframe")
	}
	for i := 0; i < 20; i++ {
		readAU(t, r, 5*time.Second)
	}
	if st := ann.Stats(); !st.SharedDecoder || st.Decoder != "shared" || raw.Stats().Readers != 1 {
		t.Fatalf("with a frame source: %+v, raw readers %d (want only the source's)", st, raw.Stats().Readers)
	}

	src.stop() // the analytics pipeline went away: the annotator decodes for itself
	testenv.WaitFor(t, 10*time.Second, "the annotator's own decoder", func() bool {
		st := ann.Stats()
		return !st.SharedDecoder && st.Decoder == "software" && raw.Stats().Readers == 1
	})
	for i := 0; i < 20; i++ {
		readAU(t, r, 5*time.Second)
	}
	src.stop = func() {} // already stopped
}

// lateSource offers no frames until its decoder is set (the analytics pipeline starting after the
// annotator, as with annotatedWarm).
type lateSource struct {
	mu  sync.Mutex
	src *decoderSource
}

func (l *lateSource) SubscribeFrames(fn func(*codec.Frame)) (func(), <-chan struct{}, bool) {
	l.mu.Lock()
	s := l.src
	l.mu.Unlock()
	if s == nil {
		return func() {}, nil, false
	}
	return s.SubscribeFrames(fn)
}

// lateRig is an annotator on a live synthetic raw stream whose frame source offers nothing until offer
// (the analytics pipeline starting after the annotator, as with annotatedWarm). Cleanup stops it all and
// checks that no goroutine is left.
type lateRig struct {
	raw  *media.Stream
	late *lateSource
	ann  *Annotator
}

func startLateRig(t *testing.T) *lateRig {
	t.Helper()
	base := runtime.NumGoroutine()
	clip := syntheticClip(t, 640, 360, 10, 20)
	rig := &lateRig{raw: media.NewStream("cam/raw"), late: &lateSource{}}
	rig.raw.KeepGOP()
	ctx, cancel := context.WithCancel(context.Background())
	wait := feed(ctx, rig.raw, clip, 10*time.Millisecond)
	rig.ann = NewAnnotator(Config{Camera: "cam", DecoderAccel: codec.AccelSoftware, Frames: rig.late}, rig.raw, nil, nil)
	t.Cleanup(func() {
		rig.ann.Close()
		rig.late.mu.Lock()
		src := rig.late.src
		rig.late.mu.Unlock()
		if src != nil {
			src.stop()
		}
		cancel()
		wait()
		rig.raw.Close()
		testenv.GoroutinesSettle(t, base)
	})
	return rig
}

// offer makes src's frames available to the annotator.
func (rig *lateRig) offer(src *decoderSource) {
	rig.late.mu.Lock()
	rig.late.src = src
	rig.late.mu.Unlock()
}

// An annotator that started on its own decoder moves to the shared frames once they are offered.
func TestAnnotatorMovesToSharedFrames(t *testing.T) {
	rig := startLateRig(t)
	r := rig.ann.Stream().NewReader(0)
	defer r.Close()
	for i := 0; i < 10; i++ {
		readAU(t, r, 10*time.Second)
	}
	if st := rig.ann.Stats(); st.SharedDecoder || st.Decoder != "software" {
		t.Fatalf("before the source runs: %+v", st)
	}
	rig.offer(startDecoderSource(t, rig.raw))
	testenv.WaitFor(t, 10*time.Second, "the annotator to use the shared frames", func() bool {
		readAU(t, r, 5*time.Second)
		return rig.ann.Stats().SharedDecoder && rig.raw.Stats().Readers == 1
	})
}

// Moving from its own decoder to shared frames that lag behind it, the annotator does not encode the
// frames it already wrote a second time: the annotated stream's timestamps only go forward (a viewer
// would otherwise get the same RTP timestamp twice, or time going back).
func TestAnnotatorSwitchNeverReplaysFrames(t *testing.T) {
	rig := startLateRig(t)
	ann := rig.ann
	r := ann.Stream().NewReader(10000) // keeps every access unit: a drop to a keyframe could hide a replay
	defer r.Close()
	last, read := readAU(t, r, 10*time.Second).PTS, uint64(1)
	check := func(n uint64) {
		for ; n > 0; n-- {
			read++
			au := readAU(t, r, 5*time.Second)
			if au.PTS <= last {
				t.Fatalf("annotated PTS %v after %v (shared decoder %v)", au.PTS, last, ann.Stats().SharedDecoder)
			}
			last = au.PTS
		}
	}
	check(10)
	if ann.Stats().SharedDecoder {
		t.Fatal("shared before the source runs")
	}
	src := startLaggingDecoderSource(t, rig.raw, 40)
	// Let it run behind the stream before the annotator sees it, as analytics does.
	var seen atomic.Int64
	stopCount, _, _ := src.SubscribeFrames(func(*codec.Frame) { seen.Add(1) })
	testenv.WaitFor(t, 10*time.Second, "the lagging decoder's frames", func() bool { return seen.Load() >= 5 })
	stopCount()
	rig.offer(src)
	testenv.WaitFor(t, 10*time.Second, "the annotator to use the shared frames", func() bool {
		check(1)
		return ann.Stats().SharedDecoder
	})
	// Read past everything written before the switch and 30 frames of the shared decoder's.
	check(ann.Stats().AccessUnits - read + 30)
}
