package media

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"
)

func au(n int, key bool) *AccessUnit {
	t := byte(1)
	if key {
		t = 5
	}
	return &AccessUnit{Codec: CodecH264, NALUs: [][]byte{{t, byte(n)}}, RTPTime: uint32(n), Keyframe: key}
}

func readN(t *testing.T, r *Reader, n int) []*AccessUnit {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var out []*AccessUnit
	for i := 0; i < n; i++ {
		a, err := r.Read(ctx)
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		out = append(out, a)
	}
	return out
}

func TestReaderStartsAtKeyframe(t *testing.T) {
	s := NewStream("t")
	r := s.NewReader(8)
	defer r.Close()
	s.Write(au(0, false))
	s.Write(au(1, false))
	s.Write(au(2, true))
	s.Write(au(3, false))
	got := readN(t, r, 2)
	if got[0].RTPTime != 2 || got[1].RTPTime != 3 {
		t.Fatalf("got %d,%d want 2,3", got[0].RTPTime, got[1].RTPTime)
	}
	if r.Dropped() != 0 {
		t.Fatalf("initial wait counted as drops: %d", r.Dropped())
	}
}

func TestOverflowDropsToNextKeyframe(t *testing.T) {
	s := NewStream("t")
	var requests int
	s.SetKeyframeRequester(func() { requests++ })
	r := s.NewReader(4)
	defer r.Close()
	// queue: K0 P1 P2 K3 ; then P4 overflows: drop K0, then P1, P2 (depend on K0) → K3 P4.
	s.Write(au(0, true))
	s.Write(au(1, false))
	s.Write(au(2, false))
	s.Write(au(3, true))
	s.Write(au(4, false))
	got := readN(t, r, 2)
	if got[0].RTPTime != 3 || got[1].RTPTime != 4 {
		t.Fatalf("got %d,%d want 3,4", got[0].RTPTime, got[1].RTPTime)
	}
	if d := r.Dropped(); d != 3 {
		t.Fatalf("dropped = %d, want 3", d)
	}
	if requests != 0 {
		t.Fatalf("keyframe requested although one was queued")
	}
}

func TestOverflowWithoutQueuedKeyframeWaitsAndRequests(t *testing.T) {
	s := NewStream("t")
	var requests int
	s.SetKeyframeRequester(func() { requests++ })
	r := s.NewReader(3)
	defer r.Close()
	s.Write(au(0, true))
	s.Write(au(1, false))
	s.Write(au(2, false))
	s.Write(au(3, false)) // overflow: K0 P1 P2 dropped, P3 undecodable → dropped, wait for key
	s.Write(au(4, false)) // dropped while waiting
	s.Write(au(5, true))
	got := readN(t, r, 1)
	if got[0].RTPTime != 5 {
		t.Fatalf("got %d, want 5", got[0].RTPTime)
	}
	if d := r.Dropped(); d != 5 {
		t.Fatalf("dropped = %d, want 5", d)
	}
	if requests != 1 {
		t.Fatalf("keyframe requests = %d, want 1", requests)
	}
}

func TestWriterNeverBlocksOnSlowReader(t *testing.T) {
	s := NewStream("t")
	slow := s.NewReader(2) // never read
	defer slow.Close()
	fast := s.NewReader(1024)
	defer fast.Close()
	const n = 10000
	done := make(chan struct{})
	go func() {
		for i := 0; i < n; i++ {
			s.Write(au(i, i%30 == 0))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("writer blocked by a reader that never reads")
	}
	got := 0
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for got < 1024 {
		if _, err := fast.Read(ctx); err != nil {
			break
		}
		got++
	}
	if got == 0 || slow.Dropped() == 0 {
		t.Fatalf("fast got %d, slow dropped %d", got, slow.Dropped())
	}
}

func TestParamsPrependedToKeyframes(t *testing.T) {
	s := NewStream("t")
	sps, pps := []byte{0x67, 1, 2}, []byte{0x68, 3}
	s.SetParams(Params{Codec: CodecH264, SPS: sps, PPS: pps})
	r := s.NewReader(4)
	defer r.Close()
	aud := []byte{0x09, 0xf0}
	idr := []byte{0x65, 9}
	s.Write(&AccessUnit{Codec: CodecH264, NALUs: [][]byte{aud, idr}, Keyframe: true})
	got := readN(t, r, 1)[0]
	want := [][]byte{aud, sps, pps, idr}
	if len(got.NALUs) != len(want) {
		t.Fatalf("nalus = %x, want %x", got.NALUs, want)
	}
	for i := range want {
		if string(got.NALUs[i]) != string(want[i]) {
			t.Fatalf("nalu %d = %x, want %x", i, got.NALUs[i], want[i])
		}
	}
	// In-band parameter sets replace the remembered ones and are not duplicated.
	sps2 := []byte{0x67, 7}
	s.Write(&AccessUnit{Codec: CodecH264, NALUs: [][]byte{sps2, pps, idr}, Keyframe: true})
	got = readN(t, r, 1)[0]
	if len(got.NALUs) != 3 || string(s.Params().SPS) != string(sps2) {
		t.Fatalf("in-band params: nalus %x, params %+v", got.NALUs, s.Params())
	}
}

func TestCloseDrainsThenEnds(t *testing.T) {
	s := NewStream("t")
	r := s.NewReader(4)
	s.Write(au(0, true))
	s.Close()
	readN(t, r, 1)
	if _, err := r.Read(context.Background()); !errors.Is(err, ErrStreamClosed) {
		t.Fatalf("err = %v, want ErrStreamClosed", err)
	}
	if r2 := s.NewReader(1); r2 != nil {
		if _, err := r2.Read(context.Background()); !errors.Is(err, ErrStreamClosed) {
			t.Fatalf("reader of closed stream: %v", err)
		}
	}
}

func TestReaderCloseWakesReadAndLeaksNothing(t *testing.T) {
	before := runtime.NumGoroutine()
	s := NewStream("t")
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		r := s.NewReader(2)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = r.Read(context.Background())
		}()
		r.Close()
	}
	wg.Wait()
	if st := s.Stats(); st.Readers != 0 {
		t.Fatalf("readers = %d after all closed", st.Readers)
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("goroutines: %d before, %d after", before, n)
	}
}

func TestConcurrentWritersReadersRace(t *testing.T) {
	s := NewStream("t")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := s.NewReader(4)
			defer r.Close()
			for j := 0; j < 100; j++ {
				if _, err := r.Read(ctx); err != nil {
					return
				}
			}
		}()
	}
	for i := 0; i < 2000; i++ {
		s.Write(au(i, i%10 == 0))
		if i%100 == 0 {
			_ = s.Stats()
		}
	}
	s.Close()
	wg.Wait()
}
