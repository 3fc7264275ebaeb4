package pool

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"sightline/analytics"
	"sightline/internal/testenv"
)

// fakeDetector is a mock Detector (the pool's scheduling is what is tested here; the real ONNX detector
// runs in analytics/pipeline's clip test): each call sleeps delay, or blocks until gate is closed/fed,
// and records batch sizes and which inputs it saw (Tensor[0] carries a frame id).
type fakeDetector struct {
	spec  analytics.InputSpec
	delay time.Duration
	gate  chan struct{} // nil: don't block

	mu      sync.Mutex
	batches []int
	seen    []float32
	calls   chan int // batch sizes, if not nil
}

func (d *fakeDetector) InputSpec() analytics.InputSpec { return d.spec }
func (d *fakeDetector) Close() error                   { return nil }
func (d *fakeDetector) Detect(ctx context.Context, in []analytics.Input) ([]analytics.Result, error) {
	if d.calls != nil {
		d.calls <- len(in)
	}
	if d.gate != nil {
		<-d.gate
	}
	time.Sleep(d.delay)
	d.mu.Lock()
	d.batches = append(d.batches, len(in))
	for _, x := range in {
		d.seen = append(d.seen, x.Tensor[0])
	}
	d.mu.Unlock()
	out := make([]analytics.Result, len(in))
	for i, x := range in {
		out[i] = analytics.Result{Inference: d.delay, Detections: []analytics.Detection{{Score: x.Tensor[0]}}}
	}
	return out, nil
}

func spec(batch int) analytics.InputSpec {
	return analytics.InputSpec{Width: 4, Height: 4, Channels: 3, Scale: 1, Pad: 114, MaxBatch: batch}
}

func job(id float32, done func(float32, analytics.Result, error)) Job {
	return Job{Input: analytics.Input{Tensor: []float32{id}}, Done: func(r analytics.Result, err error) { done(id, r, err) }}
}

type outcomes struct {
	mu   sync.Mutex
	ok   []float32
	errs map[float32]error
}

func (o *outcomes) done(id float32, r analytics.Result, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.errs == nil {
		o.errs = map[float32]error{}
	}
	if err != nil {
		o.errs[id] = err
		return
	}
	if len(r.Detections) != 1 || r.Detections[0].Score != id {
		panic(fmt.Sprintf("result of frame %v carries %v", id, r.Detections))
	}
	o.ok = append(o.ok, id)
}

// A camera whose frames arrive faster than the detector runs keeps only the newest QueueLen frames:
// the oldest are dropped (Done gets ErrDropped at once) and counted, Submit never blocks, and the frames
// that do run come back in order.
func TestFullQueueDropsOldestAndNeverBlocks(t *testing.T) {
	det := &fakeDetector{spec: spec(1), gate: make(chan struct{}), calls: make(chan int, 16)}
	p, err := New(Config{Detectors: []analytics.Detector{det}, QueueLen: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	q := p.Queue("cam")
	var o outcomes
	q.Submit(job(1, o.done))
	<-det.calls // frame 1 is running, blocked in the detector
	start := time.Now()
	drops := 0
	for id := float32(2); id <= 9; id++ {
		if q.Submit(job(id, o.done)) {
			drops++
		}
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("8 submits took %v while the detector was blocked", el)
	}
	if drops != 6 {
		t.Fatalf("%d drops, want 6", drops)
	}
	o.mu.Lock()
	for id := float32(2); id <= 7; id++ {
		if !errors.Is(o.errs[id], ErrDropped) {
			t.Errorf("frame %v: %v, want ErrDropped", id, o.errs[id])
		}
	}
	o.mu.Unlock()
	close(det.gate)
	testenv.WaitFor(t, 10*time.Second, "frames 1, 8, 9", func() bool { o.mu.Lock(); defer o.mu.Unlock(); return len(o.ok) == 3 })
	if fmt.Sprint(o.ok) != "[1 8 9]" {
		t.Fatalf("analysed %v, want [1 8 9]", o.ok)
	}
	st := q.Stats()
	if st.Submitted != 9 || st.Dropped != 6 || st.Analysed != 3 || st.Waiting != 0 {
		t.Fatalf("stats %+v", st)
	}
	q.Close()
}

// Three cameras flooding one slow detector get equal turns (round-robin, one frame each in flight),
// however unequal their frame rates.
func TestFairAcrossCameras(t *testing.T) {
	det := &fakeDetector{spec: spec(1), delay: 2 * time.Millisecond}
	p, err := New(Config{Detectors: []analytics.Detector{det}, QueueLen: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	qs := []*Queue{p.Queue("a"), p.Queue("b"), p.Queue("c")}
	var o [3]outcomes
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for i, q := range qs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Camera a submits 10x as often as c.
			every := []time.Duration{100 * time.Microsecond, 300 * time.Microsecond, time.Millisecond}[i]
			for id := float32(1); ctx.Err() == nil; id++ {
				q.Submit(job(id, o[i].done))
				time.Sleep(every)
			}
		}()
	}
	wg.Wait()
	for _, q := range qs {
		q.Close()
	}
	var n [3]uint64
	for i, q := range qs {
		n[i] = q.Stats().Analysed
	}
	lo, hi := min(n[0], n[1], n[2]), max(n[0], n[1], n[2])
	t.Logf("analysed per camera %v; dropped %d %d %d", n, qs[0].Stats().Dropped, qs[1].Stats().Dropped, qs[2].Stats().Dropped)
	if lo < 20 || hi-lo > 2 {
		t.Fatalf("unfair: analysed %v", n)
	}
	// Every camera's results came back in submission order.
	for i := range o {
		for k := 1; k < len(o[i].ok); k++ {
			if o[i].ok[k] <= o[i].ok[k-1] {
				t.Fatalf("camera %d results out of order: %v", i, o[i].ok)
			}
		}
	}
}

// With a batch-capable model, frames of several cameras that are ready together go in one inference;
// never two frames of one camera.
func TestBatchesAcrossCameras(t *testing.T) {
	det := &fakeDetector{spec: spec(4), gate: make(chan struct{}, 16), calls: make(chan int, 16)}
	p, err := New(Config{Detectors: []analytics.Detector{det}, BatchWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.InputSpec().MaxBatch != 4 {
		t.Fatalf("spec %+v", p.InputSpec())
	}
	var o outcomes
	qs := []*Queue{p.Queue("a"), p.Queue("b"), p.Queue("c"), p.Queue("d")}
	qs[0].Submit(job(1, o.done))
	if n := <-det.calls; n != 1 {
		t.Fatalf("first batch %d", n)
	}
	// While frame 1 runs: two more of camera a, one each of b, c, d.
	qs[0].Submit(job(2, o.done))
	qs[0].Submit(job(3, o.done))
	qs[1].Submit(job(4, o.done))
	qs[2].Submit(job(5, o.done))
	qs[3].Submit(job(6, o.done))
	det.gate <- struct{}{}
	if n := <-det.calls; n != 4 {
		t.Fatalf("second batch %d frames, want 4 (a, b, c, d)", n)
	}
	det.gate <- struct{}{}
	if n := <-det.calls; n != 1 {
		t.Fatalf("third batch %d frames, want 1 (a's last)", n)
	}
	det.gate <- struct{}{}
	testenv.WaitFor(t, 10*time.Second, "6 results", func() bool { o.mu.Lock(); defer o.mu.Unlock(); return len(o.ok) == 6 })
	if st := p.Stats(); st.Batches != 3 || st.Frames != 6 {
		t.Fatalf("pool stats %+v", st)
	}
}

// Two detector sessions run two cameras' frames at once.
func TestWorkersRunInParallel(t *testing.T) {
	d1 := &fakeDetector{spec: spec(1), gate: make(chan struct{}), calls: make(chan int, 4)}
	d2 := &fakeDetector{spec: spec(1), gate: d1.gate, calls: d1.calls}
	p, err := New(Config{Detectors: []analytics.Detector{d1, d2}})
	if err != nil {
		t.Fatal(err)
	}
	var o outcomes
	p.Queue("a").Submit(job(1, o.done))
	p.Queue("b").Submit(job(2, o.done))
	<-d1.calls
	<-d1.calls // both running at once
	close(d1.gate)
	testenv.WaitFor(t, 10*time.Second, "2 results", func() bool { o.mu.Lock(); defer o.mu.Unlock(); return len(o.ok) == 2 })
	p.Close()
}

func TestCloseFailsQueuedAndLeaksNothing(t *testing.T) {
	before := runtime.NumGoroutine()
	det := &fakeDetector{spec: spec(1), gate: make(chan struct{}), calls: make(chan int, 4)}
	p, err := New(Config{Detectors: []analytics.Detector{det}})
	if err != nil {
		t.Fatal(err)
	}
	q := p.Queue("a")
	var o outcomes
	q.Submit(job(1, o.done))
	<-det.calls
	q.Submit(job(2, o.done))
	closed := make(chan struct{})
	go func() { q.Close(); close(closed) }()
	testenv.WaitFor(t, 10*time.Second, "queued frame failed", func() bool { o.mu.Lock(); defer o.mu.Unlock(); return o.errs[2] != nil })
	select {
	case <-closed:
		t.Fatal("Queue.Close returned while its frame was still running")
	case <-time.After(20 * time.Millisecond):
	}
	close(det.gate)
	<-closed
	if !errors.Is(o.errs[2], ErrClosed) || len(o.ok) != 1 {
		t.Fatalf("ok %v errs %v", o.ok, o.errs)
	}
	q.Submit(job(3, o.done))
	if !errors.Is(o.errs[3], ErrClosed) {
		t.Fatalf("submit after close: %v", o.errs[3])
	}
	p.Close()
	p.Close()
	testenv.WaitFor(t, 10*time.Second, "goroutines back", func() bool { return runtime.NumGoroutine() <= before })
}

func TestDetectorErrorReachesDone(t *testing.T) {
	p, err := New(Config{Detectors: []analytics.Detector{errDetector{}}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	q := p.Queue("a")
	var o outcomes
	q.Submit(job(1, o.done))
	testenv.WaitFor(t, 10*time.Second, "error", func() bool { o.mu.Lock(); defer o.mu.Unlock(); return o.errs[1] != nil })
	if st := q.Stats(); st.Errors != 1 {
		t.Fatalf("stats %+v", st)
	}
}

type errDetector struct{}

func (errDetector) InputSpec() analytics.InputSpec { return spec(1) }
func (errDetector) Close() error                   { return nil }
func (errDetector) Detect(context.Context, []analytics.Input) ([]analytics.Result, error) {
	return nil, errors.New("boom")
}

func TestConfigErrors(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("no detectors accepted")
	}
	a, b := &fakeDetector{spec: spec(1)}, &fakeDetector{spec: analytics.InputSpec{Width: 8, Height: 8, Channels: 3}}
	if _, err := New(Config{Detectors: []analytics.Detector{a, b}}); err == nil {
		t.Fatal("different input specs accepted")
	}
}
