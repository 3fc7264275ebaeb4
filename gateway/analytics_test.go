package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"sightline/analytics/rules"
	"sightline/internal/testenv"
)

func TestAnalyticsConfig(t *testing.T) {
	cfg, err := ParseConfig([]byte(noAuth+`
analytics: {onnxLibrary: lib/libonnxruntime.so.1, model: /models/yolox_nano.onnx, fps: 5}
cameras:
  - id: street
    url: rtsp://127.0.0.1:8554/street
    rules:
      - {id: walkway, type: zone, polygon: [[0.1,0.5],[0.9,0.5],[0.9,1],[0.1,1]], classes: [person]}
      - {id: crossing, type: line, line: [[0.5,0],[0.5,1]], classes: [person]}
`), "/etc/sightline")
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Analytics
	if !a.On() || a.FPS != 5 || cfg.analyticsPath(a.ONNXLibrary) != "/etc/sightline/lib/libonnxruntime.so.1" || cfg.analyticsPath(a.Model) != "/models/yolox_nano.onnx" {
		t.Fatalf("analytics %+v", a)
	}
	if r := cfg.Cameras[0].Rules; len(r) != 2 || r[0].Type != rules.TypeZone || r[1].Line[1] != [2]float64{0.5, 1} {
		t.Fatalf("rules %+v", r)
	}
	k, err := ParseConfig([]byte(noAuth+`analytics: {}
alerts:
  kafka:
    - name: lake
      brokers: ['kafka-1.lan:9093', '[fd00::5]:9093']
      topic: nvr.events
      clientId: nvr-1
      sasl: {mechanism: SCRAM-SHA-512, username: sightline, password: secret}
      tls: true
      acks: leader
      cameras: [street]
      queueLen: 50
      timeout: 2s
`), "/")
	if err != nil {
		t.Fatal(err)
	}
	kc := k.Alerts.Kafka[0].alertsConfig(nil)
	if kc.Name != "lake" || len(kc.Brokers) != 2 || kc.Topic != "nvr.events" || kc.ClientID != "nvr-1" || kc.SASL.Mechanism != "SCRAM-SHA-512" ||
		kc.SASL.Password != "secret" || !kc.TLS || kc.Acks != "leader" || kc.Filter.Cameras[0] != "street" || kc.QueueLen != 50 || kc.Timeout != 2*time.Second {
		t.Fatalf("kafka %+v", kc)
	}
	off, err := ParseConfig([]byte(noAuth), "/")
	if err != nil || off.Analytics.On() {
		t.Fatalf("analytics on without the section: %+v %v", off.Analytics, err)
	}
}

func TestAnalyticsConfigErrorsNameTheKey(t *testing.T) {
	cam := "cameras:\n  - id: c\n    url: rtsp://127.0.0.1/x\n    rules:\n"
	cases := []struct{ yaml, key, msg string }{
		{"analytics: {fps: -1}", "analytics.fps", "out of range"},
		{"analytics: {fps: 500}", "analytics.fps", "out of range"},
		{"analytics: {forceEvery: -1s}", "analytics.forceEvery", "negative"},
		{"analytics: {decoder: gpu}", "analytics.decoder", "unknown accelerator"},
		{"analytics: {provider: tpu}", "analytics.provider", "not one of"},
		{"analytics: {workers: -1}", "analytics.workers", ""},
		{"analytics: {queueLen: 1000}", "analytics.queueLen", ""},
		{"analytics: {scoreThreshold: 2}", "analytics.scoreThreshold", "0..1"},
		{"analytics: {classes: ['']}", "analytics.classes[0]", "empty"},
		{"analytics: {modle: x}", "analytics.modle", "unknown key"},
		{"alerts: {webhooks: [{url: http://h/x}]}", "alerts.webhooks", "need the analytics section"},
		{"analytics: {}\nalerts: {webhooks: [{url: 'ftp://u:pw123@h/x'}]}", "alerts.webhooks[0].url", "http:// or https://"},
		{"analytics: {}\nalerts: {webhooks: [{url: http://h/x, retries: -2}]}", "alerts.webhooks[0].retries", "0 to 100"},
		{"analytics: {}\nalerts: {webhooks: [{url: http://h/x, queueLen: -1}]}", "alerts.webhooks[0].queueLen", "out of range"},
		{"analytics: {}\nalerts: {webhooks: [{url: http://h/x, timeout: soon}]}", "alerts.webhooks[0].timeout", "invalid duration"},
		{"analytics: {}\nalerts: {webhooks: [{url: http://h/x, header: {a: b}}]}", "alerts.webhooks[0].header", "unknown key"},
		{"analytics: {}\nalerts: {webhooks: [{name: a, url: http://h/x}, {name: a, url: http://h/y}]}", "alerts.webhooks[1].name", "already used"},
		{"alerts: {publicURL: 'nvr.example.com'}", "alerts.publicURL", "base URL"},
		{"alerts: {mqtt: [{broker: 'tcp://h'}]}", "alerts.mqtt", "need the analytics section"},
		{"analytics: {}\nalerts: {mqtt: [{broker: 'tcp://h', qos: 2}]}", "alerts.mqtt[0].qos", "0 or 1"},
		{"analytics: {}\nalerts: {mqtt: [{broker: 'http://u:pw123@h'}]}", "alerts.mqtt[0]", "broker"},
		{"analytics: {}\nalerts: {mqtt: [{broker: 'tcp://h', topicPrefix: 'a/#'}]}", "alerts.mqtt[0]", "prefix"},
		{"alerts: {kafka: [{brokers: ['h:9092']}]}", "alerts.kafka", "need the analytics section"},
		{"analytics: {}\nalerts: {kafka: [{topic: t}]}", "alerts.kafka[0].brokers", "empty"},
		{"analytics: {}\nalerts: {kafka: [{brokers: []}]}", "alerts.kafka[0].brokers", "empty"},
		{"analytics: {}\nalerts: {kafka: [{brokers: ['h:9092', 'kafka://h:9092']}]}", "alerts.kafka[0].brokers[1]", "host:port"},
		{"analytics: {}\nalerts: {kafka: [{brokers: ['u:pw123@h:9092']}]}", "alerts.kafka[0].brokers[0]", "no credentials"},
		{"analytics: {}\nalerts: {kafka: [{brokers: ['h:99999']}]}", "alerts.kafka[0].brokers[0]", "1-65535"},
		{"analytics: {}\nalerts: {kafka: [{brokers: ['h']}]}", "alerts.kafka[0].brokers[0]", "host:port"},
		{"analytics: {}\nalerts: {kafka: [{brokers: ['h:9092'], acks: '-1'}]}", "alerts.kafka[0].acks", "all, leader or none"},
		{"analytics: {}\nalerts: {kafka: [{brokers: ['h:9092'], topic: 'a b'}]}", "alerts.kafka[0].topic", "letters"},
		{"analytics: {}\nalerts: {kafka: [{brokers: ['h:9092'], sasl: {mechanism: scram-sha-256}}]}", "alerts.kafka[0].sasl", "needs a username and a password"},
		{"analytics: {}\nalerts: {kafka: [{brokers: ['h:9092'], sasl: {mechanism: plain, username: u}}]}", "alerts.kafka[0].sasl", "needs a username and a password"},
		{"analytics: {}\nalerts: {kafka: [{brokers: ['h:9092'], sasl: {mechanism: gssapi, username: u, password: pw123}}]}", "alerts.kafka[0].sasl", "want plain"},
		{"analytics: {}\nalerts: {kafka: [{brokers: ['h:9092'], sasl: {username: u, password: pw123}}]}", "alerts.kafka[0].sasl", "without a mechanism"},
		{"analytics: {}\nalerts: {kafka: [{brokers: ['h:9092'], sasl: {mechanism: plain, user: u}}]}", "alerts.kafka[0].sasl.user", "unknown key"},
		{"analytics: {}\nalerts: {kafka: [{brokers: ['h:9092'], tlsInsecure: true}]}", "alerts.kafka[0].tlsInsecure", "needs tls"},
		{"analytics: {}\nalerts: {kafka: [{brokers: ['h:9092'], timeout: 500ms}]}", "alerts.kafka[0].timeout", "at least 1s"},
		{"analytics: {}\nalerts: {kafka: [{brokers: ['h:9092'], queueLen: -1}]}", "alerts.kafka[0].queueLen", "out of range"},
		{"analytics: {}\nalerts: {kafka: [{brokers: ['h:9092']}, {brokers: ['h:9092'], clientId: \"a\\nb\"}]}", "alerts.kafka[1]", "client id"},
		{"alerts: {snapshots: -2}", "alerts.snapshots", "-1 (none)"},
		{"alerts: {snapshotQuality: 101}", "alerts.snapshotQuality", "1-100"},
		{"cameras:\n  - {id: c, url: rtsp://h/x, analytics: {fps: 2}}", "cameras[0].analytics", "needs the top-level analytics section"},
		{"analytics: {}\ncameras:\n  - {id: c, url: rtsp://h/x, analytics: {fps: 500}}", "cameras[0].analytics.fps", "out of range"},
		{"analytics: {}\ncameras:\n  - {id: c, url: rtsp://h/x, analytics: {forceEvery: -2s}}", "cameras[0].analytics.forceEvery", "negative"},
		{"analytics: {}\ncameras:\n  - {id: c, url: rtsp://h/x, analytics: {decoder: gpu}}", "cameras[0].analytics.decoder", "unknown accelerator"},
		{"analytics: {}\ncameras:\n  - {id: c, url: rtsp://h/x, analytics: {scoreThreshold: 1.5}}", "cameras[0].analytics.scoreThreshold", "0..1"},
		{"analytics: {}\ncameras:\n  - {id: c, url: rtsp://h/x, analytics: {classes: [person, '']}}", "cameras[0].analytics.classes[1]", "empty"},
		{"analytics: {classes: [person, car]}\ncameras:\n  - {id: c, url: rtsp://h/x, analytics: {classes: [dog]}}", "cameras[0].analytics.classes[0]", "not in analytics.classes"},
		{"analytics: {}\ncameras:\n  - {id: c, url: rtsp://h/x, analytics: {fsp: 2}}", "cameras[0].analytics.fsp", "unknown key"},
		{"analytics: {}\n" + cam + "      - {id: a, type: zone, polygon: [[0,0],[1,0],[1,1]]}\n    analytics: {enabled: false}", "cameras[0].rules", "turns off"},
		{cam + "      - {id: a, type: zone, polygon: [[0,0],[1,0]]}", "cameras[0].rules[0].polygon", "at least 3 points"},
		{cam + "      - {id: a, type: line, line: [[0,0],[2,1]]}", "cameras[0].rules[0].line[1]", "0..1"},
		{cam + "      - {id: a, type: circle}", "cameras[0].rules[0].type", "unknown"},
		{cam + "      - {id: a, type: zone, polygon: [[0,0],[1,0],[1,1]], colour: red}", "cameras[0].rules[0].colour", "unknown key"},
	}
	for _, c := range cases {
		_, err := ParseConfig([]byte(noAuth+c.yaml+"\n"), "/")
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Key != c.key || !strings.Contains(ce.Msg, c.msg) {
			t.Errorf("%q: got %v (key %q), want key %q with %q", c.yaml, err, keyOf(ce), c.key, c.msg)
		}
		if err != nil && strings.Contains(err.Error(), "pw123") {
			t.Errorf("%q: the error repeats a credential: %v", c.yaml, err)
		}
	}
}

func keyOf(ce *ConfigError) string {
	if ce == nil {
		return ""
	}
	return ce.Key
}

func TestAnalyticsEnv(t *testing.T) {
	cfg, _ := ParseConfig([]byte(noAuth), "/")
	err := applyEnv(cfg, []string{"SIGHTLINE_ANALYTICS_MODEL=/m.onnx", "SIGHTLINE_ANALYTICS_ONNXLIBRARY=/l.so", "SIGHTLINE_ANALYTICS_FPS=2"})
	if err != nil || !cfg.Analytics.On() || cfg.Analytics.Model != "/m.onnx" || cfg.Analytics.ONNXLibrary != "/l.so" || cfg.Analytics.FPS != 2 {
		t.Fatalf("%+v %v", cfg.Analytics, err)
	}
	if err := applyEnv(cfg, []string{"SIGHTLINE_ANALYTICS_MODLE=x"}); err == nil || !strings.Contains(err.Error(), "SIGHTLINE_ANALYTICS_MODEL") {
		t.Fatalf("typo accepted: %v", err)
	}
	if err := applyEnv(cfg, []string{"SIGHTLINE_ANALYTICS_ENABLED=false"}); err != nil || cfg.Analytics.On() {
		t.Fatalf("disable: %v", err)
	}
}

// A camera's analytics keys override the section's, key by key; enabled: false turns it off alone.
func TestCameraAnalyticsOverrides(t *testing.T) {
	cfg, err := ParseConfig([]byte(noAuth+`
analytics: {fps: 5, motionGate: true, forceEvery: 3s, decoder: software, classes: [person, car, bicycle]}
cameras:
  - {id: plain, url: rtsp://127.0.0.1/a}
  - id: yard
    url: rtsp://127.0.0.1/b
    analytics: {fps: 1, motionGate: false, keyframesOnly: true, decoder: auto, classes: [car], scoreThreshold: 0.6}
  - {id: lobby, url: rtsp://127.0.0.1/c, analytics: {forceEvery: 10s}}
  - {id: off, url: rtsp://127.0.0.1/d, analytics: {enabled: false}}
`), "/")
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Analytics
	plain, yard, lobby, off := cfg.Cameras[0], cfg.Cameras[1], cfg.Cameras[2], cfg.Cameras[3]
	if s := plain.samplerConfig(a); s.FPS != 5 || !s.MotionGate || s.ForceEvery != 3*time.Second || s.KeyframesOnly || plain.decoder(a) != "software" {
		t.Errorf("plain: %+v %q", s, plain.decoder(a))
	}
	if s := yard.samplerConfig(a); s.FPS != 1 || s.MotionGate || s.ForceEvery != 3*time.Second || !s.KeyframesOnly || yard.decoder(a) != "auto" {
		t.Errorf("yard: %+v %q", s, yard.decoder(a))
	}
	if s := lobby.samplerConfig(a); s.FPS != 5 || !s.MotionGate || s.ForceEvery != 10*time.Second {
		t.Errorf("lobby: %+v", s)
	}
	for _, c := range []CameraConfig{plain, yard, lobby} {
		if !c.analyticsOn(a) {
			t.Errorf("%s: analytics off", c.ID)
		}
	}
	if off.analyticsOn(a) {
		t.Error("off: analytics on")
	}
	// A camera may turn analytics off without the section (nothing to override).
	if _, err := ParseConfig([]byte(noAuth+"cameras:\n  - {id: c, url: rtsp://h/x, analytics: {enabled: false}}\n"), "/"); err != nil {
		t.Errorf("enabled: false without the section: %v", err)
	}
}

type eventsBody struct {
	Analytics string        `json:"analytics"`
	Events    []rules.Event `json:"events"`
}

// Without a model the gateway analyses a file camera with the motion detector and says so in the
// camera's status and in the log.
func TestAnalyticsMotionOnlyWithoutModel(t *testing.T) {
	clip := testenv.Asset(t, "camera/cam_street_1280x720_25fps.h264")
	g, logs := startGateway(t, fmt.Sprintf("analytics: {fps: 5, model: /nonexistent/model.onnx}\ncameras:\n  - {id: street, url: 'file://%s'}\n", clip))
	waitFor(t, 20*time.Second, "motion analytics", func() bool {
		a := cameraStatus(t, g, "street").Analytics
		return a != nil && a.Analysed >= 5
	})
	a := cameraStatus(t, g, "street").Analytics
	if a.Detector != "motion" || a.Decoder != "software" || a.State != "running" {
		t.Fatalf("analytics %+v", a)
	}
	if !strings.Contains(logs.String(), "running the motion detector only") {
		t.Fatalf("log does not say motion only:\n%s", logs)
	}
	var ev eventsBody
	if code := getJSON(t, "http://"+g.HTTPAddr()+"/api/v1/events", &ev); code != 200 || ev.Analytics != "motion" || ev.Events == nil {
		t.Fatalf("events: %d %+v", code, ev)
	}
	if m, ok := g.cameras.list()[0].meta.Latest(); !ok || m.Camera != "street" {
		t.Fatalf("no meta published: %+v", m)
	}
}

// With the model and ONNX Runtime, a file camera with the rules raises events that
// GET /api/v1/events lists, and the camera's status reports the object detector.
func TestAnalyticsEventsFromModel(t *testing.T) {
	clip := testenv.Asset(t, "camera/cam_street_1280x720_25fps.h264")
	model := testenv.Asset(t, "models/yolox_nano.onnx")
	lib := testenv.ONNXLibrary(t)
	g, _ := startGateway(t, fmt.Sprintf(`analytics: {fps: 5, model: '%s', onnxLibrary: '%s'}
cameras:
  - id: street
    url: 'file://%s'
    rules:
      - {id: walkway, type: zone, polygon: [[0.1,0.5],[0.9,0.5],[0.9,1],[0.1,1]], classes: [person]}
`, model, lib, clip))
	var ev eventsBody
	waitFor(t, 30*time.Second, "a walkway event", func() bool {
		getJSON(t, "http://"+g.HTTPAddr()+"/api/v1/events?camera=street&rule=walkway&limit=5", &ev)
		return len(ev.Events) > 0
	})
	if ev.Analytics != "onnx" || ev.Events[0].Camera != "street" || ev.Events[0].Rule != "walkway" || ev.Events[0].Label != "person" {
		t.Fatalf("events %+v", ev)
	}
	a := cameraStatus(t, g, "street").Analytics
	if a == nil || a.Detector != "onnx" || a.Analysed == 0 || a.InferenceMs <= 0 {
		t.Fatalf("analytics %+v", a)
	}
	if code := getJSON(t, "http://"+g.HTTPAddr()+"/api/v1/events?limit=0", &map[string]any{}); code != 400 {
		t.Fatalf("limit=0: %d", code)
	}
}

// Three cameras on the street clip through the real model: one as the section says, one that keeps only
// persons scoring 0.5 or more on keyframes, one with analytics off. The unfiltered camera sees the clip's
// cars; the filtered one's Meta holds only persons at or above its threshold; the third has no pipeline.
func TestCameraAnalyticsFiltersTheModel(t *testing.T) {
	clip := testenv.Asset(t, "camera/cam_street_1280x720_25fps.h264")
	model := testenv.Asset(t, "models/yolox_nano.onnx")
	lib := testenv.ONNXLibrary(t)
	g, _ := startGateway(t, fmt.Sprintf(`analytics: {fps: 5, model: '%[1]s', onnxLibrary: '%[2]s'}
cameras:
  - {id: all, url: 'file://%[3]s'}
  - {id: people, url: 'file://%[3]s', analytics: {classes: [person], scoreThreshold: 0.5, keyframesOnly: true}}
  - {id: off, url: 'file://%[3]s', analytics: {enabled: false}}
`, model, lib, clip))
	labels := func(id string) func() map[string]float32 { // label -> lowest score seen
		cam, ok := g.cameras.get(id)
		if !ok {
			t.Fatalf("no camera %s", id)
		}
		r := cam.meta.NewReader(1000)
		t.Cleanup(r.Close)
		seen := map[string]float32{}
		return func() map[string]float32 {
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 0)
				m, err := r.Read(ctx)
				cancel()
				if err != nil {
					return seen
				}
				for _, o := range m.Objects {
					if low, ok := seen[o.Label]; !ok || o.Score < low {
						seen[o.Label] = o.Score
					}
				}
			}
		}
	}
	all, people := labels("all"), labels("people")
	waitFor(t, 60*time.Second, "persons and a vehicle on both cameras' Meta", func() bool {
		a, p := all(), people()
		_, person := p["person"]
		return person && (a["car"] > 0 || a["truck"] > 0 || a["bus"] > 0) && cameraStatus(t, g, "people").Analytics.Analysed >= 3
	})
	for label, low := range people() {
		if label != "person" || low < 0.5 {
			t.Errorf("people camera reported %s at %.2f (keeps persons at 0.5 and above)", label, low)
		}
	}
	if st := cameraStatus(t, g, "people").Analytics; st == nil || !st.KeyframesOnly || st.Detector != "onnx" {
		t.Errorf("people status %+v", st)
	}
	if st := cameraStatus(t, g, "all").Analytics; st == nil || st.KeyframesOnly {
		t.Errorf("all status %+v", st)
	}
	if st := cameraStatus(t, g, "off").Analytics; st != nil {
		t.Errorf("off camera runs analytics: %+v", st)
	}
	waitFor(t, 10*time.Second, "the off camera's video", func() bool { return cameraStatus(t, g, "off").Status.State == "streaming" })
}

// histCount returns the sample count of histogram name's series whose labels include want.
func histCount(fams map[string]*dto.MetricFamily, name string, want map[string]string) (uint64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		for k, v := range want {
			found := false
			for _, l := range m.GetLabel() {
				found = found || (l.GetName() == k && l.GetValue() == v)
			}
			if !found {
				continue next
			}
		}
		if m.Histogram != nil {
			return m.Histogram.GetSampleCount(), true
		}
	}
	return 0, false
}

// With the model, /metrics (parsed with the Prometheus text parser) times every analytics stage of the
// camera and counts its analysed frames, detections by class and rule events; decode and inference
// counts keep rising while the camera plays.
func TestAnalyticsMetrics(t *testing.T) {
	clip := testenv.Asset(t, "camera/cam_street_1280x720_25fps.h264")
	model := testenv.Asset(t, "models/yolox_nano.onnx")
	lib := testenv.ONNXLibrary(t)
	g, _ := startGateway(t, fmt.Sprintf(`analytics: {fps: 5, model: '%s', onnxLibrary: '%s'}
cameras:
  - id: street
    url: 'file://%s'
    rules:
      - {id: walkway, type: zone, polygon: [[0.1,0.5],[0.9,0.5],[0.9,1],[0.1,1]], classes: [person]}
`, model, lib, clip))
	stage := func(s string) map[string]string { return map[string]string{"camera": "street", "stage": s} }
	cam := map[string]string{"camera": "street"}
	waitFor(t, 30*time.Second, "a walkway event counted", func() bool {
		v, _ := value(scrape(t, g, ""), "sightline_events_total", map[string]string{"camera": "street", "rule": "walkway"})
		return v > 0
	})
	first := scrape(t, g, "")
	for _, s := range []string{"decode", "preprocess", "inference", "track"} {
		if n, ok := histCount(first, "sightline_stage_seconds", stage(s)); !ok || n == 0 {
			t.Errorf("stage %s: count %d (present %v)", s, n, ok)
		}
	}
	if v, _ := value(first, "sightline_inference_total", cam); v == 0 {
		t.Error("sightline_inference_total is 0")
	}
	if v, _ := value(first, "sightline_detections_total", map[string]string{"camera": "street", "class": "person"}); v == 0 {
		t.Error("no person detections counted")
	}
	var second map[string]*dto.MetricFamily
	waitFor(t, 10*time.Second, "decode and inference counts rising", func() bool {
		second = scrape(t, g, "")
		for _, s := range []string{"decode", "inference"} {
			a, _ := histCount(first, "sightline_stage_seconds", stage(s))
			if b, _ := histCount(second, "sightline_stage_seconds", stage(s)); b <= a {
				return false
			}
		}
		a, _ := value(first, "sightline_inference_total", cam)
		b, _ := value(second, "sightline_inference_total", cam)
		return b > a
	})
	// Every analysed frame went through inference and tracking once.
	inf, _ := histCount(second, "sightline_stage_seconds", stage("inference"))
	trk, _ := histCount(second, "sightline_stage_seconds", stage("track"))
	if n, _ := value(second, "sightline_inference_total", cam); inf == 0 || trk > inf || uint64(n) > inf {
		t.Errorf("inference %d, track %d, analysed %v", inf, trk, n)
	}
}
