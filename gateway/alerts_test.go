package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"sightline/alerts"
	"sightline/internal/mqtttest"
	"sightline/internal/testenv"
)

// A webhook configured in YAML receives the camera's zone events as signed JSON POSTs, with absolute
// snapshot URLs (alerts.publicURL) that serve the event's JPEG; its counters are in the API; the first
// attempts failing with 503 are retried.
func TestWebhookSink(t *testing.T) {
	clip := testenv.Asset(t, "camera/cam_street_1280x720_25fps.h264")
	var mu sync.Mutex
	var got []alerts.Event
	var bad []string
	failFirst := 2
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if failFirst > 0 {
			failFirst--
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if sig := r.Header.Get("X-Sightline-Signature"); sig != "sha256="+alerts.Sign("hook-secret", body) || r.Header.Get("X-Api-Key") != "k1" {
			bad = append(bad, fmt.Sprintf("headers %v", r.Header))
		}
		var e alerts.Event
		if err := json.Unmarshal(body, &e); err != nil {
			bad = append(bad, err.Error())
		}
		got = append(got, e)
	}))
	defer hook.Close()

	g, _ := startGatewayYAML(t, noAuth+fmt.Sprintf(`analytics: {fps: 5, model: /nonexistent/model.onnx}
alerts:
  publicURL: http://nvr.example.com:8080/
  webhooks:
    - name: test-hook
      url: %s/hook
      classes: [motion]
      rules: [walkway]
      secret: hook-secret
      headers: {X-Api-Key: k1}
      backoff: 10ms
cameras:
  - id: street
    url: 'file://%s'
    rules:
      - {id: walkway, type: zone, polygon: [[0,0.4],[1,0.4],[1,1],[0,1]]}
      - {id: ignored, type: zone, polygon: [[0,0],[1,0],[1,0.4],[0,0.4]], classes: [person]}
`, hook.URL, clip))
	base := "http://" + g.HTTPAddr()
	waitFor(t, 20*time.Second, "3 webhook deliveries", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= 3
	})
	mu.Lock()
	first, problems := got[0], bad
	mu.Unlock()
	if len(problems) > 0 {
		t.Fatalf("webhook requests: %v", problems)
	}
	if first.Rule != "walkway" || first.Label != "motion" || first.ID == "" ||
		first.Snapshot != "http://nvr.example.com:8080/api/v1/events/"+first.ID+"/snapshot.jpg" {
		t.Fatalf("first event %+v", first)
	}
	checkJPEG(t, base+strings.TrimPrefix(first.Snapshot, "http://nvr.example.com:8080"), 1280, 720)

	var sinks struct{ Webhooks []alerts.WebhookStats }
	getJSON(t, base+"/api/v1/alerts/sinks", &sinks)
	if len(sinks.Webhooks) != 1 {
		t.Fatalf("sinks %+v", sinks)
	}
	st := sinks.Webhooks[0]
	if st.Name != "test-hook" || st.URL != hook.URL+"/hook" || st.Delivered < 3 || st.Retries != 2 || st.Failed != 0 {
		t.Fatalf("webhook stats %+v", st)
	}
}

// An MQTT sink configured in YAML publishes the camera's zone events to a real broker (mosquitto) on
// sightline/<camera>/events, with retained availability; its counters are in the API.
func TestMQTTSink(t *testing.T) {
	clip := testenv.Asset(t, "camera/cam_street_1280x720_25fps.h264")
	b := mqtttest.StartBroker(t, "allow_anonymous true")
	sub := mqtttest.Subscribe(t, b.URL(), "", "", "sightline/#")
	g, _ := startGatewayYAML(t, noAuth+fmt.Sprintf(`analytics: {fps: 5, model: /nonexistent/model.onnx}
alerts:
  mqtt:
    - {name: test-broker, broker: '%s', classes: [motion], rules: [walkway]}
cameras:
  - id: street
    url: 'file://%s'
    rules:
      - {id: walkway, type: zone, polygon: [[0,0.4],[1,0.4],[1,1],[0,1]]}
`, b.URL(), clip))
	testenv.WaitFor(t, 20*time.Second, "3 events on sightline/street/events", func() bool {
		return len(sub.Messages("/street/events")) >= 3
	})
	var ev alerts.Event
	if err := json.Unmarshal([]byte(sub.Messages("/street/events")[0].Payload), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Type != "event" || ev.Camera != "street" || ev.Rule != "walkway" || ev.ID == "" || ev.Snapshot == "" {
		t.Fatalf("event on MQTT: %+v", ev)
	}
	if av := sub.Messages("sightline/available"); len(av) == 0 || av[0].Payload != "online" {
		t.Fatalf("availability: %+v", av)
	}
	var sinks struct {
		MQTT []alerts.MQTTStats `json:"mqtt"`
	}
	getJSON(t, "http://"+g.HTTPAddr()+"/api/v1/alerts/sinks", &sinks)
	if len(sinks.MQTT) != 1 || sinks.MQTT[0].Name != "test-broker" || !sinks.MQTT[0].Connected || sinks.MQTT[0].Published < 3 {
		t.Fatalf("sinks %+v", sinks)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "offline on shutdown", func() bool {
		av := sub.Messages("sightline/available")
		return len(av) > 0 && av[len(av)-1].Payload == "offline"
	})
}

// A Kafka sink configured in YAML produces the camera's zone events, one record each keyed by camera, to
// franz-go's in-process kfake cluster: no Kafka broker can run here (none in Debian, npm or the Go module
// proxy, no Docker), so kfake stands in for the broker; the sink's client is the real franz-go producer.
// Its counters are in the API.
func TestKafkaSink(t *testing.T) {
	clip := testenv.Asset(t, "camera/cam_street_1280x720_25fps.h264")
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "nvr.events"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	g, _ := startGatewayYAML(t, noAuth+fmt.Sprintf(`analytics: {fps: 5, model: /nonexistent/model.onnx}
alerts:
  kafka:
    - {name: test-cluster, brokers: ['%s'], topic: nvr.events, classes: [motion], rules: [walkway]}
cameras:
  - id: street
    url: 'file://%s'
    rules:
      - {id: walkway, type: zone, polygon: [[0,0.4],[1,0.4],[1,1],[0,1]]}
`, c.ListenAddrs()[0], clip))
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("nvr.events"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < 3 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%d records on nvr.events, want 3", len(recs))
		}
		recs = append(recs, fs.Records()...)
	}
	var ev alerts.Event
	if err := json.Unmarshal(recs[0].Value, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Type != "event" || ev.Camera != "street" || ev.Rule != "walkway" || ev.ID == "" || ev.Snapshot == "" ||
		string(recs[0].Key) != "street" || len(recs[0].Headers) == 0 || string(recs[0].Headers[0].Value) != ev.ID {
		t.Fatalf("record key %q headers %v: %+v", recs[0].Key, recs[0].Headers, ev)
	}
	var sinks struct {
		Kafka []alerts.KafkaStats `json:"kafka"`
	}
	getJSON(t, "http://"+g.HTTPAddr()+"/api/v1/alerts/sinks", &sinks)
	if len(sinks.Kafka) != 1 || sinks.Kafka[0].Name != "test-cluster" || !sinks.Kafka[0].Connected || sinks.Kafka[0].Sent < 3 ||
		sinks.Kafka[0].Topic != "nvr.events" {
		t.Fatalf("sinks %+v", sinks)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
}
