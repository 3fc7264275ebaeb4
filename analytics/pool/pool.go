// Package pool owns the inference worker pool shared by every camera: one worker per detector session,
// per-camera bounded queues that drop their oldest frame rather than grow latency, round-robin fairness
// across cameras, and batching of frames from several cameras up to the model's batch size within a
// short wait. It never blocks a submitter, decodes video or interprets detections.
package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"sightline/analytics"
)

// Errors a Job's Done can receive.
var (
	// ErrDropped: a newer frame of the same camera pushed this one out of its full queue.
	ErrDropped = errors.New("frame dropped: a newer frame of the camera replaced it in the inference queue")
	// ErrClosed: the queue or the pool closed before the frame ran.
	ErrClosed = errors.New("inference queue closed")
)

// DefaultQueueLen is how many frames of one camera may wait for inference (besides the one running).
const DefaultQueueLen = 2

// DefaultBatchWait is how long a worker waits for more cameras' frames when the model takes batches.
const DefaultBatchWait = 5 * time.Millisecond

// Config configures a Pool.
type Config struct {
	// Detectors run the inferences, one worker goroutine each (a detector session serializes its calls).
	// All must have the same InputSpec except MaxBatch. The pool does not close them.
	Detectors []analytics.Detector
	// MaxBatch caps frames per inference; default (and upper bound) the smallest InputSpec().MaxBatch.
	MaxBatch int
	// BatchWait is the longest a worker holding fewer than MaxBatch frames waits for more; default
	// DefaultBatchWait when MaxBatch > 1 (never waits at batch 1).
	BatchWait time.Duration
	// QueueLen is each camera's queue length (frames waiting, not counting the one running); default
	// DefaultQueueLen.
	QueueLen int
}

// Job is one frame to analyse.
type Job struct {
	// Input is the letterboxed tensor; it must stay untouched until Done is called.
	Input analytics.Input
	// Done is called exactly once: with the detector's result, or with ErrDropped / ErrClosed / the
	// detector's error. It runs on a pool worker (or in Submit / Close for drops) without pool locks held,
	// and must be quick: the camera's next frame waits for it. Calls for one queue never overlap and
	// come in submission order.
	Done func(analytics.Result, error)
}

// QueueStats counts one camera's frames.
type QueueStats struct {
	Submitted uint64
	Dropped   uint64 // pushed out by newer frames (never ran)
	Analysed  uint64 // ran and returned a result
	Errors    uint64 // ran and failed
	Waiting   int    // queued now
	// LastInference is the detector time of the last analysed frame's batch; LastLatency from Submit to
	// Done for that frame (queueing included).
	LastInference time.Duration
	LastLatency   time.Duration
}

// Stats counts the pool's batches.
type Stats struct {
	Batches uint64 // inference calls
	Frames  uint64 // frames in them
}

// Pool runs detections for many cameras on a few detector sessions.
type Pool struct {
	spec      analytics.InputSpec
	maxBatch  int
	batchWait time.Duration
	queueLen  int
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup

	mu     sync.Mutex
	cond   *sync.Cond
	queues []*Queue // round-robin order
	rr     int
	closed bool
	stats  Stats
}

type pending struct {
	job       Job
	submitted time.Time
}

// New starts one worker per detector.
func New(cfg Config) (*Pool, error) {
	if len(cfg.Detectors) == 0 {
		return nil, errors.New("inference pool: no detector")
	}
	spec := cfg.Detectors[0].InputSpec()
	maxBatch := max(spec.MaxBatch, 1)
	for i, d := range cfg.Detectors[1:] {
		s := d.InputSpec()
		mb := s.MaxBatch
		s.MaxBatch, spec.MaxBatch = 0, 0
		if s != spec {
			return nil, fmt.Errorf("inference pool: detector %d wants input %+v, detector 0 %+v", i+1, s, spec)
		}
		maxBatch = min(maxBatch, max(mb, 1))
	}
	spec.MaxBatch = maxBatch
	if cfg.MaxBatch > 0 {
		maxBatch = min(maxBatch, cfg.MaxBatch)
	}
	if cfg.BatchWait < 0 {
		return nil, fmt.Errorf("inference pool: batch wait %v is negative", cfg.BatchWait)
	}
	wait := cfg.BatchWait
	if wait == 0 && maxBatch > 1 {
		wait = DefaultBatchWait
	}
	if maxBatch == 1 {
		wait = 0
	}
	ql := cfg.QueueLen
	if ql <= 0 {
		ql = DefaultQueueLen
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pool{spec: spec, maxBatch: maxBatch, batchWait: wait, queueLen: ql, ctx: ctx, cancel: cancel}
	p.cond = sync.NewCond(&p.mu)
	for _, d := range cfg.Detectors {
		p.wg.Add(1)
		go p.worker(d)
	}
	return p, nil
}

// InputSpec is the tensor every Job's Input must hold (MaxBatch is the pool's batch size).
func (p *Pool) InputSpec() analytics.InputSpec {
	s := p.spec
	s.MaxBatch = p.maxBatch
	return s
}

// Stats returns the pool's batch counters.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Close stops the workers after their running inference, fails every queued job with ErrClosed and
// waits. Queues stay usable only to be closed.
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	var dropped []Job
	for _, q := range p.queues {
		dropped = append(dropped, q.drainLocked()...)
	}
	p.cond.Broadcast()
	p.mu.Unlock()
	for _, j := range dropped {
		j.Done(analytics.Result{}, ErrClosed)
	}
	p.wg.Wait()
	p.cancel()
}

// Queue adds a camera's queue. name is for errors only.
func (p *Pool) Queue(name string) *Queue {
	q := &Queue{pool: p, name: name, buf: make([]pending, p.queueLen)}
	q.idle = sync.NewCond(&p.mu)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		q.closed = true
		return q
	}
	p.queues = append(p.queues, q)
	return q
}

// Queue is one camera's place in the pool: a bounded queue with at most one frame running at a time
// (so results come back in order for the camera's tracker).
type Queue struct {
	pool *Pool
	name string
	idle *sync.Cond // on pool.mu: signalled when the running frame is done

	// guarded by pool.mu
	buf         []pending
	head, count int
	running     bool
	closed      bool
	stats       QueueStats
}

// Submit queues j without ever blocking. When the queue is full its oldest frame is dropped (its Done
// gets ErrDropped, here, before Submit returns) and Submit reports true. On a closed queue j's Done gets
// ErrClosed.
func (q *Queue) Submit(j Job) (dropped bool) {
	p := q.pool
	p.mu.Lock()
	if q.closed || p.closed {
		p.mu.Unlock()
		j.Done(analytics.Result{}, ErrClosed)
		return false
	}
	q.stats.Submitted++
	var old Job
	if q.count == len(q.buf) {
		old = q.buf[q.head].job
		q.buf[q.head] = pending{}
		q.head = (q.head + 1) % len(q.buf)
		q.count--
		q.stats.Dropped++
		dropped = true
	}
	q.buf[(q.head+q.count)%len(q.buf)] = pending{job: j, submitted: time.Now()}
	q.count++
	if !q.running {
		p.cond.Signal()
	}
	p.mu.Unlock()
	if dropped {
		old.Done(analytics.Result{}, ErrDropped)
	}
	return dropped
}

// Stats returns the camera's counters.
func (q *Queue) Stats() QueueStats {
	q.pool.mu.Lock()
	defer q.pool.mu.Unlock()
	st := q.stats
	st.Waiting = q.count
	return st
}

// Close removes the queue from the pool: queued frames get ErrClosed, and Close waits for the running
// one's Done to return. Safe to call more than once.
func (q *Queue) Close() {
	p := q.pool
	p.mu.Lock()
	dropped := q.drainLocked()
	if !q.closed {
		q.closed = true
		for i, o := range p.queues {
			if o == q {
				p.queues = append(p.queues[:i], p.queues[i+1:]...)
				if p.rr > i {
					p.rr--
				}
				break
			}
		}
	}
	p.mu.Unlock()
	for _, j := range dropped {
		j.Done(analytics.Result{}, ErrClosed)
	}
	p.mu.Lock()
	for q.running {
		q.idle.Wait()
	}
	p.mu.Unlock()
}

func (q *Queue) drainLocked() []Job {
	var out []Job
	for q.count > 0 {
		out = append(out, q.popLocked().job)
	}
	return out
}

func (q *Queue) popLocked() pending {
	v := q.buf[q.head]
	q.buf[q.head] = pending{}
	q.head = (q.head + 1) % len(q.buf)
	q.count--
	return v
}

type taken struct {
	q *Queue
	p pending
}

// pickLocked takes up to n frames, at most one per camera, from cameras with a queued frame and none
// running, in round-robin order.
func (p *Pool) pickLocked(batch []taken, n int) []taken {
	nq := len(p.queues)
	for k := 0; k < nq && n > 0; k++ {
		i := (p.rr + k) % nq
		q := p.queues[i]
		if q.count == 0 || q.running {
			continue
		}
		batch = append(batch, taken{q: q, p: q.popLocked()})
		q.running = true
		n--
		p.rr = (i + 1) % nq
		k = -1 // restart the scan after the camera just taken (rr moved)
		nq = len(p.queues)
		if len(batch) >= p.maxBatch {
			break
		}
	}
	return batch
}

// take waits for work and returns a batch; nil when the pool closes.
func (p *Pool) take(batch []taken) []taken {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if p.closed {
			return nil
		}
		batch = p.pickLocked(batch[:0], p.maxBatch)
		if len(batch) > 0 {
			break
		}
		p.cond.Wait()
	}
	if len(batch) < p.maxBatch && p.batchWait > 0 {
		deadline := time.Now().Add(p.batchWait)
		timer := time.AfterFunc(p.batchWait, func() {
			p.mu.Lock()
			p.cond.Broadcast()
			p.mu.Unlock()
		})
		defer timer.Stop()
		for len(batch) < p.maxBatch && !p.closed && time.Now().Before(deadline) {
			p.cond.Wait()
			batch = p.pickLocked(batch, p.maxBatch-len(batch))
		}
	}
	if len(batch) > 0 && p.maxBatch > 1 {
		p.cond.Signal() // another worker may find more
	}
	return batch
}

func (p *Pool) worker(d analytics.Detector) {
	defer p.wg.Done()
	var batch []taken
	var inputs []analytics.Input
	for {
		batch = p.take(batch)
		if batch == nil {
			return
		}
		inputs = inputs[:0]
		for _, t := range batch {
			inputs = append(inputs, t.p.job.Input)
		}
		res, err := d.Detect(p.ctx, inputs)
		if err == nil && len(res) != len(inputs) {
			err = fmt.Errorf("detector returned %d results for %d inputs", len(res), len(inputs))
		}
		now := time.Now()
		for i, t := range batch {
			if err != nil {
				t.p.job.Done(analytics.Result{}, fmt.Errorf("detect (camera %s): %w", t.q.name, err))
			} else {
				t.p.job.Done(res[i], nil)
			}
		}
		p.mu.Lock()
		p.stats.Batches++
		p.stats.Frames += uint64(len(batch))
		for i, t := range batch {
			q := t.q
			q.running = false
			if err != nil {
				q.stats.Errors++
			} else {
				q.stats.Analysed++
				q.stats.LastInference = res[i].Inference
				q.stats.LastLatency = now.Sub(t.p.submitted)
			}
			q.idle.Broadcast()
		}
		p.cond.Broadcast()
		p.mu.Unlock()
		clear(batch)
	}
}
