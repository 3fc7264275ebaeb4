package alerts

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"sightline/internal/testenv"
)

// receiver is a real HTTP endpoint on loopback that records what it got and answers with the statuses
// queued in answers (200 once they run out).
type receiver struct {
	mu      sync.Mutex
	answers []int
	got     []Event
	headers []http.Header
	bodies  [][]byte
	block   chan struct{} // when non-nil, every request waits for it to close
	arrived int           // requests that reached the handler
	srv     *httptest.Server
}

func newReceiver(t *testing.T, answers ...int) *receiver {
	r := &receiver{answers: answers}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.arrived++
		r.mu.Unlock()
		if r.block != nil {
			<-r.block
		}
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		status := http.StatusOK
		if len(r.answers) > 0 {
			status, r.answers = r.answers[0], r.answers[1:]
		}
		if status < 300 {
			var e Event
			if err := json.Unmarshal(body, &e); err != nil {
				t.Errorf("body %q: %v", body, err)
			}
			r.got = append(r.got, e)
			r.headers = append(r.headers, req.Header.Clone())
			r.bodies = append(r.bodies, body)
		}
		r.mu.Unlock()
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "120")
		}
		if status == http.StatusFound {
			w.Header().Set("Location", "/elsewhere")
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.got...)
}

// run starts w on hub and returns a stop function that waits for it.
func run(t *testing.T, w *Webhook, hub *Hub) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	deliver := w.Subscribe(hub)
	done := make(chan struct{})
	go func() { defer close(done); deliver(ctx) }()
	return func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("webhook did not stop")
		}
	}
}

func publish(h *Hub, cam string, n int) {
	for i := range n {
		h.Publish(Event{Type: "event", ID: h.NextID(), Camera: cam, Rule: "walkway", Label: "person", Count: i})
	}
}

func TestWebhookDeliversInOrderSigned(t *testing.T) {
	r := newReceiver(t)
	hub := NewHub(10)
	w, err := NewWebhook(WebhookConfig{URL: r.srv.URL + "/hook?token=q", Secret: "s3cret",
		Headers: map[string]string{"Authorization": "Bearer abc"}, Filter: Filter{Cameras: []string{"street"}}})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, w, hub)
	defer stop()
	publish(hub, "yard", 2) // filtered out
	publish(hub, "street", 5)
	testenv.WaitFor(t, 10*time.Second, "5 deliveries", func() bool { return w.Stats().Delivered == 5 })
	got := r.events()
	for i, e := range got {
		if e.Camera != "street" || e.Count != i {
			t.Fatalf("delivery %d: %+v (want street events in order)", i, e)
		}
	}
	r.mu.Lock()
	h, body := r.headers[0], r.bodies[0]
	r.mu.Unlock()
	if h.Get("Authorization") != "Bearer abc" || h.Get("Content-Type") != "application/json" || h.Get("X-Sightline-Event") != got[0].ID {
		t.Fatalf("headers %v", h)
	}
	if sig := h.Get("X-Sightline-Signature"); sig != "sha256="+Sign("s3cret", body) {
		t.Fatalf("signature %q does not match the body", sig)
	}
	st := w.Stats()
	if st.Failed != 0 || st.Dropped != 0 || st.Retries != 0 || strings.Contains(st.URL, "token") {
		t.Fatalf("stats %+v", st)
	}
}

func TestWebhookRetriesThenDelivers(t *testing.T) {
	r := newReceiver(t, 500, 503, 200)
	hub := NewHub(10)
	w, err := NewWebhook(WebhookConfig{URL: r.srv.URL, Retries: 3, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, w, hub)
	defer stop()
	publish(hub, "street", 1)
	testenv.WaitFor(t, 10*time.Second, "delivery", func() bool { return w.Stats().Delivered == 1 })
	if st := w.Stats(); st.Retries != 2 || st.Failed != 0 || st.LastStatus != 200 || st.LastError != "" {
		t.Fatalf("stats %+v", st)
	}
}

func TestWebhookGivesUp(t *testing.T) {
	for _, c := range []struct {
		name    string
		answers []int
		retries uint64
	}{
		{"4xx is final", []int{400}, 0},
		{"a redirect is not followed", []int{302}, 0},
		{"retries run out", []int{500, 500, 500}, 2},
		// Retry-After: 120 is capped at MaxBackoff (the test would time out otherwise).
		{"429 waits at most maxBackoff", []int{429, 429, 429}, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newReceiver(t, c.answers...)
			hub := NewHub(10)
			w, err := NewWebhook(WebhookConfig{URL: r.srv.URL, Retries: 2, Backoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			stop := run(t, w, hub)
			defer stop()
			publish(hub, "street", 1)
			testenv.WaitFor(t, 10*time.Second, "give-up", func() bool { return w.Stats().Failed == 1 })
			st := w.Stats()
			if st.Retries != c.retries || st.Delivered != 0 || st.LastStatus != c.answers[len(c.answers)-1] || st.LastError == "" {
				t.Fatalf("stats %+v", st)
			}
			// The next event goes through: a failed one does not wedge the sink.
			publish(hub, "street", 1)
			testenv.WaitFor(t, 10*time.Second, "next delivery", func() bool { return w.Stats().Delivered == 1 })
		})
	}
}

// A stuck endpoint never blocks the publisher: the sink's queue drops its oldest events and counts them,
// and stopping the sink does not wait for the endpoint.
func TestWebhookStuckEndpointDropsAndNeverBlocks(t *testing.T) {
	before := runtime.NumGoroutine()
	r := newReceiver(t)
	r.block = make(chan struct{})
	hub := NewHub(10)
	w, err := NewWebhook(WebhookConfig{URL: r.srv.URL, QueueLen: 4, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, w, hub)
	publish(hub, "street", 1)
	testenv.WaitFor(t, 10*time.Second, "the first request to be in flight", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.arrived == 1
	})
	publish(hub, "street", 1000) // returns at once although the endpoint answers nothing
	if st := w.Stats(); st.Dropped < 1000-4 || st.Delivered != 0 {
		t.Fatalf("stats %+v: want ≥ 996 dropped, none delivered", st)
	}
	stop() // cancels the in-flight request
	close(r.block)
	hub.Close()
	r.srv.Close()
	testenv.WaitFor(t, 10*time.Second, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before+1 })
}

func TestNewWebhookRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"ftp://host/x", "http://", "/relative", "http://u:pw@[::1", "mailto:x@y"} {
		_, err := NewWebhook(WebhookConfig{URL: u})
		if err == nil {
			t.Errorf("%q: accepted", u)
			continue
		}
		if strings.Contains(err.Error(), "pw") {
			t.Errorf("%q: error leaks the password: %v", u, err)
		}
	}
	if _, err := NewWebhook(WebhookConfig{URL: "http://x", Retries: -1}); err == nil {
		t.Error("negative retries accepted")
	}
}
