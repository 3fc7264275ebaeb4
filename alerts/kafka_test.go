package alerts

// No Kafka broker can run on this machine or in CI (none in Debian's packages, npm or the Go module
// proxy, and no Docker engine), so these tests use franz-go's in-process cluster, kfake, as the broker:
// it speaks the real Kafka wire protocol over TCP on 127.0.0.1 (metadata, SASL, idempotent produce,
// fetch). It stands in for the broker only; the client side under test is the real franz-go producer
// the sink runs in production. A real Kafka broker may still differ (replication, acks=all with several
// in-sync replicas, broker-side topic policies); the README says so.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"sightline/internal/testenv"
)

// startCluster starts a one-broker kfake cluster with topics (3 partitions each) and closes it at the
// end of the test (closing twice is fine).
func startCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// runKafka starts k on hub and returns a stop function that waits for it.
func runKafka(t *testing.T, k *Kafka, hub *Hub) (stop func()) {
	t.Helper()
	return runSink(t, "kafka", k.Subscribe(hub))
}

// consume reads n records of topic from the start with a plain franz-go consumer.
func consume(t *testing.T, addrs []string, topic string, n int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	opts = append(opts, kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records of %s", len(recs), n, topic)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s/%d: %v", topic, p, err) })
		recs = append(recs, fs.Records()...)
	}
	return recs
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return "<none>"
}

// publishAll publishes n events of camera cam and fails the test if the hub ever waits.
func publishAll(t *testing.T, hub *Hub, all *[]Event, cam string, n int) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range n {
			e := event(hub, cam, "person", len(*all))
			*all = append(*all, e)
			hub.Publish(e)
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("hub.Publish blocked")
	}
}

func TestKafkaProducesEventsAsRecords(t *testing.T) {
	before := runtime.NumGoroutine()
	c := startCluster(t, kfake.SeedTopics(3, DefaultKafkaTopic))
	hub := NewHub(10)
	k, err := NewKafka(KafkaConfig{Brokers: c.ListenAddrs(), Filter: Filter{Cameras: []string{"street", "yard"}, Classes: []string{"person"}}})
	if err != nil {
		t.Fatal(err)
	}
	stop := runKafka(t, k, hub)
	testenv.WaitFor(t, 10*time.Second, "connected", func() bool { return k.Stats().Connected })

	want := publishMixed(hub, 16)
	testenv.WaitFor(t, 10*time.Second, "8 events sent", func() bool { return k.Stats().Sent == uint64(len(want)) })
	recs := consume(t, c.ListenAddrs(), DefaultKafkaTopic, len(want))
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d", len(recs), len(want))
	}
	// Each camera's records are in one partition, in publishing order.
	byID := map[string]Event{}
	for _, e := range want {
		byID[e.ID] = e
	}
	partition := map[string]int32{}
	last := map[string]int{}
	for _, r := range recs {
		var got Event
		if err := json.Unmarshal(r.Value, &got); err != nil {
			t.Fatal(err)
		}
		e, ok := byID[got.ID]
		if !ok {
			t.Fatalf("unexpected record %s", r.Value)
		}
		body, _ := json.Marshal(e)
		if string(r.Key) != e.Camera || string(r.Value) != string(body) || header(r, "event-id") != e.ID ||
			header(r, "rule") != "walkway" || header(r, "type") != "event" || header(r, "kind") != "enter" || r.Topic != DefaultKafkaTopic {
			t.Fatalf("record key %q value %s headers %v\nwant key %q value %s", r.Key, r.Value, r.Headers, e.Camera, body)
		}
		if p, seen := partition[e.Camera]; seen && p != r.Partition {
			t.Fatalf("camera %s in partitions %d and %d", e.Camera, p, r.Partition)
		}
		partition[e.Camera] = r.Partition
		if int(e.ObjectID) < last[e.Camera] {
			t.Fatalf("camera %s out of order: %d after %d", e.Camera, e.ObjectID, last[e.Camera])
		}
		last[e.Camera] = int(e.ObjectID)
	}
	st := k.Stats()
	if st.Sent != uint64(len(want)) || st.Failed != 0 || st.Dropped != 0 || st.Queued != 0 || st.LastError != "" ||
		st.LastSentAt.IsZero() || st.Name != "127.0.0.1" || st.Topic != DefaultKafkaTopic ||
		strings.Join(st.Brokers, ",") != strings.Join(c.ListenAddrs(), ",") {
		t.Fatalf("stats %+v", st)
	}
	stop()
	if k.Stats().Connected {
		t.Fatal("still connected after stop")
	}
	c.Close()
	testenv.GoroutinesSettle(t, before)
}

// The cluster goes away and comes back on the same port (a new kfake cluster: kfake cannot restart one):
// the event in flight fails once and is counted; the events published meanwhile wait in the queue, the
// oldest dropped and counted; the rest go out, in order, once the cluster is back; the hub never waits.
func TestKafkaClusterRestart(t *testing.T) {
	before := runtime.NumGoroutine()
	c1 := startCluster(t, kfake.SeedTopics(1, "events"))
	addr := c1.ListenAddrs()[0]
	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	hub := NewHub(10)
	k, err := NewKafka(KafkaConfig{Brokers: []string{addr}, Topic: "events", QueueLen: 3, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	stop := runKafka(t, k, hub)
	testenv.WaitFor(t, 10*time.Second, "connected", func() bool { return k.Stats().Connected })
	var all []Event
	publishAll(t, hub, &all, "street", 3)
	testenv.WaitFor(t, 10*time.Second, "3 events before the outage", func() bool { return k.Stats().Sent == 3 })

	c1.Close()
	publishAll(t, hub, &all, "street", 1) // in flight when the sink learns the cluster is gone
	testenv.WaitFor(t, 15*time.Second, "the sink to notice", func() bool { st := k.Stats(); return st.Failed == 1 && !st.Connected })
	if st := k.Stats(); !strings.Contains(st.LastError, "produce event "+all[3].ID) && !strings.Contains(st.LastError, "reach kafka") {
		t.Fatalf("stats after the cluster went away: %+v", st)
	}
	// The cluster is away: 5 events wait in a queue of 3 (the 2 oldest are dropped), the hub never waits.
	publishAll(t, hub, &all, "street", 5)
	testenv.WaitFor(t, 10*time.Second, "a failed reconnection", func() bool { return strings.Contains(k.Stats().LastError, "reach kafka") })
	if st := k.Stats(); st.Queued != 3 || st.Dropped != 2 || st.Sent != 3 {
		t.Fatalf("stats during the outage: %+v", st)
	}

	c2 := startCluster(t, kfake.Ports(port), kfake.SeedTopics(1, "events"))
	testenv.WaitFor(t, 15*time.Second, "the 3 queued events sent", func() bool { return k.Stats().Sent == 6 })
	publishAll(t, hub, &all, "street", 3)
	testenv.WaitFor(t, 10*time.Second, "events after the restart", func() bool { return k.Stats().Sent == 9 })
	st := k.Stats()
	if !st.Connected || st.Failed != 1 || st.Dropped != 2 || st.Queued != 0 || st.LastError != "" {
		t.Fatalf("stats %+v: want 9 sent, 1 failed, 2 dropped", st)
	}
	// The new cluster has the queued 3 and the 3 after, in order, and nothing else.
	recs := consume(t, c2.ListenAddrs(), "events", 6)
	var got, want []string
	for _, r := range recs {
		got = append(got, header(r, "event-id"))
	}
	for _, e := range all[6:] {
		want = append(want, e.ID)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("the new cluster got %v, want %v", got, want)
	}
	stop()
	c2.Close()
	testenv.GoroutinesSettle(t, before)
}

func TestKafkaStopsWhileClusterAway(t *testing.T) {
	// silent accepts connections and never answers (a wedged broker); refused has nobody listening.
	silent := silentListener(t)
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := free.Addr().String()
	free.Close()
	for _, c := range []struct{ name, broker string }{{"refused", refused}, {"silent", silent.Addr().String()}} {
		t.Run(c.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			hub := NewHub(10)
			k, err := NewKafka(KafkaConfig{Brokers: []string{c.broker}, Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			stop := runKafka(t, k, hub)
			hub.Publish(event(hub, "street", "person", 1)) // waits in the queue; the hub does not
			testenv.WaitFor(t, 10*time.Second, "a failed connection attempt", func() bool { return k.Stats().LastError != "" })
			if st := k.Stats(); st.Connected || st.Sent != 0 || st.Failed != 0 || st.Queued != 1 || !strings.Contains(st.LastError, "reach kafka") {
				t.Fatalf("stats %+v", st)
			}
			stop() // bounded even while an attempt is under way (by Timeout)
			testenv.GoroutinesSettle(t, before)
		})
	}
}

func TestKafkaEndsWhenHubCloses(t *testing.T) {
	c := startCluster(t, kfake.SeedTopics(1, DefaultKafkaTopic))
	before := runtime.NumGoroutine()
	hub := NewHub(10)
	k, err := NewKafka(KafkaConfig{Brokers: c.ListenAddrs()})
	if err != nil {
		t.Fatal(err)
	}
	deliver := k.Subscribe(hub)
	done := make(chan struct{})
	go func() { defer close(done); deliver(context.Background()) }()
	testenv.WaitFor(t, 10*time.Second, "connected", func() bool { return k.Stats().Connected })
	hub.Publish(event(hub, "street", "person", 1))
	hub.Publish(event(hub, "street", "person", 2))
	hub.Close() // what was queued still goes out, then the sink ends
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("the sink did not end with the hub")
	}
	if st := k.Stats(); st.Sent != 2 || st.Connected {
		t.Fatalf("stats %+v", st)
	}
	testenv.GoroutinesSettle(t, before)
	if recs := consume(t, c.ListenAddrs(), DefaultKafkaTopic, 2); len(recs) != 2 {
		t.Fatalf("%d records", len(recs))
	}
}

// Each SASL mechanism authenticates against kfake's SASL; a wrong password is refused and never shown.
func TestKafkaSASL(t *testing.T) {
	const pw = "S3cretPw!"
	c := startCluster(t, kfake.EnableSASL(), kfake.Superuser("PLAIN", "cam", pw), kfake.Superuser("SCRAM-SHA-256", "cam", pw),
		kfake.Superuser("SCRAM-SHA-512", "cam", pw), kfake.SeedTopics(1, DefaultKafkaTopic))
	hub := NewHub(10)
	var good []*Kafka
	for _, m := range []string{"plain", "scram-sha-256", "SCRAM-SHA-512"} {
		k, err := NewKafka(KafkaConfig{Name: m, Brokers: c.ListenAddrs(), SASL: KafkaSASL{Mechanism: m, Username: "cam", Password: pw}})
		if err != nil {
			t.Fatal(err)
		}
		runKafka(t, k, hub)
		good = append(good, k)
	}
	bad, err := NewKafka(KafkaConfig{Brokers: c.ListenAddrs(), Timeout: time.Second,
		SASL: KafkaSASL{Mechanism: "scram-sha-256", Username: "cam", Password: "WrongPw!"}})
	if err != nil {
		t.Fatal(err)
	}
	runKafka(t, bad, hub)
	for _, k := range good {
		testenv.WaitFor(t, 10*time.Second, k.cfg.Name+" connected", func() bool { return k.Stats().Connected })
	}
	hub.Publish(event(hub, "street", "person", 1))
	for _, k := range good {
		testenv.WaitFor(t, 10*time.Second, k.cfg.Name+" sent", func() bool { return k.Stats().Sent == 1 })
	}
	testenv.WaitFor(t, 10*time.Second, "the refusal", func() bool { return bad.Stats().LastError != "" })
	// kfake closes the connection on a failed authentication (EOF here); a real broker answers
	// SASL_AUTHENTICATION_FAILED first. Either way the sink does not connect and the event waits.
	bs := bad.Stats()
	if bs.Connected || bs.Sent != 0 || bs.Queued != 1 || !strings.Contains(bs.LastError, "reach kafka") {
		t.Fatalf("wrong password: %+v", bs)
	}
	for _, k := range append(good, bad) {
		if s := fmt.Sprintf("%+v", k.Stats()); strings.Contains(s, "S3cret") || strings.Contains(s, "WrongPw") {
			t.Fatalf("stats show a password: %s", s)
		}
	}
	admin := scram.Auth{User: "cam", Pass: pw}.AsSha256Mechanism()
	if recs := consume(t, c.ListenAddrs(), DefaultKafkaTopic, 3, kgo.SASL(admin)); len(recs) != 3 {
		t.Fatalf("%d records", len(recs))
	}
}

// acks leader and none turn idempotent producing off (the client refuses them otherwise) and deliver.
func TestKafkaAcks(t *testing.T) {
	c := startCluster(t, kfake.SeedTopics(1, "acks-leader", "acks-none", "acks-all"))
	hub := NewHub(10)
	for _, a := range []string{"leader", "none", "ALL"} {
		k, err := NewKafka(KafkaConfig{Name: a, Brokers: c.ListenAddrs(), Topic: "acks-" + strings.ToLower(a), Acks: a})
		if err != nil {
			t.Fatal(err)
		}
		runKafka(t, k, hub)
		testenv.WaitFor(t, 10*time.Second, a+" connected", func() bool { return k.Stats().Connected })
	}
	hub.Publish(event(hub, "street", "person", 1))
	for _, a := range []string{"leader", "none", "all"} {
		recs := consume(t, c.ListenAddrs(), "acks-"+a, 1)
		if header(recs[0], "type") != "event" {
			t.Fatalf("acks %s: %+v", a, recs[0])
		}
	}
}

func TestNewKafkaDefaults(t *testing.T) {
	k, err := NewKafka(KafkaConfig{Brokers: []string{"kafka-1.lan:9092", "[::1]:9093"}})
	if err != nil {
		t.Fatal(err)
	}
	if k.cfg.Name != "kafka-1.lan" || k.cfg.Topic != DefaultKafkaTopic || k.cfg.ClientID != DefaultKafkaClientID || k.cfg.Acks != "all" ||
		k.cfg.QueueLen != DefaultKafkaQueueLen || k.cfg.Timeout != DefaultKafkaTimeout {
		t.Fatalf("defaults: %+v", k.cfg)
	}
	if st := k.Stats(); st.Name != "kafka-1.lan" || len(st.Brokers) != 2 || st.Topic != DefaultKafkaTopic || st.Connected {
		t.Fatalf("stats %+v", st)
	}
	// The options are valid for the client (acks none without idempotency, TLS, SASL).
	k2, err := NewKafka(KafkaConfig{Brokers: []string{"h:9092"}, Acks: "none", TLS: true, TLSInsecure: true, Timeout: time.Second,
		SASL: KafkaSASL{Mechanism: "plain", Username: "u", Password: "p"}})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(k2.opts...)
	if err != nil {
		t.Fatal(err)
	}
	cl.Close()
	e := Event{Type: "event", ID: "x-1", Camera: "street", Rule: "walkway", Kind: "cross", Direction: "a_to_b"}
	r, err := k2.Record(e)
	body, _ := json.Marshal(e)
	if err != nil || string(r.Key) != "street" || string(r.Value) != string(body) || len(r.Headers) != 4 || header(r, "kind") != "cross" {
		t.Fatalf("record %+v %v", r, err)
	}
}

func TestNewKafkaRejectsBadConfigs(t *testing.T) {
	const secret = "Sup3rSecret"
	sasl := func(m string) KafkaSASL { return KafkaSASL{Mechanism: m, Username: "u", Password: secret} }
	for _, c := range []struct {
		name string
		cfg  KafkaConfig
		want string
	}{
		{"no brokers", KafkaConfig{}, "no brokers"},
		{"no port", KafkaConfig{Brokers: []string{"h"}}, "host:port"},
		{"scheme", KafkaConfig{Brokers: []string{"kafka://h:9092"}}, "no scheme"},
		{"credentials", KafkaConfig{Brokers: []string{"u:" + secret + "@h:9092"}, SASL: sasl("plain")}, "host:port"},
		{"bad port", KafkaConfig{Brokers: []string{"h:port"}}, "1-65535"},
		{"port 0", KafkaConfig{Brokers: []string{"h:9092", "h:0"}}, "1-65535"},
		{"no host", KafkaConfig{Brokers: []string{":9092"}}, "host:port"},
		{"bad topic", KafkaConfig{Brokers: []string{"h:9092"}, Topic: "a/b", SASL: sasl("plain")}, "letters"},
		{"dot topic", KafkaConfig{Brokers: []string{"h:9092"}, Topic: ".."}, "legal"},
		{"unknown acks", KafkaConfig{Brokers: []string{"h:9092"}, Acks: "2", SASL: sasl("plain")}, "want all, leader or none"},
		{"unknown mechanism", KafkaConfig{Brokers: []string{"h:9092"}, SASL: sasl("gssapi")}, "want plain"},
		{"mechanism without password", KafkaConfig{Brokers: []string{"h:9092"}, SASL: KafkaSASL{Mechanism: "scram-sha-512", Username: "u"}}, "needs a username and a password"},
		{"password without mechanism", KafkaConfig{Brokers: []string{"h:9092"}, SASL: KafkaSASL{Username: "u", Password: secret}}, "without a mechanism"},
		{"insecure without tls", KafkaConfig{Brokers: []string{"h:9092"}, TLSInsecure: true, SASL: sasl("plain")}, "needs tls"},
		{"negative timeout", KafkaConfig{Brokers: []string{"h:9092"}, Timeout: -1}, "at least 1s"},
		{"short timeout", KafkaConfig{Brokers: []string{"h:9092"}, Timeout: 500 * time.Millisecond}, "at least 1s"},
		{"negative queue", KafkaConfig{Brokers: []string{"h:9092"}, QueueLen: -1}, "negative"},
		{"control in client id", KafkaConfig{Brokers: []string{"h:9092"}, ClientID: "a\nb"}, "client id"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewKafka(c.cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error with %q", err, c.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error shows the password: %v", err)
			}
		})
	}
}

// FuzzNewKafka: any broker address, topic, mechanism and acks give a sink or an error, never a panic,
// and the error never shows the password (a password shows when the error differs from the one with
// another password there).
func FuzzNewKafka(f *testing.F) {
	for _, s := range []string{"h:9092", "[::1]:9092", "h", "kafka://h:9092", "h:0", ":1", "[::1"} {
		f.Add(s, "sightline.events", "scram-sha-256", "all", "pw0rd!")
	}
	f.Fuzz(func(t *testing.T, broker, topic, mech, acks, pw string) {
		const other = "Qq7Qq7Qq7"
		try := func(pw string) error {
			_, err := NewKafka(KafkaConfig{Brokers: []string{broker}, Topic: topic, Acks: acks,
				SASL: KafkaSASL{Mechanism: mech, Username: "u", Password: pw}})
			return err
		}
		if len(pw) < 4 || pw == other {
			return
		}
		err, oerr := try(pw), try(other)
		if err != nil && strings.Contains(err.Error(), pw) && (oerr == nil || !strings.Contains(oerr.Error(), pw)) {
			t.Fatalf("broker %q topic %q: error shows the password %q: %v", broker, topic, pw, err)
		}
	})
}
