package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sightline/internal/mqtttest"
	"sightline/internal/testenv"
)

// runMQTT starts m on hub and returns a stop function that waits for it.
func runMQTT(t *testing.T, m *MQTT, hub *Hub) (stop func()) {
	t.Helper()
	return runSink(t, "mqtt", m.Subscribe(hub))
}

func event(h *Hub, cam, label string, n int) Event {
	return Event{Type: "event", ID: h.NextID(), Camera: cam, Rule: "walkway", Kind: "enter", ObjectID: int64(n),
		Label: label, PTS: float64(n) * 40, RTP: uint32(n) * 3600, CapturedAt: time.Date(2026, 1, 2, 3, 4, 5, n*1e6, time.UTC),
		Count: n, Snapshot: "/api/v1/events/x/snapshot.jpg"}
}

func TestMQTTPublishesEventsInOrder(t *testing.T) {
	b := mqtttest.StartBroker(t, "allow_anonymous true")
	sub := mqtttest.Subscribe(t, b.URL(), "", "", "sightline/+/events", "sightline/available")
	before := runtime.NumGoroutine()
	hub := NewHub(10)
	m, err := NewMQTT(MQTTConfig{Broker: b.URL(), Filter: Filter{Cameras: []string{"street", "yard"}, Classes: []string{"person"}}})
	if err != nil {
		t.Fatal(err)
	}
	stop := runMQTT(t, m, hub)
	testenv.WaitFor(t, 10*time.Second, "connected", func() bool { return m.Stats().Connected })
	testenv.WaitFor(t, 10*time.Second, "online", func() bool { return len(sub.Messages("/available")) == 1 })

	want := publishMixed(hub, 12)
	testenv.WaitFor(t, 10*time.Second, "6 events", func() bool { return len(sub.Messages("/events")) == len(want) })
	got := sub.Messages("/events")
	for i, e := range want {
		body, _ := json.Marshal(e)
		if got[i].Topic != "sightline/"+e.Camera+"/events" || got[i].Payload != string(body) || got[i].Retained {
			t.Fatalf("message %d: %+v\nwant on sightline/%s/events: %s", i, got[i], e.Camera, body)
		}
	}
	if st := m.Stats(); st.Published != uint64(len(want)) || st.Failed != 0 || st.Dropped != 0 || st.LastError != "" ||
		st.LastPublished.IsZero() || st.Name != "127.0.0.1" || st.Broker != b.URL() {
		t.Fatalf("stats %+v", st)
	}

	stop()
	if m.Stats().Connected {
		t.Fatal("still connected after stop")
	}
	testenv.WaitFor(t, 10*time.Second, "offline", func() bool { return len(sub.Messages("/available")) == 2 })
	if a := sub.Messages("/available"); a[0].Payload != "online" || a[1].Payload != "offline" {
		t.Fatalf("availability %+v: want online then offline", a)
	}
	// Both are retained: a subscriber arriving later learns the sink is offline.
	late := mqtttest.Subscribe(t, b.URL(), "", "", "sightline/available")
	testenv.WaitFor(t, 10*time.Second, "retained availability", func() bool { return len(late.Messages("/available")) == 1 })
	if a := late.Messages("/available")[0]; a.Payload != "offline" || !a.Retained {
		t.Fatalf("late subscriber got %+v: want retained offline", a)
	}
	late.Close()
	testenv.GoroutinesSettle(t, before)
}

func TestMQTTQoS0RetainAndPrefix(t *testing.T) {
	b := mqtttest.StartBroker(t, "allow_anonymous true")
	hub := NewHub(10)
	m, err := NewMQTT(MQTTConfig{Broker: "mqtt://127.0.0.1:" + strconv.Itoa(b.Port()), Name: "home", TopicPrefix: "home/cams",
		QoS: new(byte(0)), Retain: true, ClientID: "sightline-test"})
	if err != nil {
		t.Fatal(err)
	}
	runMQTT(t, m, hub)
	testenv.WaitFor(t, 10*time.Second, "connected", func() bool { return m.Stats().Connected })
	e := event(hub, "street", "person", 1)
	hub.Publish(e)
	testenv.WaitFor(t, 10*time.Second, "published", func() bool { return m.Stats().Published == 1 })
	// Retained: a subscriber that comes afterwards still gets the camera's last event.
	sub := mqtttest.Subscribe(t, b.URL(), "", "", "home/cams/#")
	testenv.WaitFor(t, 10*time.Second, "retained event and availability", func() bool { return len(sub.Messages("")) == 2 })
	body, _ := json.Marshal(e)
	ev, av := sub.Messages("/events"), sub.Messages("/available")
	if len(ev) != 1 || ev[0].Topic != "home/cams/street/events" || ev[0].Payload != string(body) || !ev[0].Retained {
		t.Fatalf("events %+v", ev)
	}
	if len(av) != 1 || av[0].Topic != "home/cams/available" || av[0].Payload != "online" {
		t.Fatalf("availability %+v", av)
	}
}

func TestMQTTBrokerRestart(t *testing.T) {
	b := mqtttest.StartBroker(t, "allow_anonymous true")
	before := runtime.NumGoroutine()
	hub := NewHub(10)
	m, err := NewMQTT(MQTTConfig{Broker: b.URL(), QueueLen: 3})
	if err != nil {
		t.Fatal(err)
	}
	stop := runMQTT(t, m, hub)
	sub := mqtttest.Subscribe(t, b.URL(), "", "", "sightline/+/events")
	testenv.WaitFor(t, 10*time.Second, "connected", func() bool { return m.Stats().Connected })
	var all []Event
	pub := func(n int) {
		t.Helper()
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range n {
				e := event(hub, "street", "person", len(all))
				all = append(all, e)
				hub.Publish(e)
			}
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("hub.Publish blocked")
		}
	}
	pub(3)
	testenv.WaitFor(t, 10*time.Second, "3 events before the restart", func() bool { return len(sub.Messages("/events")) == 3 })

	b.Kill()
	testenv.WaitFor(t, 10*time.Second, "the sink to notice", func() bool { return !m.Stats().Connected })
	if st := m.Stats(); st.LastError == "" {
		t.Fatalf("stats after the broker died: %+v", st)
	}
	// The broker is away: 5 events wait in a queue of 3 (the 2 oldest are dropped), the hub never waits.
	pub(5)
	time.Sleep(300 * time.Millisecond) // at least one reconnect attempt fails
	b.Start()
	sub2 := mqtttest.Subscribe(t, b.URL(), "", "", "sightline/+/events")
	testenv.WaitFor(t, 15*time.Second, "reconnected", func() bool { return m.Stats().Connected })
	testenv.WaitFor(t, 10*time.Second, "the 3 queued events published", func() bool { return m.Stats().Published == 6 })
	pub(3)
	testenv.WaitFor(t, 10*time.Second, "events after the restart", func() bool {
		ev := sub2.Messages("/events")
		return len(ev) > 0 && strings.Contains(ev[len(ev)-1].Payload, `"id":"`+all[len(all)-1].ID+`"`)
	})
	// Nothing lost silently: every event was published, dropped (the 2 oldest of the outage) or failed.
	st := m.Stats()
	if st.Published != 9 || st.Dropped != 2 || st.Failed != 0 {
		t.Fatalf("stats %+v: want 9 published, 2 dropped", st)
	}
	// What the new subscriber saw is in order and without the dropped ones (the queued 3 may have gone
	// out before it subscribed).
	wantIDs := []string{}
	for i, e := range all {
		if i != 3 && i != 4 {
			wantIDs = append(wantIDs, e.ID)
		}
	}
	ev := sub2.Messages("/events")
	var gotIDs []string
	for _, msg := range ev {
		var e Event
		if err := json.Unmarshal([]byte(msg.Payload), &e); err != nil {
			t.Fatal(err)
		}
		gotIDs = append(gotIDs, e.ID)
	}
	tail := wantIDs[len(wantIDs)-len(gotIDs):]
	if len(gotIDs) < 3 || strings.Join(gotIDs, ",") != strings.Join(tail, ",") {
		t.Fatalf("after the restart got %v, want a tail of %v", gotIDs, wantIDs)
	}
	t.Logf("after the restart the new subscriber got %d of the 6 published events", len(gotIDs))
	stop()
	sub2.Close()
	testenv.GoroutinesSettle(t, before)
}

func TestMQTTStopsWhileBrokerAway(t *testing.T) {
	// silent accepts connections and never answers (a wedged broker); refused has nobody listening.
	silent := silentListener(t)
	for _, c := range []struct{ name, broker, want string }{
		{"refused", "tcp://127.0.0.1:" + strconv.Itoa(mqtttest.FreePort(t)), "connection refused"},
		{"silent", "tcp://" + silent.Addr().String(), "connect to tcp://127.0.0.1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			hub := NewHub(10)
			m, err := NewMQTT(MQTTConfig{Broker: c.broker, Timeout: 500 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			stop := runMQTT(t, m, hub)
			hub.Publish(event(hub, "street", "person", 1)) // waits in the queue; the hub does not
			testenv.WaitFor(t, 10*time.Second, "a failed connection attempt", func() bool { return m.Stats().LastError != "" })
			if st := m.Stats(); st.Connected || st.Published != 0 || st.Failed != 0 || !strings.Contains(st.LastError, c.want) {
				t.Fatalf("stats %+v", st)
			}
			stop() // bounded even while an attempt is under way (by Timeout)
			testenv.GoroutinesSettle(t, before)
		})
	}
}

func TestMQTTAuth(t *testing.T) {
	passwd := testenv.LookPath(t, "mosquitto_passwd", "mosquitto")
	pwFile := filepath.Join(t.TempDir(), "passwd")
	if out, err := exec.Command(passwd, "-b", "-c", pwFile, "cam", "S3cretPw!").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
	b := mqtttest.StartBroker(t, "allow_anonymous false", "password_file "+pwFile)
	sub := mqtttest.Subscribe(t, b.URL(), "cam", "S3cretPw!", "sightline/+/events")
	hub := NewHub(10)

	// Credentials in the URL work and never show.
	good, err := NewMQTT(MQTTConfig{Broker: "tcp://cam:S3cretPw%21@127.0.0.1:" + strconv.Itoa(b.Port())})
	if err != nil {
		t.Fatal(err)
	}
	bad, err := NewMQTT(MQTTConfig{Broker: b.URL(), Username: "cam", Password: "WrongPw!", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	runMQTT(t, good, hub)
	runMQTT(t, bad, hub)
	testenv.WaitFor(t, 10*time.Second, "connected", func() bool { return good.Stats().Connected })
	hub.Publish(event(hub, "street", "person", 1))
	testenv.WaitFor(t, 10*time.Second, "the event", func() bool { return len(sub.Messages("/events")) == 1 })
	testenv.WaitFor(t, 10*time.Second, "the refusal", func() bool { return bad.Stats().LastError != "" })
	gs, bs := good.Stats(), bad.Stats()
	if bs.Connected || bs.Published != 0 || !strings.Contains(strings.ToLower(bs.LastError), "not authori") {
		t.Fatalf("wrong password: %+v", bs)
	}
	for _, s := range []string{fmt.Sprintf("%+v", gs), fmt.Sprintf("%+v", bs)} {
		if strings.Contains(s, "S3cret") || strings.Contains(s, "WrongPw") {
			t.Fatalf("stats show a password: %s", s)
		}
	}
	if gs.Broker != b.URL() {
		t.Fatalf("broker shown as %q", gs.Broker)
	}
}

func TestNewMQTTDefaults(t *testing.T) {
	m, err := NewMQTT(MQTTConfig{Broker: "tcp://broker.lan"})
	if err != nil {
		t.Fatal(err)
	}
	if m.cfg.Name != "broker.lan" || m.broker.Host != "broker.lan:1883" || m.qos != 1 || m.cfg.QueueLen != DefaultMQTTQueueLen ||
		m.cfg.Timeout != DefaultMQTTTimeout || !strings.HasPrefix(m.cfg.ClientID, "sightline-") || len(m.cfg.ClientID) > 23 ||
		m.EventTopic("street") != "sightline/street/events" || m.AvailabilityTopic() != "sightline/available" {
		t.Fatalf("defaults: %+v %s", m.cfg, m.broker)
	}
	m2, err := NewMQTT(MQTTConfig{Broker: "mqtts://u:pw@[::1]", TLSInsecure: true})
	if err != nil {
		t.Fatal(err)
	}
	if m2.broker.Host != "[::1]:8883" || m2.cfg.Username != "u" || m2.cfg.Password != "pw" || m2.Stats().Broker != "mqtts://[::1]:8883" {
		t.Fatalf("tls defaults: %+v %s", m2.cfg, m2.Stats().Broker)
	}
	if _, err := NewMQTT(MQTTConfig{Broker: "ws://127.0.0.1:9001/mqtt"}); err != nil {
		t.Fatal(err)
	}
}

func TestNewMQTTRejectsBadConfigs(t *testing.T) {
	const secret = "Sup3rSecret"
	for _, c := range []struct {
		name string
		cfg  MQTTConfig
		want string
	}{
		{"empty broker", MQTTConfig{}, "want tcp://"},
		{"http scheme", MQTTConfig{Broker: "http://u:" + secret + "@h"}, "want tcp://"},
		{"no host", MQTTConfig{Broker: "tcp://u:" + secret + "@:1883"}, "no host"},
		{"bad port", MQTTConfig{Broker: "tcp://u:" + secret + "@h:port"}, "cannot parse"},
		{"bad escape", MQTTConfig{Broker: "tcp://u:" + secret + "%zz@h"}, "cannot parse"},
		{"path on tcp", MQTTConfig{Broker: "tcp://u:" + secret + "@h/x"}, "path or query"},
		{"qos 2", MQTTConfig{Broker: "tcp://h", Password: secret, Username: "u", QoS: new(byte(2))}, "qos 2"},
		{"wildcard +", MQTTConfig{Broker: "tcp://h", Password: secret, Username: "u", TopicPrefix: "a/+"}, "wildcards"},
		{"wildcard #", MQTTConfig{Broker: "tcp://h", TopicPrefix: "#"}, "wildcards"},
		{"trailing /", MQTTConfig{Broker: "tcp://h", TopicPrefix: "a/"}, "trailing"},
		{"empty level", MQTTConfig{Broker: "tcp://h", TopicPrefix: "a//b"}, "empty levels"},
		{"insecure without tls", MQTTConfig{Broker: "tcp://u:" + secret + "@h", TLSInsecure: true}, "TLS scheme"},
		{"password alone", MQTTConfig{Broker: "tcp://h", Password: secret}, "without a username"},
		{"negative timeout", MQTTConfig{Broker: "tcp://h", Timeout: -1}, "negative"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewMQTT(c.cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error with %q", err, c.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error shows the password: %v", err)
			}
		})
	}
}

func TestMQTTRefusesUnsafeCameraTopic(t *testing.T) {
	b := mqtttest.StartBroker(t, "allow_anonymous true")
	sub := mqtttest.Subscribe(t, b.URL(), "", "", "sightline/#")
	hub := NewHub(10)
	m, err := NewMQTT(MQTTConfig{Broker: b.URL()})
	if err != nil {
		t.Fatal(err)
	}
	runMQTT(t, m, hub)
	hub.Publish(event(hub, "a/b", "person", 1))
	hub.Publish(event(hub, "street", "person", 2))
	testenv.WaitFor(t, 10*time.Second, "the good event", func() bool { return m.Stats().Published == 1 })
	st := m.Stats()
	if st.Failed != 1 || !strings.Contains(st.LastError, "topic level") && st.LastError != "" {
		t.Fatalf("stats %+v", st)
	}
	testenv.WaitFor(t, 10*time.Second, "the good event", func() bool { return len(sub.Messages("/events")) == 1 })
	if ev := sub.Messages("/events"); ev[0].Topic != "sightline/street/events" {
		t.Fatalf("got %+v", ev)
	}
}

// FuzzNewMQTT: any broker URL and password give a sink or an error, never a panic, and the error never
// shows the password (a password shows when the error differs from the one with another password there).
func FuzzNewMQTT(f *testing.F) {
	for _, s := range []string{"tcp://h:1883", "ssl://h", "ws://h:9001/mqtt", "tcp://h:port", "%zz", "tcp://[::1", "mqtts://h/x?y"} {
		f.Add(s, "pw0rd!")
	}
	f.Fuzz(func(t *testing.T, rest, pw string) {
		const other = "Qq7Qq7Qq7"
		try := func(pw string) []error {
			var errs []error
			for _, broker := range []string{rest, "tcp://" + url.UserPassword("user", pw).String() + "@" + rest} {
				_, err := NewMQTT(MQTTConfig{Broker: broker, Username: "u", Password: pw})
				errs = append(errs, err)
			}
			return errs
		}
		if len(pw) < 4 || pw == other {
			return
		}
		errs, others := try(pw), try(other)
		for i, err := range errs {
			if err != nil && strings.Contains(err.Error(), pw) && (others[i] == nil || !strings.Contains(others[i].Error(), pw)) {
				t.Fatalf("broker %q: error shows the password %q: %v", rest, pw, err)
			}
		}
	})
}

// proxy relays TCP connections to target; cut drops the current ones abruptly (the listener stays).
type proxy struct {
	l      net.Listener
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, target: target}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); _, _ = io.Copy(u, c); u.Close() }()
			go func() { defer p.wg.Done(); _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
	t.Cleanup(func() { l.Close(); p.cut(); p.wg.Wait() })
	return p
}

func (p *proxy) URL() string { return "tcp://" + p.l.Addr().String() }

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func TestMQTTWillThenReconnect(t *testing.T) {
	b := mqtttest.StartBroker(t, "allow_anonymous true")
	p := startProxy(t, "127.0.0.1:"+strconv.Itoa(b.Port()))
	sub := mqtttest.Subscribe(t, b.URL(), "", "", "sightline/available", "sightline/+/events")
	hub := NewHub(10)
	m, err := NewMQTT(MQTTConfig{Broker: p.URL()})
	if err != nil {
		t.Fatal(err)
	}
	runMQTT(t, m, hub)
	testenv.WaitFor(t, 10*time.Second, "online", func() bool { return len(sub.Messages("/available")) == 1 })
	// The sink's connection drops without a DISCONNECT: the broker sends its will, then it comes back.
	p.cut()
	testenv.WaitFor(t, 15*time.Second, "offline (the will), then online", func() bool { return len(sub.Messages("/available")) == 3 })
	var seq []string
	for _, a := range sub.Messages("/available") {
		seq = append(seq, a.Payload)
	}
	if strings.Join(seq, ",") != "online,offline,online" {
		t.Fatalf("availability %v", seq)
	}
	hub.Publish(event(hub, "street", "person", 1))
	testenv.WaitFor(t, 10*time.Second, "an event on the new connection", func() bool { return len(sub.Messages("/events")) == 1 })
}

func TestMQTTEndsWhenHubCloses(t *testing.T) {
	b := mqtttest.StartBroker(t, "allow_anonymous true")
	sub := mqtttest.Subscribe(t, b.URL(), "", "", "sightline/#")
	hub := NewHub(10)
	m, err := NewMQTT(MQTTConfig{Broker: b.URL()})
	if err != nil {
		t.Fatal(err)
	}
	deliver := m.Subscribe(hub)
	done := make(chan struct{})
	go func() { defer close(done); deliver(context.Background()) }()
	testenv.WaitFor(t, 10*time.Second, "connected", func() bool { return m.Stats().Connected })
	hub.Publish(event(hub, "street", "person", 1))
	hub.Close() // what was queued still goes out, then the sink says goodbye
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the sink did not end with the hub")
	}
	testenv.WaitFor(t, 10*time.Second, "event and offline", func() bool { return len(sub.Messages("")) == 3 })
	if ms := sub.Messages(""); ms[1].Topic != "sightline/street/events" || ms[2].Payload != "offline" {
		t.Fatalf("got %+v", ms)
	}
}
