package alerts

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"sightline/analytics/rules"
)

func TestFromRuleWireForm(t *testing.T) {
	at := time.Date(2026, 11, 22, 3, 15, 4, 120e6, time.UTC)
	e := FromRule(rules.Event{Camera: "street", Rule: "walkway", Kind: rules.KindEnter, ObjectID: 7, Class: 0,
		Label: "person", PTS: 40120500 * time.Microsecond, At: at, Count: 2}, 3610800)
	e.ID, e.Snapshot = "x-1", "/api/v1/events/x-1/snapshot.jpg"
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"event","id":"x-1","camera":"street","rule":"walkway","kind":"enter","objectId":7,"cls":0,` +
		`"label":"person","pts":40120.5,"rtp":3610800,"capturedAt":"2026-11-22T03:15:04.12Z","count":2,` +
		`"snapshot":"/api/v1/events/x-1/snapshot.jpg"}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
}

func TestFilter(t *testing.T) {
	e := Event{Camera: "street", Rule: "walkway", Class: 0, Label: "person"}
	for _, c := range []struct {
		f    Filter
		want bool
	}{
		{Filter{}, true},
		{Filter{Cameras: []string{"yard", "street"}}, true},
		{Filter{Cameras: []string{"yard"}}, false},
		{Filter{Rules: []string{"walkway"}, Classes: []string{"person"}}, true},
		{Filter{Classes: []string{"0"}}, true},
		{Filter{Classes: []string{"car", "2"}}, false},
		{Filter{Rules: []string{"door"}}, false},
	} {
		if got := c.f.Match(e); got != c.want {
			t.Errorf("%+v: got %v", c.f, got)
		}
	}
}

func TestHubKeepsRecentAndNumbers(t *testing.T) {
	h := NewHub(3)
	defer h.Close()
	seen := map[string]bool{}
	for i := range 5 {
		id := h.NextID()
		if seen[id] || !strings.Contains(id, "-") {
			t.Fatalf("id %q repeated or malformed", id)
		}
		seen[id] = true
		cam := "a"
		if i%2 == 1 {
			cam = "b"
		}
		h.Publish(Event{Type: "event", ID: id, Camera: cam, Count: i})
	}
	all := h.List(Filter{}, 10)
	if len(all) != 3 || all[0].Count != 4 || all[2].Count != 2 {
		t.Fatalf("kept %+v: want the 3 newest, newest first", all)
	}
	if a := h.List(Filter{Cameras: []string{"a"}}, 10); len(a) != 2 || a[0].Count != 4 {
		t.Fatalf("camera a: %+v", a)
	}
	if one := h.List(Filter{}, 1); len(one) != 1 || one[0].Count != 4 {
		t.Fatalf("limit 1: %+v", one)
	}
	if e, ok := h.Get(all[1].ID); !ok || e.Count != 3 {
		t.Fatalf("Get: %+v %v", e, ok)
	}
	if _, ok := h.Get("nope"); ok {
		t.Fatal("Get of an unknown id succeeded")
	}
}

// silentListener accepts connections on 127.0.0.1 and never answers (a wedged broker); it is closed, and
// its connections with it, when the test ends.
func silentListener(t *testing.T) net.Listener {
	t.Helper()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held sync.WaitGroup
	held.Add(1)
	go func() {
		defer held.Done()
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { silent.Close(); held.Wait() })
	return silent
}

// runSink runs a sink's delivery loop (what its Subscribe returns) and returns a stop function that
// cancels it and waits for it to end.
func runSink(t *testing.T, name string, deliver func(context.Context)) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); deliver(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				t.Fatalf("%s sink did not stop", name)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// publishMixed publishes n events to hub, cycling through four kinds: street/person and yard/person pass
// a {cameras: street, yard; classes: person} filter, garden/person (camera) and yard/car (class) do
// not. It returns the ones that pass, in order.
func publishMixed(hub *Hub, n int) (want []Event) {
	for i := range n {
		var e Event
		switch i % 4 {
		case 0:
			e = event(hub, "street", "person", i)
			want = append(want, e)
		case 1:
			e = event(hub, "garden", "person", i) // camera filtered out
		case 2:
			e = event(hub, "yard", "car", i) // class filtered out
		case 3:
			e = event(hub, "yard", "person", i)
			want = append(want, e)
		}
		hub.Publish(e)
	}
	return want
}
