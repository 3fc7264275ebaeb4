package media

import (
	"sync"
	"testing"
)

type readerEvent struct {
	readers int
	joined  bool
}

func TestReaderObserver(t *testing.T) {
	s := NewStream("t")
	var mu sync.Mutex
	var got []readerEvent
	s.SetReaderObserver(func(n int, joined bool) {
		mu.Lock()
		got = append(got, readerEvent{n, joined})
		mu.Unlock()
		_ = s.Stats() // the observer may call back into the stream: no lock is held
	})
	r1 := s.NewReader(4)
	r2 := s.NewReader(4)
	r1.Close()
	r1.Close() // a second Close is not a second leave
	r3 := s.NewReader(4)
	s.Close() // detaches r2 and r3 at once
	r2.Close()
	r3.Close()
	s.NewReader(4).Close() // on a closed stream: no event
	want := []readerEvent{{1, true}, {2, true}, {1, false}, {2, true}, {0, false}}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events %v, want %v", got, want)
		}
	}
	s2 := NewStream("u")
	s2.SetReaderObserver(func(int, bool) { t.Error("removed observer called") })
	s2.SetReaderObserver(nil)
	s2.NewReader(1).Close()
}
