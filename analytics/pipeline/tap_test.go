package pipeline

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"sightline/analytics/sampler"
	"sightline/codec"
	"sightline/internal/testenv"
	"sightline/media"
)

// SubscribeFrames hands a subscriber every decoded frame while Run decodes every frame; it is refused
// before Run, after Run and for keyframes-only pipelines, and ended closes when Run returns.
func TestSubscribeFrames(t *testing.T) {
	aus := readClip(t, "camera/cam_street_1280x720_25fps.h264")[:30]
	for _, keyOnly := range []bool{false, true} {
		src := media.NewStream("street/raw")
		p, err := New(Config{Camera: "street", Source: src, Sampler: sampler.Config{FPS: 5, KeyframesOnly: keyOnly}})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, ok := p.SubscribeFrames(func(*codec.Frame) {}); ok {
			t.Fatal("subscribed before Run")
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		var ok bool
		var n, bad atomic.Int64
		var stop func()
		var ended <-chan struct{}
		deadline := time.Now().Add(5 * time.Second)
		for !ok && time.Now().Before(deadline) && !keyOnly {
			stop, ended, ok = p.SubscribeFrames(func(f *codec.Frame) {
				n.Add(1)
				if f.Width != 1280 || f.Height != 720 {
					bad.Add(1)
				}
			})
			time.Sleep(time.Millisecond)
		}
		if keyOnly {
			time.Sleep(50 * time.Millisecond)
			if _, _, ok := p.SubscribeFrames(func(*codec.Frame) {}); ok {
				t.Fatal("a keyframes-only pipeline offered its frames")
			}
		} else if !ok {
			t.Fatal("no subscription while running")
		}
		for _, au := range aus {
			src.Write(au)
		}
		if !keyOnly {
			testenv.WaitFor(t, 10*time.Second, "30 tapped frames", func() bool { return n.Load() == int64(len(aus)) })
			stop()
			stop()
			src.Write(aus[0])
			time.Sleep(50 * time.Millisecond)
			if n.Load() != int64(len(aus)) || bad.Load() != 0 {
				t.Fatalf("%d frames after cancel (want %d), %d of the wrong size", n.Load(), len(aus), bad.Load())
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if !keyOnly {
			select {
			case <-ended:
			case <-time.After(time.Second):
				t.Fatal("ended still open after Run returned")
			}
		}
		if _, _, ok := p.SubscribeFrames(func(*codec.Frame) {}); ok {
			t.Fatal("subscribed after Run")
		}
		src.Close()
	}
}
