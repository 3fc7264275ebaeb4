package media

import (
	"context"
	"sync"
)

// Fanout is a small in-process bus for plain values (a camera's Meta per analysed frame, rule events):
// one or more writers, many readers, each reader with its own bounded queue that drops its oldest value
// when full, so a slow reader never blocks a writer or another reader. Unlike Stream it knows nothing of
// keyframes: every value stands on its own. It also remembers the last value written (Latest), for
// readers that only want the current state. The zero value is not usable: call NewFanout.
type Fanout[T any] struct {
	name string

	mu      sync.Mutex
	readers map[*FanoutReader[T]]struct{}
	closed  bool
	latest  T
	has     bool
	written uint64
}

// NewFanout returns an open fan-out. name is used in logs and status only.
func NewFanout[T any](name string) *Fanout[T] {
	return &Fanout[T]{name: name, readers: map[*FanoutReader[T]]struct{}{}}
}

// Name returns the name given to NewFanout.
func (f *Fanout[T]) Name() string { return f.name }

// Write hands v to every reader without blocking; a full reader loses its oldest value. Writing to a
// closed fan-out is a no-op. v must not be modified afterwards (readers share it).
func (f *Fanout[T]) Write(v T) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	f.latest, f.has = v, true
	f.written++
	for r := range f.readers {
		r.push(v)
	}
}

// Latest returns the last value written and whether there was one.
func (f *Fanout[T]) Latest() (T, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.latest, f.has
}

// Written counts the values written so far.
func (f *Fanout[T]) Written() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.written
}

// Readers counts the attached readers.
func (f *Fanout[T]) Readers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.readers)
}

// Close ends the fan-out: readers drain what is queued and then get ErrStreamClosed.
func (f *Fanout[T]) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	f.closed = true
	for r := range f.readers {
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		r.wake()
	}
	f.readers = map[*FanoutReader[T]]struct{}{}
}

// NewReader adds a reader with a queue of queueLen values (DefaultQueueLen when ≤ 0); it receives the
// values written from now on. On a closed fan-out the reader is returned closed.
func (f *Fanout[T]) NewReader(queueLen int) *FanoutReader[T] {
	if queueLen <= 0 {
		queueLen = DefaultQueueLen
	}
	r := &FanoutReader[T]{fan: f, queue: make([]T, queueLen), notify: make(chan struct{}, 1)}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		r.closed = true
		return r
	}
	f.readers[r] = struct{}{}
	return r
}

// FanoutReader is one consumer of a Fanout. Read is meant for one goroutine; Dropped and Close may be
// called from any.
type FanoutReader[T any] struct {
	fan    *Fanout[T]
	notify chan struct{}

	mu          sync.Mutex
	queue       []T
	head, count int
	closed      bool
	dropped     uint64
}

func (r *FanoutReader[T]) push(v T) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	if r.count == len(r.queue) {
		var zero T
		r.queue[r.head] = zero
		r.head = (r.head + 1) % len(r.queue)
		r.count--
		r.dropped++
	}
	r.queue[(r.head+r.count)%len(r.queue)] = v
	r.count++
	r.mu.Unlock()
	r.wake()
}

// Read returns the next value, waiting for one. It returns ErrStreamClosed when the fan-out or the reader
// is closed and nothing is left, and ctx.Err() when ctx ends first.
func (r *FanoutReader[T]) Read(ctx context.Context) (T, error) {
	var zero T
	for {
		r.mu.Lock()
		if r.count > 0 {
			v := r.queue[r.head]
			r.queue[r.head] = zero
			r.head = (r.head + 1) % len(r.queue)
			r.count--
			r.mu.Unlock()
			return v, nil
		}
		closed := r.closed
		r.mu.Unlock()
		if closed {
			return zero, ErrStreamClosed
		}
		select {
		case <-r.notify:
		case <-ctx.Done():
			return zero, ctx.Err()
		}
	}
}

// Dropped returns how many values this reader lost to overflow.
func (r *FanoutReader[T]) Dropped() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dropped
}

// Len returns how many values wait in this reader's queue.
func (r *FanoutReader[T]) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count
}

// Close detaches the reader and wakes a pending Read. It is safe to call more than once.
func (r *FanoutReader[T]) Close() {
	r.fan.mu.Lock()
	delete(r.fan.readers, r)
	r.fan.mu.Unlock()
	r.mu.Lock()
	r.closed = true
	r.count, r.head = 0, 0
	clear(r.queue)
	r.mu.Unlock()
	r.wake()
}

func (r *FanoutReader[T]) wake() {
	select {
	case r.notify <- struct{}{}:
	default:
	}
}
