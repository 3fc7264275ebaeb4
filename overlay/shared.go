package overlay

import (
	"context"
	"sync"
	"time"

	"sightline/codec"
)

// FrameSource hands out the decoded frames of the camera's raw stream from a decoder that already runs
// (the camera's analytics pipeline: analytics/pipeline.Pipeline.SubscribeFrames), so that the annotated
// track does not decode the camera a second time.
type FrameSource interface {
	// SubscribeFrames calls fn with every decoded frame (on the decoder's goroutine; fn must not block or
	// call cancel; Ref the frame to keep it) until cancel is called or ended is closed. ok is false when
	// no such decoder runs now.
	SubscribeFrames(fn func(*codec.Frame)) (cancel func(), ended <-chan struct{}, ok bool)
}

// sharedQueue is how many shared frames may wait for the annotator; older ones are released unseen.
const sharedQueue = 4

// frameQueue is a small drop-oldest queue of frame references between the shared decoder and the
// annotator.
type frameQueue struct {
	mu      sync.Mutex
	frames  []*codec.Frame
	notify  chan struct{}
	dropped uint64
}

func newFrameQueue() *frameQueue { return &frameQueue{notify: make(chan struct{}, 1)} }

func (q *frameQueue) push(f *codec.Frame) {
	ref, err := f.Ref()
	if err != nil {
		return
	}
	q.mu.Lock()
	if len(q.frames) == sharedQueue {
		q.frames[0].Release()
		q.frames = append(q.frames[:0], q.frames[1:]...)
		q.dropped++
	}
	q.frames = append(q.frames, ref)
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// pop returns the oldest frame (nil when empty) and whether newer ones wait behind it.
func (q *frameQueue) pop() (*codec.Frame, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.frames) == 0 {
		return nil, false
	}
	f := q.frames[0]
	q.frames = append(q.frames[:0], q.frames[1:]...)
	return f, len(q.frames) > 0
}

func (q *frameQueue) releaseAll() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, f := range q.frames {
		f.Release()
	}
	q.frames = q.frames[:0]
}

// runShared annotates the frames of a.frames' decoder until ctx ends (handled true) or that decoder stops
// (handled false: the caller decodes the raw stream itself). It returns at once, unhandled, when no such
// decoder runs. A frame with newer ones already waiting is skipped, so the annotated track shows the
// latest picture when it falls behind.
func (a *Annotator) runShared(ctx context.Context, cont *continuity) (handled bool, err error) {
	q := newFrameQueue()
	cancel, ended, ok := a.cfg.Frames.SubscribeFrames(q.push)
	if !ok {
		return false, nil
	}
	defer q.releaseAll() // after cancel (deferred below, so run first): nothing is pushed any more
	defer cancel()
	a.update(func(s *Stats) { s.Decoder, s.SharedDecoder = "shared", true })
	defer a.update(func(s *Stats) { s.SharedDecoder = false })
	cont.restart()
	p := &pipeline{cont: cont, trails: newTrails(a.cfg.TrailLen)}
	defer p.close()
	started, first := time.Now(), true
	for {
		select {
		case <-ctx.Done():
			return true, nil
		case <-ended:
			a.log.Debug("shared decoder stopped; decoding the raw stream")
			return false, nil
		case <-q.notify:
		}
		for {
			f, behind := q.pop()
			if f == nil {
				break
			}
			if behind {
				f.Release()
				a.update(func(s *Stats) { s.Skipped++ })
				continue
			}
			err := a.annotate(p, f)
			f.Release()
			if err != nil {
				return true, err
			}
			if first && p.enc != nil {
				first = false
				a.log.Debug("first annotated frame", "after", time.Since(started), "decoder", "shared")
			}
		}
	}
}
