package media

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestFanoutDropsOldestPerReader(t *testing.T) {
	f := NewFanout[int]("meta")
	slow := f.NewReader(2)
	fast := f.NewReader(10)
	for i := 1; i <= 5; i++ {
		f.Write(i) // never blocks although slow is full after 2
	}
	ctx := context.Background()
	for _, want := range []int{4, 5} {
		if v, err := slow.Read(ctx); err != nil || v != want {
			t.Fatalf("slow read %v %v, want %d", v, err, want)
		}
	}
	if slow.Dropped() != 3 || fast.Dropped() != 0 {
		t.Fatalf("dropped slow %d fast %d", slow.Dropped(), fast.Dropped())
	}
	if slow.Len() != 0 || fast.Len() != 5 {
		t.Fatalf("queued slow %d fast %d", slow.Len(), fast.Len())
	}
	for want := 1; want <= 5; want++ {
		if v, _ := fast.Read(ctx); v != want {
			t.Fatalf("fast read %d, want %d", v, want)
		}
	}
	if v, ok := f.Latest(); !ok || v != 5 || f.Written() != 5 || f.Readers() != 2 {
		t.Fatalf("latest %v %v written %d readers %d", v, ok, f.Written(), f.Readers())
	}
}

func TestFanoutCloseDrainsThenEnds(t *testing.T) {
	f := NewFanout[string]("events")
	r := f.NewReader(4)
	f.Write("a")
	f.Close()
	f.Write("b") // no-op
	ctx := context.Background()
	if v, err := r.Read(ctx); err != nil || v != "a" {
		t.Fatalf("read %q %v", v, err)
	}
	if _, err := r.Read(ctx); !errors.Is(err, ErrStreamClosed) {
		t.Fatalf("read after close: %v", err)
	}
	if _, err := f.NewReader(1).Read(ctx); !errors.Is(err, ErrStreamClosed) {
		t.Fatalf("reader of a closed fan-out: %v", err)
	}
}

func TestFanoutReaderCloseWakesRead(t *testing.T) {
	f := NewFanout[int]("x")
	r := f.NewReader(1)
	done := make(chan error, 1)
	go func() {
		_, err := r.Read(context.Background())
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	r.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrStreamClosed) {
			t.Fatalf("read: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not return after Close")
	}
	if f.Readers() != 0 {
		t.Fatalf("readers %d", f.Readers())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.NewReader(1).Read(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("read with cancelled ctx: %v", err)
	}
}
