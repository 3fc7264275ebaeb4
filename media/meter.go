package media

import (
	"sync"
	"time"
)

// MeterWindow is the span over which a Meter averages frame and bit rates.
const MeterWindow = 2 * time.Second

// Meter measures the frame rate and bitrate of a source over a sliding window (MeterWindow), plus
// running totals. It is safe for concurrent use; the zero value is ready.
type Meter struct {
	mu      sync.Mutex
	samples [256]meterSample // ring buffer, oldest at head
	head    int
	count   int
	frames  uint64
	bytes   uint64
}

type meterSample struct {
	at    time.Time
	bytes int
}

// Add records one access unit of size bytes, completed at now.
func (m *Meter) Add(size int, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.frames++
	m.bytes += uint64(size)
	if m.count == len(m.samples) {
		m.head = (m.head + 1) % len(m.samples)
		m.count--
	}
	m.samples[(m.head+m.count)%len(m.samples)] = meterSample{at: now, bytes: size}
	m.count++
}

// Totals returns the number of frames and bytes added so far.
func (m *Meter) Totals() (frames, bytes uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.frames, m.bytes
}

// Rates returns frames per second and bits per second over the window ending at now. With fewer than
// two samples in the window both are 0.
func (m *Meter) Rates(now time.Time) (fps, bps float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cutoff := now.Add(-MeterWindow)
	for m.count > 0 && m.samples[m.head].at.Before(cutoff) {
		m.head = (m.head + 1) % len(m.samples)
		m.count--
	}
	if m.count < 2 {
		return 0, 0
	}
	first := m.samples[m.head].at
	last := m.samples[(m.head+m.count-1)%len(m.samples)].at
	span := last.Sub(first).Seconds()
	if span <= 0 {
		return 0, 0
	}
	total := 0
	// The first sample opens the interval: rates count what arrived after it.
	for i := 1; i < m.count; i++ {
		total += m.samples[(m.head+i)%len(m.samples)].bytes
	}
	return float64(m.count-1) / span, float64(total) * 8 / span
}

// Reset forgets the window (not the totals), e.g. after a reconnect.
func (m *Meter) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.head, m.count = 0, 0
}
