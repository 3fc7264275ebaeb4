package gateway

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"sightline/alerts"
	"sightline/analytics/pipeline"
	"sightline/codec"
	"sightline/overlay"
)

// AlertsConfig configures what happens to rule events besides the feeds and the events API.
type AlertsConfig struct {
	// PublicURL (https://nvr.example.com) makes the snapshot URLs in events absolute, which webhook
	// receivers need; without it they are paths (/api/v1/events/{id}/snapshot.jpg).
	PublicURL string `yaml:"publicURL"`
	// Snapshots is how many event snapshots (annotated JPEGs of the event's frame) are kept in memory,
	// default 200; -1 keeps none (events then carry no snapshot URL).
	Snapshots int `yaml:"snapshots"`
	// SnapshotQuality is their JPEG quality, 1-100 (default 80).
	SnapshotQuality int `yaml:"snapshotQuality"`
	// Webhooks receive every matching event as a JSON POST.
	Webhooks []WebhookConfig `yaml:"webhooks"`
	// MQTT brokers receive every matching event on <topicPrefix>/<camera>/events.
	MQTT []MQTTConfig `yaml:"mqtt"`
	// Kafka clusters receive every matching event as one record on their topic, keyed by camera.
	Kafka []KafkaConfig `yaml:"kafka"`
}

// KafkaConfig is one Kafka sink (see alerts.KafkaConfig).
type KafkaConfig struct {
	Name string `yaml:"name"`
	// Brokers: bootstrap brokers, host:port each.
	Brokers []string `yaml:"brokers"`
	// Topic (default sightline.events); ClientID (default sightline).
	Topic    string `yaml:"topic"`
	ClientID string `yaml:"clientId"`
	// SASL: mechanism plain, scram-sha-256 or scram-sha-512 with username and password (optional).
	SASL KafkaSASLConfig `yaml:"sasl"`
	// TLS dials the brokers with TLS; TLSInsecure accepts any certificate.
	TLS         bool `yaml:"tls"`
	TLSInsecure bool `yaml:"tlsInsecure"`
	// Acks: all (default, idempotent producer), leader or none.
	Acks string `yaml:"acks"`
	// Cameras, Rules and Classes filter the events produced (empty: all).
	Cameras []string `yaml:"cameras"`
	Rules   []string `yaml:"rules"`
	Classes []string `yaml:"classes"`
	// QueueLen events wait while the cluster is away (default 100); Timeout bounds a connection check and
	// the delivery of one event, retries included (default 5s, at least 1s).
	QueueLen int      `yaml:"queueLen"`
	Timeout  Duration `yaml:"timeout"`
}

// KafkaSASLConfig is a Kafka sink's SASL authentication.
type KafkaSASLConfig struct {
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	Password  string `yaml:"password"`
}

// alertsConfig converts the YAML form.
func (k KafkaConfig) alertsConfig(log *slog.Logger) alerts.KafkaConfig {
	return alerts.KafkaConfig{Name: k.Name, Brokers: k.Brokers, Topic: k.Topic, ClientID: k.ClientID,
		SASL: alerts.KafkaSASL{Mechanism: k.SASL.Mechanism, Username: k.SASL.Username, Password: k.SASL.Password},
		TLS:  k.TLS, TLSInsecure: k.TLSInsecure, Acks: k.Acks,
		Filter:   alerts.Filter{Cameras: k.Cameras, Rules: k.Rules, Classes: k.Classes},
		QueueLen: k.QueueLen, Timeout: time.Duration(k.Timeout), Logger: log}
}

// MQTTConfig is one MQTT sink (see alerts.MQTTConfig).
type MQTTConfig struct {
	Name string `yaml:"name"`
	// Broker: tcp:// or mqtt:// (1883), ssl://, tls:// or mqtts:// (8883), ws:// or wss://.
	Broker   string `yaml:"broker"`
	ClientID string `yaml:"clientId"`
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// TopicPrefix (default sightline): events on <prefix>/<camera>/events, availability on
	// <prefix>/available.
	TopicPrefix string `yaml:"topicPrefix"`
	// QoS 0 or 1 (default 1); Retain keeps each camera's last event on the broker.
	QoS    *int `yaml:"qos"`
	Retain bool `yaml:"retain"`
	// Cameras, Rules and Classes filter the events published (empty: all).
	Cameras []string `yaml:"cameras"`
	Rules   []string `yaml:"rules"`
	Classes []string `yaml:"classes"`
	// QueueLen events wait while the broker is away (default 100); Timeout bounds a connection attempt
	// and one publish (default 5s).
	QueueLen    int      `yaml:"queueLen"`
	Timeout     Duration `yaml:"timeout"`
	TLSInsecure bool     `yaml:"tlsInsecure"`
}

// alertsConfig converts the YAML form (validated: qos is 0 or 1).
func (m MQTTConfig) alertsConfig(log *slog.Logger) alerts.MQTTConfig {
	var qos *byte
	if m.QoS != nil && *m.QoS >= 0 && *m.QoS <= 1 {
		q := byte(*m.QoS)
		qos = &q
	}
	return alerts.MQTTConfig{Name: m.Name, Broker: m.Broker, ClientID: m.ClientID, Username: m.Username, Password: m.Password,
		TopicPrefix: m.TopicPrefix, QoS: qos, Retain: m.Retain,
		Filter:   alerts.Filter{Cameras: m.Cameras, Rules: m.Rules, Classes: m.Classes},
		QueueLen: m.QueueLen, Timeout: time.Duration(m.Timeout), TLSInsecure: m.TLSInsecure, Logger: log}
}

// WebhookConfig is one webhook sink (see alerts.WebhookConfig for the delivery rules).
type WebhookConfig struct {
	Name string `yaml:"name"`
	URL  string `yaml:"url"`
	// Cameras, Rules and Classes filter the events sent (empty: all).
	Cameras []string          `yaml:"cameras"`
	Rules   []string          `yaml:"rules"`
	Classes []string          `yaml:"classes"`
	Headers map[string]string `yaml:"headers"`
	// Secret signs each body (X-Sightline-Signature: sha256=<hex HMAC-SHA256>).
	Secret string `yaml:"secret"`
	// Timeout per attempt (default 5s); Retries after a failed attempt (default 5); Backoff the first wait
	// (default 500ms), doubling up to MaxBackoff (default 30s); QueueLen events waiting (default 100).
	Timeout    Duration `yaml:"timeout"`
	Retries    *int     `yaml:"retries"`
	Backoff    Duration `yaml:"backoff"`
	MaxBackoff Duration `yaml:"maxBackoff"`
	QueueLen   int      `yaml:"queueLen"`
}

const (
	defaultSnapshots       = 200
	defaultSnapshotQuality = 80
	defaultWebhookRetries  = 5
	// snapshotJobs is how many event frames may wait for their JPEG; more are skipped (the events still
	// go out, their snapshot answers 404).
	snapshotJobs = 4
	// snapshotWait bounds how long GET .../snapshot.jpg waits for a snapshot still being encoded.
	snapshotWait = 3 * time.Second
)

func (cfg *Config) validateAlerts() error {
	a := cfg.Alerts
	if a.PublicURL != "" {
		u, err := url.Parse(a.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
			return keyErr("alerts.publicURL", "%q is not a base URL like https://nvr.example.com", a.PublicURL)
		}
	}
	if a.Snapshots < -1 || a.Snapshots > 100000 {
		return keyErr("alerts.snapshots", "want -1 (none), 0 (default 200) or up to 100000")
	}
	if a.SnapshotQuality < 0 || a.SnapshotQuality > 100 {
		return keyErr("alerts.snapshotQuality", "want 1-100 (0: default 80)")
	}
	if len(a.Webhooks) > 0 && !cfg.Analytics.On() {
		return keyErr("alerts.webhooks", "webhooks need the analytics section (events come from its rules)")
	}
	if len(a.MQTT) > 0 && !cfg.Analytics.On() {
		return keyErr("alerts.mqtt", "MQTT sinks need the analytics section (events come from its rules)")
	}
	for i, m := range a.MQTT {
		key := fmt.Sprintf("alerts.mqtt[%d]", i)
		if m.QoS != nil && (*m.QoS < 0 || *m.QoS > 1) {
			return keyErr(key+".qos", "want 0 or 1")
		}
		if m.QueueLen < 0 || m.QueueLen > 100000 {
			return keyErr(key+".queueLen", "out of range (want a positive value, or 0 for the default)")
		}
		if m.Timeout < 0 {
			return keyErr(key+".timeout", "negative")
		}
		if _, err := alerts.NewMQTT(m.alertsConfig(nil)); err != nil {
			return keyErr(key, "%v", err)
		}
	}
	if len(a.Kafka) > 0 && !cfg.Analytics.On() {
		return keyErr("alerts.kafka", "Kafka sinks need the analytics section (events come from its rules)")
	}
	for i, k := range a.Kafka {
		if err := validateKafka(fmt.Sprintf("alerts.kafka[%d]", i), k); err != nil {
			return err
		}
	}
	names := map[string]int{}
	for i, w := range a.Webhooks {
		key := fmt.Sprintf("alerts.webhooks[%d]", i)
		if w.Retries != nil && (*w.Retries < 0 || *w.Retries > 100) {
			return keyErr(key+".retries", "want 0 to 100")
		}
		checks := []struct {
			k   string
			bad bool
		}{
			{"timeout", w.Timeout < 0}, {"backoff", w.Backoff < 0}, {"maxBackoff", w.MaxBackoff < 0},
			{"queueLen", w.QueueLen < 0 || w.QueueLen > 100000},
		}
		for _, c := range checks {
			if c.bad {
				return keyErr(key+"."+c.k, "out of range (want a positive value, or 0 for the default)")
			}
		}
		if _, err := alerts.NewWebhook(w.alertsConfig(nil, nil)); err != nil {
			return keyErr(key+".url", "%v", err)
		}
		if w.Name != "" {
			if j, dup := names[w.Name]; dup {
				return keyErr(key+".name", "%q is already used by alerts.webhooks[%d]", w.Name, j)
			}
			names[w.Name] = i
		}
	}
	return nil
}

// validateKafka checks one Kafka sink, naming the key at fault.
func validateKafka(key string, k KafkaConfig) error {
	if len(k.Brokers) == 0 {
		return keyErr(key+".brokers", "empty (want host:port, at least one)")
	}
	for j, b := range k.Brokers {
		if _, err := alerts.NewKafka(alerts.KafkaConfig{Brokers: []string{b}}); err != nil {
			return keyErr(fmt.Sprintf("%s.brokers[%d]", key, j), "%v", err)
		}
	}
	if k.QueueLen < 0 || k.QueueLen > 100000 {
		return keyErr(key+".queueLen", "out of range (want a positive value, or 0 for the default)")
	}
	if k.Timeout < 0 || k.Timeout > 0 && time.Duration(k.Timeout) < time.Second {
		return keyErr(key+".timeout", "want at least 1s (0: the default 5s)")
	}
	switch strings.ToLower(k.Acks) {
	case "", "all", "leader", "none":
	default:
		return keyErr(key+".acks", "%q: want all, leader or none", k.Acks)
	}
	if k.Topic != "" {
		if _, err := alerts.NewKafka(alerts.KafkaConfig{Brokers: k.Brokers, Topic: k.Topic}); err != nil {
			return keyErr(key+".topic", "%v", err)
		}
	}
	if k.TLSInsecure && !k.TLS {
		return keyErr(key+".tlsInsecure", "needs tls: true")
	}
	if _, err := alerts.NewKafka(alerts.KafkaConfig{Brokers: k.Brokers, SASL: alerts.KafkaSASL{Mechanism: k.SASL.Mechanism,
		Username: k.SASL.Username, Password: k.SASL.Password}}); err != nil {
		return keyErr(key+".sasl", "%v", err)
	}
	if _, err := alerts.NewKafka(k.alertsConfig(nil)); err != nil {
		return keyErr(key, "%v", err)
	}
	return nil
}

// alertsConfig converts the YAML form.
func (w WebhookConfig) alertsConfig(client *http.Client, log *slog.Logger) alerts.WebhookConfig {
	retries := defaultWebhookRetries
	if w.Retries != nil {
		retries = *w.Retries
	}
	return alerts.WebhookConfig{Name: w.Name, URL: w.URL, Filter: alerts.Filter{Cameras: w.Cameras, Rules: w.Rules, Classes: w.Classes},
		Headers: w.Headers, Secret: w.Secret, Timeout: time.Duration(w.Timeout), Retries: retries,
		Backoff: time.Duration(w.Backoff), MaxBackoff: time.Duration(w.MaxBackoff), QueueLen: w.QueueLen,
		Client: client, Logger: log}
}

// snapshotStore turns event frames into annotated JPEGs off the pipeline's goroutine and keeps the
// most recent ones. An event's snapshot URL is handed out before its JPEG exists; a request for it waits
// (bounded) for the encoder.
type snapshotStore struct {
	keep    int
	quality int
	log     *slog.Logger
	jobs    chan snapshotJob

	mu      sync.Mutex
	byID    map[string]*snapshot
	order   []string // ids, oldest first
	skipped uint64
}

// snapshot is one frame's JPEG, shared by the events of that frame.
type snapshot struct {
	done chan struct{} // closed when jpeg or err is set
	jpeg []byte
	err  error
}

type snapshotJob struct {
	frame *codec.Frame // a reference the worker releases
	scene overlay.Scene
	snap  *snapshot
}

func newSnapshotStore(keep, quality int, log *slog.Logger) *snapshotStore {
	return &snapshotStore{keep: keep, quality: quality, log: log, jobs: make(chan snapshotJob, snapshotJobs), byID: map[string]*snapshot{}}
}

// run encodes queued snapshots until ctx ends; then it fails the ones left.
func (s *snapshotStore) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			for {
				select {
				case j := <-s.jobs:
					j.frame.Release()
					j.snap.err = fmt.Errorf("server closing")
					close(j.snap.done)
				default:
					return
				}
			}
		case j := <-s.jobs:
			j.snap.jpeg, j.snap.err = renderSnapshot(j.frame, j.scene, s.quality)
			j.frame.Release()
			if j.snap.err != nil {
				s.log.Warn("event snapshot failed", "error", j.snap.err)
			}
			close(j.snap.done)
		}
	}
}

// renderSnapshot draws the scene on the frame (a writable copy when the decoder still references it)
// and encodes it.
func renderSnapshot(f *codec.Frame, sc overlay.Scene, quality int) ([]byte, error) {
	if err := f.MakeWritable(); err != nil {
		return nil, fmt.Errorf("snapshot: copy frame: %w", err)
	}
	im, err := overlay.FrameImage(f)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	im.Draw(sc, overlay.StyleFor(f.Height))
	var buf bytes.Buffer
	if err := codec.EncodeJPEG(&buf, f, quality); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return buf.Bytes(), nil
}

// add queues b's frame for a snapshot that ids will share; false when the encoder is busy (the frame is
// skipped: an event burst must never hold frames or time).
func (s *snapshotStore) add(ids []string, b pipeline.EventBatch, zones []overlay.Zone) bool {
	ref, err := b.Frame.Ref()
	if err != nil {
		return false
	}
	sc := overlay.Scene{Zones: zones, Boxes: make([]overlay.Box, 0, len(b.Tracks))}
	for _, t := range b.Tracks {
		sc.Boxes = append(sc.Boxes, overlay.Box{ID: t.ID, Class: t.Class, Label: t.Label, Score: t.Score,
			X: t.Box.X, Y: t.Box.Y, W: t.Box.W, H: t.Box.H})
	}
	snap := &snapshot{done: make(chan struct{})}
	select {
	case s.jobs <- snapshotJob{frame: ref, scene: sc, snap: snap}:
	default:
		ref.Release()
		s.mu.Lock()
		s.skipped++
		s.mu.Unlock()
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		s.byID[id] = snap
		s.order = append(s.order, id)
	}
	for len(s.order) > s.keep {
		delete(s.byID, s.order[0])
		s.order = s.order[1:]
	}
	return true
}

// get waits (until ctx ends or snapshotWait) for id's JPEG.
func (s *snapshotStore) get(ctx context.Context, id string) ([]byte, bool, error) {
	s.mu.Lock()
	snap, ok := s.byID[id]
	s.mu.Unlock()
	if !ok {
		return nil, false, nil
	}
	t := time.NewTimer(snapshotWait)
	defer t.Stop()
	select {
	case <-snap.done:
		return snap.jpeg, true, snap.err
	case <-ctx.Done():
		return nil, true, ctx.Err()
	case <-t.C:
		return nil, true, fmt.Errorf("snapshot still being encoded after %v", snapshotWait)
	}
}

// publishEvents turns one analysed frame's rule events into alerts: ids, a snapshot of the frame (when
// kept) and publication on the hub. It runs on the pipeline's goroutine and never blocks.
func (rt *analyticsRuntime) publishEvents(b pipeline.EventBatch, zones []overlay.Zone) {
	ids := make([]string, len(b.Events))
	for i := range ids {
		ids[i] = rt.hub.NextID()
	}
	withSnapshot := rt.snapshots != nil && b.Frame != nil && rt.snapshots.add(ids, b, zones)
	for i, e := range b.Events {
		ev := alerts.FromRule(e, b.RTPTime)
		ev.ID = ids[i]
		if withSnapshot {
			ev.Snapshot = rt.publicURL + "/api/v1/events/" + url.PathEscape(ev.ID) + "/snapshot.jpg"
		}
		rt.hub.Publish(ev)
	}
}

// eventSnapshot answers GET /api/v1/events/{id}/snapshot.jpg: the event's frame with the boxes and zones
// drawn, as a JPEG.
func (g *Gateway) eventSnapshot(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if g.analytics == nil || g.analytics.snapshots == nil {
		writeError(w, http.StatusNotFound, "no_snapshot", "event snapshots are off (no analytics section, or alerts.snapshots: -1)")
		return
	}
	jpeg, ok, err := g.analytics.snapshots.get(r.Context(), id)
	switch {
	case !ok:
		writeError(w, http.StatusNotFound, "no_snapshot", "no snapshot for event "+quote(id)+" (unknown, too old, or skipped while the encoder was busy)")
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "snapshot_failed", "snapshot of event "+quote(id)+": "+err.Error())
	default:
		w.Header().Set("Content-Type", "image/jpeg")
		w.Header().Set("Cache-Control", "private, max-age=86400, immutable")
		_, _ = w.Write(jpeg)
	}
}

// getEvent answers GET /api/v1/events/{id}.
func (g *Gateway) getEvent(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if g.analytics != nil {
		if e, ok := g.analytics.hub.Get(id); ok {
			writeJSON(w, http.StatusOK, e)
			return
		}
	}
	writeError(w, http.StatusNotFound, "unknown_event", "no recent event with id "+quote(id))
}

// listSinks answers GET /api/v1/alerts/sinks: each webhook's, MQTT sink's and Kafka sink's counters.
func (g *Gateway) listSinks(w http.ResponseWriter, r *http.Request) {
	hooks, brokers, clusters := []alerts.WebhookStats{}, []alerts.MQTTStats{}, []alerts.KafkaStats{}
	if g.analytics != nil {
		for _, h := range g.analytics.webhooks {
			hooks = append(hooks, h.Stats())
		}
		for _, m := range g.analytics.mqtt {
			brokers = append(brokers, m.Stats())
		}
		for _, k := range g.analytics.kafka {
			clusters = append(clusters, k.Stats())
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"webhooks": hooks, "mqtt": brokers, "kafka": clusters})
}
