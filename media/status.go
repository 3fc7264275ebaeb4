package media

import (
	"sync"
	"time"
)

// StatusTracker is the health record every source keeps: its SourceStatus plus a Meter of the access
// units it wrote. Sources update it from their goroutine; Status may be called from any.
type StatusTracker struct {
	meter Meter
	mu    sync.Mutex
	st    SourceStatus
}

// NewStatusTracker starts a record in StateStarting with the given fixed fields (e.g. Transport).
func NewStatusTracker(initial SourceStatus) *StatusTracker {
	initial.State, initial.Since = StateStarting, time.Now()
	return &StatusTracker{st: initial}
}

// Status returns a snapshot; frame and byte totals always, rates while streaming.
func (t *StatusTracker) Status() SourceStatus {
	t.mu.Lock()
	st := t.st
	t.mu.Unlock()
	st.Frames, st.Bytes = t.meter.Totals()
	if st.State == StateStreaming {
		st.FPS, st.BitrateBps = t.meter.Rates(time.Now())
	}
	return st
}

// SetState moves to state; Since changes only when the state does.
func (t *StatusTracker) SetState(state SourceState) {
	t.Update(func(st *SourceStatus) {
		if st.State != state {
			st.State, st.Since = state, time.Now()
		}
	})
}

// Update changes the record under its lock.
func (t *StatusTracker) Update(fn func(st *SourceStatus)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fn(&t.st)
}

// Wrote counts one access unit of size bytes written at now.
func (t *StatusTracker) Wrote(size int, now time.Time) { t.meter.Add(size, now) }

// ResetRates forgets the rate window (after a reconnect), keeping the totals.
func (t *StatusTracker) ResetRates() { t.meter.Reset() }
