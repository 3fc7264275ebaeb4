package alerts

import (
	"strconv"
	"sync"
	"time"

	"sightline/media"
)

// Hub numbers events, keeps the most recent ones and fans every one out to subscribers, each with its own
// bounded drop-oldest queue: a slow subscriber or sink loses its oldest events, never the publisher's time.
type Hub struct {
	prefix string

	mu   sync.Mutex
	ring []Event
	head int
	n    int
	seq  uint64
	fan  *media.Fanout[Event]
}

// NewHub returns a hub that keeps the keep most recent events (at least 1).
func NewHub(keep int) *Hub {
	// The run prefix keeps ids of different runs apart (a bookmarked snapshot of an earlier run answers
	// 404 instead of showing another event).
	return &Hub{prefix: strconv.FormatInt(time.Now().UnixMilli(), 36), ring: make([]Event, max(keep, 1)),
		fan: media.NewFanout[Event]("events")}
}

// NextID returns a new event id.
func (h *Hub) NextID() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	return h.prefix + "-" + strconv.FormatUint(h.seq, 10)
}

// Publish keeps e and hands it to every subscriber without blocking. e must not be modified afterwards.
func (h *Hub) Publish(e Event) {
	h.mu.Lock()
	h.ring[(h.head+h.n)%len(h.ring)] = e
	if h.n < len(h.ring) {
		h.n++
	} else {
		h.head = (h.head + 1) % len(h.ring)
	}
	h.mu.Unlock()
	h.fan.Write(e)
}

// List returns the kept events that match f, newest first, at most limit.
func (h *Hub) List(f Filter, limit int) []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := []Event{}
	for i := h.n - 1; i >= 0 && len(out) < limit; i-- {
		if e := h.ring[(h.head+i)%len(h.ring)]; f.Match(e) {
			out = append(out, e)
		}
	}
	return out
}

// Get returns the kept event with id.
func (h *Hub) Get(id string) (Event, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := h.n - 1; i >= 0; i-- {
		if e := h.ring[(h.head+i)%len(h.ring)]; e.ID == id {
			return e, true
		}
	}
	return Event{}, false
}

// Subscribe returns a reader of the events published from now on, with a queue of queueLen events that
// drops its oldest when full (Dropped counts them). Close it when done.
func (h *Hub) Subscribe(queueLen int) *media.FanoutReader[Event] {
	return h.fan.NewReader(queueLen)
}

// Close ends every subscription (readers drain what is queued, then get media.ErrStreamClosed).
func (h *Hub) Close() { h.fan.Close() }
