package media

import (
	"math"
	"sync"
	"testing"
	"time"
)

func TestMeterRates(t *testing.T) {
	var m Meter
	t0 := time.Unix(1000, 0)
	if fps, bps := m.Rates(t0); fps != 0 || bps != 0 {
		t.Fatalf("empty meter: %v %v", fps, bps)
	}
	// 25 fps, 1000 bytes each, for 3 s: the window keeps the last 2 s.
	for i := 0; i < 75; i++ {
		m.Add(1000, t0.Add(time.Duration(i)*40*time.Millisecond))
	}
	now := t0.Add(74 * 40 * time.Millisecond)
	fps, bps := m.Rates(now)
	if math.Abs(fps-25) > 0.01 || math.Abs(bps-200000) > 1 {
		t.Fatalf("fps %v bps %v, want 25 and 200000", fps, bps)
	}
	if f, b := m.Totals(); f != 75 || b != 75000 {
		t.Fatalf("totals %d %d", f, b)
	}
	// Silence longer than the window: rates fall to zero, totals stay.
	if fps, _ := m.Rates(now.Add(3 * time.Second)); fps != 0 {
		t.Fatalf("fps after silence = %v", fps)
	}
	m.Reset()
	if f, _ := m.Totals(); f != 75 {
		t.Fatalf("reset cleared totals")
	}
}

func TestMeterRingOverflowAndRace(t *testing.T) {
	var m Meter
	var wg sync.WaitGroup
	t0 := time.Now()
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				m.Add(10, t0.Add(time.Duration(i)*time.Millisecond))
				_, _ = m.Rates(t0.Add(time.Duration(i) * time.Millisecond))
			}
		}()
	}
	wg.Wait()
	if f, _ := m.Totals(); f != 2000 {
		t.Fatalf("frames = %d", f)
	}
}
