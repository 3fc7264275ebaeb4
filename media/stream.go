package media

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// ErrStreamClosed is returned by Reader.Read once the stream is closed and the reader's queue is empty,
// and by Reader.Read after the reader itself was closed.
var ErrStreamClosed = errors.New("stream closed")

// DefaultQueueLen is the per-reader queue length used when a reader asks for none: about two seconds
// of 30 fps video.
const DefaultQueueLen = 64

// Stream is the in-process bus between one writer (a source) and many readers (viewers, decoders).
// Each reader has its own bounded queue: when it is full the oldest access units are dropped, never
// blocking the writer or other readers. Because a video decoder cannot use a frame whose references were
// dropped, an overflow drops everything up to the next keyframe in the queue and, where none is queued,
// every frame until the next keyframe arrives; all of these count as drops, and the stream's keyframe
// requester (if any) is asked for a new keyframe. A new reader starts at the next keyframe.
//
// Stream also remembers the codec parameters (SPS/PPS/VPS) seen out of band or in band, and guarantees
// that every keyframe it hands out carries them in band, so that every reader can start decoding there.
type Stream struct {
	name string

	mu        sync.Mutex
	params    Params
	readers   map[*Reader]struct{}
	closed    bool
	requester func()
	observer  func(readers int, joined bool) // see observe.go

	gop gopCache // see gop.go; off unless KeepGOP was called

	frames       atomic.Uint64
	bytes        atomic.Uint64
	lastKeyframe atomic.Int64 // unix nanoseconds
}

// NewStream returns an open stream. name is used in logs and status only.
func NewStream(name string) *Stream {
	return &Stream{name: name, readers: make(map[*Reader]struct{})}
}

// Name returns the name given to NewStream.
func (s *Stream) Name() string { return s.name }

// SetParams records out-of-band codec parameters (from SDP, a file header or an encoder). Empty fields
// keep what is already known.
func (s *Stream) SetParams(p Params) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mergeParams(p)
}

func (s *Stream) mergeParams(p Params) {
	if p.Codec != "" {
		s.params.Codec = p.Codec
	}
	if len(p.VPS) > 0 {
		s.params.VPS = p.VPS
	}
	if len(p.SPS) > 0 {
		s.params.SPS = p.SPS
	}
	if len(p.PPS) > 0 {
		s.params.PPS = p.PPS
	}
}

// Params returns the codec parameters known so far.
func (s *Stream) Params() Params {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.params
}

// SetKeyframeRequester installs the producer's hook that asks for a new keyframe (an encoder forcing an
// IDR, an RTSP source that cannot and ignores it). fn is called without locks held and must not block.
func (s *Stream) SetKeyframeRequester(fn func()) {
	s.mu.Lock()
	s.requester = fn
	s.mu.Unlock()
}

// RequestKeyframe asks the producer for a keyframe, if it can answer; it never blocks.
func (s *Stream) RequestKeyframe() {
	s.mu.Lock()
	fn := s.requester
	s.mu.Unlock()
	if fn != nil {
		fn()
	}
}

// Write hands an access unit to every reader. It never blocks on a reader. The access unit must not be
// modified afterwards. Writing to a closed stream is a no-op.
func (s *Stream) Write(au *AccessUnit) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if au.Keyframe {
		au = s.withParamsLocked(au)
		s.lastKeyframe.Store(time.Now().UnixNano())
	}
	s.gop.add(au)
	s.frames.Add(1)
	s.bytes.Add(uint64(au.Size()))
	needKeyframe := false
	for r := range s.readers {
		if r.push(au) {
			needKeyframe = true
		}
	}
	fn := s.requester
	s.mu.Unlock()
	if needKeyframe && fn != nil {
		fn()
	}
}

// withParamsLocked learns in-band parameter sets from a keyframe and returns the keyframe with the known
// parameter sets prepended where it lacks them (a shallow copy; payloads are shared, never copied).
func (s *Stream) withParamsLocked(au *AccessUnit) *AccessUnit {
	if s.params.Codec == "" {
		s.params.Codec = au.Codec
	}
	var has [3]bool // VPS, SPS, PPS
	for _, nalu := range au.NALUs {
		switch paramSetKind(au.Codec, nalu) {
		case paramVPS:
			s.params.VPS, has[0] = nalu, true
		case paramSPS:
			s.params.SPS, has[1] = nalu, true
		case paramPPS:
			s.params.PPS, has[2] = nalu, true
		}
	}
	var prefix [][]byte
	if au.Codec == CodecH265 && !has[0] && len(s.params.VPS) > 0 {
		prefix = append(prefix, s.params.VPS)
	}
	if !has[1] && len(s.params.SPS) > 0 {
		prefix = append(prefix, s.params.SPS)
	}
	if !has[2] && len(s.params.PPS) > 0 {
		prefix = append(prefix, s.params.PPS)
	}
	if len(prefix) == 0 {
		return au
	}
	cp := *au
	cp.NALUs = make([][]byte, 0, len(prefix)+len(au.NALUs))
	// Keep an access unit delimiter first, as H.264 7.4.1.2.3 and H.265 7.4.2.4.4 require.
	rest := au.NALUs
	if len(rest) > 0 && isAUD(au.Codec, rest[0]) {
		cp.NALUs = append(cp.NALUs, rest[0])
		rest = rest[1:]
	}
	cp.NALUs = append(cp.NALUs, prefix...)
	cp.NALUs = append(cp.NALUs, rest...)
	return &cp
}

// Close ends the stream: readers drain what is queued and then get ErrStreamClosed.
func (s *Stream) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.gop.reset()
	had := len(s.readers) > 0
	for r := range s.readers {
		r.closeFromStream()
	}
	s.readers = map[*Reader]struct{}{}
	var notify func()
	if had {
		notify = s.notifyReadersLocked(false)
	}
	s.mu.Unlock()
	if notify != nil {
		notify()
	}
}

// Closed reports whether Close was called.
func (s *Stream) Closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// StreamStats is a snapshot of a stream's counters.
type StreamStats struct {
	Frames       uint64
	Bytes        uint64
	Readers      int
	LastKeyframe time.Time // zero before the first keyframe
}

// Stats returns the stream's counters.
func (s *Stream) Stats() StreamStats {
	s.mu.Lock()
	n := len(s.readers)
	s.mu.Unlock()
	st := StreamStats{Frames: s.frames.Load(), Bytes: s.bytes.Load(), Readers: n}
	if ns := s.lastKeyframe.Load(); ns != 0 {
		st.LastKeyframe = time.Unix(0, ns)
	}
	return st
}

// NewReader adds a reader with a queue of queueLen access units (DefaultQueueLen when ≤ 0). The reader
// receives access units from the next keyframe on. On a closed stream the reader is returned closed.
func (s *Stream) NewReader(queueLen int) *Reader {
	return s.newReader(queueLen, false)
}

func (s *Stream) newReader(queueLen int, fromGOP bool) *Reader {
	if queueLen <= 0 {
		queueLen = DefaultQueueLen
	}
	r := &Reader{
		stream:  s,
		notify:  make(chan struct{}, 1),
		waitKey: true,
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		r.closed = true
		r.queue = make([]*AccessUnit, queueLen)
		return r
	}
	var backlog []*AccessUnit
	if fromGOP {
		backlog = s.gop.aus
	}
	// The backlog must not push out the live frames that follow it.
	r.queue = make([]*AccessUnit, queueLen+len(backlog))
	if len(backlog) > 0 {
		copy(r.queue, backlog)
		r.count, r.waitKey = len(backlog), false
		r.notify <- struct{}{}
	}
	s.readers[r] = struct{}{}
	notify := s.notifyReadersLocked(true)
	s.mu.Unlock()
	if notify != nil {
		notify()
	}
	return r
}

// Reader is one consumer's view of a Stream, with its own bounded queue. Read is meant for one
// goroutine; Dropped and Close may be called from any.
type Reader struct {
	stream *Stream
	notify chan struct{}

	mu          sync.Mutex
	queue       []*AccessUnit // ring buffer
	head, count int
	waitKey     bool // skip until a keyframe
	dropping    bool // the skipped frames are losses (after an overflow), not the initial wait
	closed      bool
	dropped     uint64
}

// push queues au and reports whether the reader lost its decoding chain and needs a keyframe.
// Called with the stream lock held.
func (r *Reader) push(au *AccessUnit) (needKeyframe bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	if r.waitKey {
		if !au.Keyframe {
			if r.dropping {
				r.dropped++
			}
			return false
		}
		r.waitKey, r.dropping = false, false
	}
	if r.count == len(r.queue) {
		// Drop the oldest, then everything that depended on it, up to the next queued keyframe.
		r.popLocked()
		r.dropped++
		for r.count > 0 && !r.queue[r.head].Keyframe {
			r.popLocked()
			r.dropped++
		}
		if r.count == 0 && !au.Keyframe {
			r.dropped++
			r.waitKey, r.dropping = true, true
			return true
		}
	}
	r.queue[(r.head+r.count)%len(r.queue)] = au
	r.count++
	select {
	case r.notify <- struct{}{}:
	default:
	}
	return false
}

func (r *Reader) popLocked() *AccessUnit {
	au := r.queue[r.head]
	r.queue[r.head] = nil
	r.head = (r.head + 1) % len(r.queue)
	r.count--
	return au
}

// Read returns the next access unit, waiting for one. It returns ErrStreamClosed when the stream or the
// reader is closed and nothing is left to read, and ctx.Err() when ctx ends first.
func (r *Reader) Read(ctx context.Context) (*AccessUnit, error) {
	for {
		r.mu.Lock()
		if r.count > 0 {
			au := r.popLocked()
			r.mu.Unlock()
			return au, nil
		}
		closed := r.closed
		r.mu.Unlock()
		if closed {
			return nil, ErrStreamClosed
		}
		select {
		case <-r.notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Len returns how many access units wait in the reader's queue (a reader that is behind, e.g. working
// through a GOP backlog, can skip work on frames that are already stale).
func (r *Reader) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count
}

// Dropped returns how many access units this reader lost to overflow.
func (r *Reader) Dropped() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dropped
}

// Close detaches the reader from its stream and wakes a pending Read. It is safe to call more than once.
func (r *Reader) Close() {
	r.stream.mu.Lock()
	var notify func()
	if _, ok := r.stream.readers[r]; ok {
		delete(r.stream.readers, r)
		notify = r.stream.notifyReadersLocked(false)
	}
	r.stream.mu.Unlock()
	if notify != nil {
		notify()
	}
	r.mu.Lock()
	r.closed = true
	r.count = 0
	r.head = 0
	clear(r.queue)
	r.mu.Unlock()
	r.wake()
}

// closeFromStream marks the reader closed but lets it drain its queue. Called with the stream lock held.
func (r *Reader) closeFromStream() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.wake()
}

func (r *Reader) wake() {
	select {
	case r.notify <- struct{}{}:
	default:
	}
}
