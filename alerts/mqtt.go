package alerts

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"sightline/media"
)

// MQTT defaults.
const (
	DefaultMQTTTopicPrefix = "sightline"
	DefaultMQTTQoS         = 1
	DefaultMQTTQueueLen    = 100
	DefaultMQTTTimeout     = 5 * time.Second
	// A lost or refused connection is tried again after mqttMinBackoff, doubling up to mqttMaxBackoff
	// (±20 % jitter); a connection that held for mqttStable starts over.
	mqttMinBackoff = 500 * time.Millisecond
	mqttMaxBackoff = 30 * time.Second
	mqttStable     = 10 * time.Second
	// mqttQuiesce is how long a clean disconnect waits for the DISCONNECT packet to go out.
	mqttQuiesce = 250 // ms
)

// MQTTConfig configures one MQTT sink.
type MQTTConfig struct {
	// Name identifies the sink in status and logs (default: the broker's host).
	Name string
	// Broker is the broker's URL: tcp:// or mqtt:// (port 1883 by default), ssl://, tls:// or mqtts://
	// (TLS, port 8883 by default), ws:// or wss:// (MQTT over WebSocket, e.g. ws://host:9001/mqtt).
	// Credentials in the URL (user:pass@) are used when Username is empty, and never shown.
	Broker string
	// ClientID identifies this client to the broker (default "sightline-<12 random hex digits>").
	ClientID string
	Username string
	Password string
	// TopicPrefix starts every topic (default "sightline"): events go to <prefix>/<camera>/events,
	// availability ("online"/"offline", retained) to <prefix>/available.
	TopicPrefix string
	// QoS of the event publishes, 0 or 1 (nil: 1). Availability is always published with QoS 1.
	QoS *byte
	// Retain marks event publishes retained (the broker keeps the last event of each camera).
	Retain bool
	// Filter selects the events published (empty: all).
	Filter Filter
	// QueueLen is how many events may wait while the broker is away or slow (default 100); when it is
	// full the oldest waiting event is dropped and counted.
	QueueLen int
	// Timeout bounds one connection attempt and the wait for one publish (default 5s).
	Timeout time.Duration
	// TLSInsecure accepts any broker certificate (a self-signed broker); TLS schemes only.
	TLSInsecure bool
	Logger      *slog.Logger
}

// MQTTStats is what an MQTT sink has done so far.
type MQTTStats struct {
	Name string `json:"name"`
	// Broker is the broker's URL without credentials or query.
	Broker    string `json:"broker"`
	Connected bool   `json:"connected"`
	// Published events were accepted by the broker (QoS 1) or written to it (QoS 0); Failed ones were not
	// (not connected any more, refused or timed out; never retried); Dropped ones never tried (queue full).
	Published     uint64    `json:"published"`
	Failed        uint64    `json:"failed"`
	Dropped       uint64    `json:"dropped"`
	LastError     string    `json:"lastError,omitempty"`
	LastPublished time.Time `json:"lastPublished,omitzero"`
}

// MQTT publishes events to an MQTT broker, in order, one at a time, keeping its connection up. It never
// blocks the publisher: events wait in its own bounded subscription, also while the broker is away.
type MQTT struct {
	cfg       MQTTConfig
	qos       byte
	broker    *url.URL // without credentials: what paho dials
	redacted  string   // broker URL as shown (no credentials)
	available string   // <prefix>/available
	log       *slog.Logger

	mu    sync.Mutex
	stats MQTTStats
	sub   *media.FanoutReader[Event]
}

// NewMQTT checks cfg and fills in defaults. Its errors never contain the password.
func NewMQTT(cfg MQTTConfig) (*MQTT, error) {
	u, err := url.Parse(cfg.Broker)
	if err != nil {
		// url.Error repeats the whole URL, credentials included; keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("mqtt broker: cannot parse: %w", err)
	}
	if u.User != nil {
		if cfg.Username == "" {
			cfg.Username = u.User.Username()
			cfg.Password, _ = u.User.Password()
		}
		u.User = nil
	}
	tlsScheme := false
	switch u.Scheme {
	case "tcp", "mqtt":
		if u.Port() == "" && u.Hostname() != "" {
			u.Host = net.JoinHostPort(u.Hostname(), "1883")
		}
	case "ssl", "tls", "mqtts":
		tlsScheme = true
		if u.Port() == "" && u.Hostname() != "" {
			u.Host = net.JoinHostPort(u.Hostname(), "8883")
		}
	case "ws":
	case "wss":
		tlsScheme = true
	default:
		return nil, fmt.Errorf("mqtt broker %q: want tcp://, mqtt://, ssl://, tls://, mqtts://, ws:// or wss://", redactURL(u))
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("mqtt broker %q: no host", redactURL(u))
	}
	if (u.Scheme != "ws" && u.Scheme != "wss") && (strings.Trim(u.Path, "/") != "" || u.RawQuery != "") {
		return nil, fmt.Errorf("mqtt broker %q: a path or query only makes sense for ws:// and wss://", redactURL(u))
	}
	if cfg.TLSInsecure && !tlsScheme {
		return nil, fmt.Errorf("mqtt broker %q: tlsInsecure needs a TLS scheme (ssl://, mqtts://, wss://)", redactURL(u))
	}
	if cfg.Password != "" && cfg.Username == "" {
		return nil, errors.New("mqtt: a password without a username")
	}
	qos := byte(DefaultMQTTQoS)
	if cfg.QoS != nil {
		qos = *cfg.QoS
	}
	if qos > 1 {
		return nil, fmt.Errorf("mqtt qos %d: want 0 or 1", qos)
	}
	if cfg.TopicPrefix == "" {
		cfg.TopicPrefix = DefaultMQTTTopicPrefix
	}
	if strings.ContainsAny(cfg.TopicPrefix, "+#\x00") || strings.HasPrefix(cfg.TopicPrefix, "/") ||
		strings.HasSuffix(cfg.TopicPrefix, "/") || strings.Contains(cfg.TopicPrefix, "//") {
		return nil, fmt.Errorf("mqtt topic prefix %q: no wildcards (+ #), no empty levels, no leading or trailing /", cfg.TopicPrefix)
	}
	if len(cfg.ClientID) > 65535 || len(cfg.TopicPrefix) > 60000 {
		return nil, errors.New("mqtt: client id or topic prefix too long")
	}
	if cfg.Timeout < 0 || cfg.QueueLen < 0 {
		return nil, errors.New("mqtt: negative timeout or queueLen")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultMQTTTimeout
	}
	if cfg.QueueLen == 0 {
		cfg.QueueLen = DefaultMQTTQueueLen
	}
	if cfg.ClientID == "" {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		cfg.ClientID = "sightline-" + hex.EncodeToString(b) // 22 bytes: every MQTT 3.1.1 broker takes up to 23
	}
	if cfg.Name == "" {
		cfg.Name = u.Hostname()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &MQTT{cfg: cfg, qos: qos, broker: u, redacted: redactURL(u), available: cfg.TopicPrefix + "/available",
		log: cfg.Logger.With("mqtt", cfg.Name)}
	m.stats.Name, m.stats.Broker = cfg.Name, m.redacted
	return m, nil
}

// Stats returns the sink's counters.
func (m *MQTT) Stats() MQTTStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.stats
	if m.sub != nil {
		s.Dropped = m.sub.Dropped()
	}
	return s
}

// EventTopic returns the topic an event of camera is published to.
func (m *MQTT) EventTopic(camera string) string {
	return m.cfg.TopicPrefix + "/" + camera + "/events"
}

// AvailabilityTopic returns the topic of the retained "online"/"offline" message.
func (m *MQTT) AvailabilityTopic() string { return m.available }

// Subscribe attaches the sink to hub now (so no event published after it returns is missed) and returns
// the function that connects and publishes until ctx ends or the hub closes. That function keeps the
// connection up (a refused or lost connection is tried again with backoff; events wait in the queue
// meanwhile), and on its way out publishes "offline" and disconnects cleanly. When it returns, every
// goroutine it started has ended.
func (m *MQTT) Subscribe(hub *Hub) func(ctx context.Context) {
	sub := hub.Subscribe(m.cfg.QueueLen)
	m.mu.Lock()
	m.sub = sub
	m.mu.Unlock()
	return func(ctx context.Context) {
		defer sub.Close()
		backoff := mqttMinBackoff
		for ctx.Err() == nil {
			c, cctx, cancel, err := m.connect(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				m.setError(err)
				m.log.Warn("mqtt: cannot connect", "broker", m.redacted, "error", err, "retryIn", backoff)
				if !sleepCtx(ctx, jitter(backoff)) {
					return
				}
				backoff = min(2*backoff, mqttMaxBackoff)
				continue
			}
			since := time.Now()
			m.setConnected(true)
			m.log.Info("mqtt: connected", "broker", m.redacted)
			if err := m.wait(c.Publish(m.available, 1, true, "online")); err != nil {
				m.setError(fmt.Errorf("publish availability: %w", err))
			}
			hubClosed := m.serve(cctx, sub, c)
			cancel()
			m.setConnected(false)
			if ctx.Err() != nil || hubClosed {
				m.shutdown(c)
				return
			}
			m.log.Warn("mqtt: connection lost", "broker", m.redacted, "error", m.Stats().LastError)
			c.Disconnect(0) // already disconnected: only makes sure paho is done with it
			// A connection that held a while is tried again at once; one that drops right away (a broker
			// that kicks a duplicate client id, say) waits and backs off like a refused one.
			if time.Since(since) >= mqttStable {
				backoff = mqttMinBackoff
				continue
			}
			if !sleepCtx(ctx, jitter(backoff)) {
				return
			}
			backoff = min(2*backoff, mqttMaxBackoff)
		}
	}
}

// connect makes one connection attempt with a fresh client. The context it returns ends with ctx or when
// that connection drops; cancel releases it.
// Reconnecting is the caller's (with a fresh client each time), so that shutting down never waits on a
// reconnect loop of paho's and a publish that was in flight when a connection dropped fails, once.
func (m *MQTT) connect(ctx context.Context) (paho.Client, context.Context, context.CancelFunc, error) {
	cctx, cancel := context.WithCancel(ctx)
	opts := paho.NewClientOptions().
		AddBroker(m.broker.String()).
		SetClientID(m.cfg.ClientID).
		SetUsername(m.cfg.Username).
		SetPassword(m.cfg.Password).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(m.cfg.Timeout).
		SetWriteTimeout(m.cfg.Timeout).
		SetDialer(&net.Dialer{Timeout: m.cfg.Timeout}).
		SetKeepAlive(30*time.Second).
		SetWill(m.available, "offline", 1, true).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			m.setError(fmt.Errorf("connection lost: %w", m.redact(err)))
			cancel()
		})
	if m.broker.Scheme != "tcp" && m.broker.Scheme != "mqtt" && m.broker.Scheme != "ws" {
		opts.SetTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: m.cfg.TLSInsecure}) //nolint:gosec // opt-in for self-signed brokers
	}
	c := paho.NewClient(opts)
	tok := c.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		// The attempt ends by itself within Timeout; wait for it so that no goroutine outlives us.
		<-tok.Done()
	}
	if err := tok.Error(); err != nil {
		cancel()
		return nil, nil, nil, fmt.Errorf("connect to %s: %w", m.redacted, m.redact(err))
	}
	return c, cctx, cancel, nil
}

// serve publishes events until ctx (the connection's) ends, that is until the sink stops or the connection
// drops (the events left wait in sub), or until the hub closes (it then reports true).
func (m *MQTT) serve(ctx context.Context, sub *media.FanoutReader[Event], c paho.Client) bool {
	for {
		e, err := sub.Read(ctx)
		if err != nil {
			return errors.Is(err, media.ErrStreamClosed)
		}
		if m.cfg.Filter.Match(e) {
			m.publish(c, e)
		}
	}
}

// publish sends e once and counts the outcome.
func (m *MQTT) publish(c paho.Client, e Event) {
	body, err := json.Marshal(e)
	if err == nil && (e.Camera == "" || strings.ContainsAny(e.Camera, "/+#\x00")) {
		err = fmt.Errorf("camera id %q is not a safe topic level", e.Camera)
	}
	if err == nil {
		err = m.wait(c.Publish(m.EventTopic(e.Camera), m.qos, m.cfg.Retain, body))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.stats.Failed++
		m.stats.LastError = fmt.Sprintf("publish event %s: %v", e.ID, err)
		return
	}
	m.stats.Published++
	m.stats.LastError = ""
	m.stats.LastPublished = time.Now()
}

// wait waits for tok at most Timeout.
func (m *MQTT) wait(tok paho.Token) error {
	t := time.NewTimer(m.cfg.Timeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return m.redact(tok.Error())
	case <-t.C:
		return fmt.Errorf("no answer from %s within %s", m.redacted, m.cfg.Timeout)
	}
}

// shutdown publishes "offline" (the broker does not send the will after a clean disconnect) and
// disconnects.
func (m *MQTT) shutdown(c paho.Client) {
	if err := m.wait(c.Publish(m.available, 1, true, "offline")); err != nil {
		m.setError(fmt.Errorf("publish availability: %w", err))
	}
	c.Disconnect(mqttQuiesce)
	m.log.Info("mqtt: disconnected", "broker", m.redacted)
}

func (m *MQTT) setConnected(ok bool) {
	m.mu.Lock()
	m.stats.Connected = ok
	m.mu.Unlock()
}

func (m *MQTT) setError(err error) {
	m.mu.Lock()
	m.stats.LastError = err.Error()
	m.mu.Unlock()
}

// redact keeps the password out of an error from paho (which should never contain it; belt and braces).
func (m *MQTT) redact(err error) error {
	if err == nil || m.cfg.Password == "" || !strings.Contains(err.Error(), m.cfg.Password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), m.cfg.Password, "xxxxx"))
}

// sleepCtx waits d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
