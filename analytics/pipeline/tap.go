package pipeline

import (
	"sync"

	"sightline/codec"
)

// Frame taps let another consumer of the camera's decoded video (the annotated track) use the frames
// this pipeline decodes anyway instead of decoding the camera a second time.

// frameTaps is the set of subscribers; active while Run decodes every frame.
type frameTaps struct {
	mu     sync.Mutex
	active bool
	ended  chan struct{} // closed when Run stops delivering
	subs   map[int]func(*codec.Frame)
	next   int
}

// SubscribeFrames hands fn every frame the pipeline decodes from now on, on the pipeline's goroutine:
// fn must not block, and the frame is valid during the call only (Ref it to keep it; never write to the
// frame or its reference without MakeWritable). ok is false while the pipeline is not running or decodes
// keyframes only. ended is closed when the pipeline stops delivering (the subscription is then over);
// cancel ends the subscription early and is safe to call more than once.
func (p *Pipeline) SubscribeFrames(fn func(*codec.Frame)) (cancel func(), ended <-chan struct{}, ok bool) {
	t := &p.taps
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.active {
		return func() {}, nil, false
	}
	if t.subs == nil {
		t.subs = map[int]func(*codec.Frame){}
	}
	id := t.next
	t.next++
	t.subs[id] = fn
	return func() {
		t.mu.Lock()
		delete(t.subs, id)
		t.mu.Unlock()
	}, t.ended, true
}

// startTaps opens the taps for a Run that decodes every frame.
func (p *Pipeline) startTaps() {
	if p.cfg.Sampler.KeyframesOnly {
		return
	}
	t := &p.taps
	t.mu.Lock()
	t.active, t.ended = true, make(chan struct{})
	t.mu.Unlock()
}

// stopTaps ends every subscription (Run is returning).
func (p *Pipeline) stopTaps() {
	t := &p.taps
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.active {
		t.active = false
		clear(t.subs)
		close(t.ended)
	}
}

// tap hands f to the subscribers.
func (p *Pipeline) tap(f *codec.Frame) {
	t := &p.taps
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, fn := range t.subs {
		fn(f)
	}
}
