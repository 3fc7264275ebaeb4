package alerts

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"sightline/media"
)

// Kafka defaults.
const (
	DefaultKafkaTopic    = "sightline.events"
	DefaultKafkaClientID = "sightline"
	DefaultKafkaAcks     = "all"
	DefaultKafkaQueueLen = 100
	DefaultKafkaTimeout  = 5 * time.Second
	// kafkaBatch is how many events are handed to the client at once (the client's MaxBufferedRecords:
	// its own buffer is bounded too; the rest wait in the sink's queue).
	kafkaBatch = 64
	// kafkaIdlePing: a sink with nothing to send checks the cluster this often, so that "connected" does
	// not lie for long and events that arrive during an outage wait in the queue instead of failing.
	kafkaIdlePing = 15 * time.Second
	// A refused connection or a lost cluster is tried again after kafkaMinBackoff, doubling up to
	// kafkaMaxBackoff (±20 % jitter); a connection that held for kafkaStable starts over.
	kafkaMinBackoff = 500 * time.Millisecond
	kafkaMaxBackoff = 30 * time.Second
	kafkaStable     = 10 * time.Second
)

// KafkaSASL is the optional SASL authentication of a Kafka sink.
type KafkaSASL struct {
	// Mechanism is plain, scram-sha-256 or scram-sha-512 (empty: no SASL).
	Mechanism string
	Username  string
	Password  string
}

// KafkaConfig configures one Kafka sink.
type KafkaConfig struct {
	// Name identifies the sink in status and logs (default: the first broker's host).
	Name string
	// Brokers are the bootstrap brokers, host:port each (the client discovers the rest of the cluster).
	Brokers []string
	// Topic receives the events (default "sightline.events"); it must exist or the cluster must create
	// topics on demand.
	Topic string
	// ClientID identifies this client to the brokers (default "sightline").
	ClientID string
	// SASL authenticates the client (optional; over plaintext unless TLS is on).
	SASL KafkaSASL
	// TLS dials the brokers with TLS; TLSInsecure then accepts any certificate (a self-signed broker).
	TLS         bool
	TLSInsecure bool
	// Acks is all (default: every in-sync replica has the record; the producer is idempotent), leader
	// (the leader wrote it) or none (not waited for). leader and none turn idempotent producing off,
	// which Kafka only allows with acks=all.
	Acks string
	// Filter selects the events sent (empty: all).
	Filter Filter
	// QueueLen is how many events may wait while the cluster is away or slow (default 100); when it is
	// full the oldest waiting event is dropped and counted.
	QueueLen int
	// Timeout bounds one connection check and the delivery of one produced event, retries included
	// (default 5s).
	Timeout time.Duration
	Logger  *slog.Logger
}

// KafkaStats is what a Kafka sink has done so far.
type KafkaStats struct {
	Name    string   `json:"name"`
	Brokers []string `json:"brokers"`
	Topic   string   `json:"topic"`
	// Connected is true while the last check of the cluster or the last produce succeeded.
	Connected bool `json:"connected"`
	// Sent events were acknowledged by the cluster (as acks asks); Failed ones were not (within Timeout,
	// the client's retries included; never retried after that); Dropped ones never tried (queue full);
	// Queued ones wait now.
	Sent       uint64    `json:"sent"`
	Failed     uint64    `json:"failed"`
	Dropped    uint64    `json:"dropped"`
	Queued     int       `json:"queued"`
	LastError  string    `json:"lastError,omitempty"`
	LastSentAt time.Time `json:"lastSentAt,omitzero"`
}

// Kafka produces events to a Kafka topic, one record per event keyed by camera (a camera's events stay
// in order in one partition). It never blocks the publisher: events wait in its own bounded
// subscription, also while the cluster is away.
type Kafka struct {
	cfg  KafkaConfig
	opts []kgo.Opt
	log  *slog.Logger

	mu    sync.Mutex
	stats KafkaStats
	sub   *media.FanoutReader[Event]
}

// NewKafka checks cfg and fills in defaults. Its errors never contain the password.
func NewKafka(cfg KafkaConfig) (*Kafka, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("kafka: no brokers (want host:port, at least one)")
	}
	for _, b := range cfg.Brokers {
		if err := checkHostPort(b); err != nil {
			return nil, fmt.Errorf("kafka broker %q: %w", redactBroker(b), err)
		}
	}
	if cfg.Topic == "" {
		cfg.Topic = DefaultKafkaTopic
	}
	if err := checkKafkaTopic(cfg.Topic); err != nil {
		return nil, fmt.Errorf("kafka topic %q: %w", cfg.Topic, err)
	}
	if cfg.ClientID == "" {
		cfg.ClientID = DefaultKafkaClientID
	}
	if len(cfg.ClientID) > 1000 || strings.ContainsFunc(cfg.ClientID, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return nil, errors.New("kafka: client id too long or with control characters")
	}
	mech, err := kafkaSASL(cfg.SASL)
	if err != nil {
		return nil, err
	}
	if cfg.TLSInsecure && !cfg.TLS {
		return nil, errors.New("kafka: tlsInsecure needs tls")
	}
	cfg.Acks = strings.ToLower(cfg.Acks)
	if cfg.Acks == "" {
		cfg.Acks = DefaultKafkaAcks
	}
	var acks kgo.Acks
	switch cfg.Acks {
	case "all":
		acks = kgo.AllISRAcks()
	case "leader":
		acks = kgo.LeaderAck()
	case "none":
		acks = kgo.NoAck()
	default:
		return nil, fmt.Errorf("kafka acks %q: want all, leader or none", cfg.Acks)
	}
	if cfg.QueueLen < 0 {
		return nil, errors.New("kafka: negative queueLen")
	}
	if cfg.Timeout < 0 || cfg.Timeout > 0 && cfg.Timeout < time.Second {
		// The client refuses a record delivery timeout under 1s.
		return nil, fmt.Errorf("kafka timeout %v: want at least 1s", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultKafkaTimeout
	}
	if cfg.QueueLen == 0 {
		cfg.QueueLen = DefaultKafkaQueueLen
	}
	if cfg.Name == "" {
		cfg.Name, _, _ = net.SplitHostPort(cfg.Brokers[0])
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Brokers = slices.Clone(cfg.Brokers)
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.DialTimeout(cfg.Timeout),
		// A produce request may take Timeout at the broker and Timeout more on the wire before the client
		// gives up on the connection; a record is failed once Timeout has passed and it is not in flight.
		kgo.ProduceRequestTimeout(cfg.Timeout),
		kgo.RequestTimeoutOverhead(cfg.Timeout),
		kgo.RecordDeliveryTimeout(cfg.Timeout),
		kgo.MaxBufferedRecords(kafkaBatch),
		kgo.RequiredAcks(acks),
	}
	if cfg.Acks != "all" {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	if mech != nil {
		opts = append(opts, kgo.SASL(mech))
	}
	if cfg.TLS {
		opts = append(opts, kgo.DialTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.TLSInsecure})) //nolint:gosec // opt-in for self-signed brokers
	}
	k := &Kafka{cfg: cfg, opts: opts, log: cfg.Logger.With("kafka", cfg.Name)}
	k.stats.Name, k.stats.Brokers, k.stats.Topic = cfg.Name, cfg.Brokers, cfg.Topic
	return k, nil
}

// checkHostPort accepts host:port ([v6]:port) with a port of 1-65535.
func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" || strings.ContainsAny(host, "/@ \t") {
		return errors.New("want host:port (no scheme, no credentials)")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return errors.New("port: want 1-65535")
	}
	return nil
}

// redactBroker hides what stands before an @ in a (mistaken) broker address: credentials.
func redactBroker(b string) string {
	if i := strings.LastIndex(b, "@"); i >= 0 {
		return "xxxxx" + b[i:]
	}
	return b
}

// checkKafkaTopic applies Kafka's rules for topic names.
func checkKafkaTopic(t string) error {
	if len(t) > 249 || t == "." || t == ".." {
		return errors.New("not a legal Kafka topic name")
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return errors.New("want letters, digits, '.', '_' or '-' only")
		}
	}
	return nil
}

// kafkaSASL returns the SASL mechanism of s (nil without one).
func kafkaSASL(s KafkaSASL) (sasl.Mechanism, error) {
	m := strings.ToLower(s.Mechanism)
	if m == "" {
		if s.Username != "" || s.Password != "" {
			return nil, errors.New("kafka sasl: a username or password without a mechanism (plain, scram-sha-256, scram-sha-512)")
		}
		return nil, nil
	}
	if s.Username == "" || s.Password == "" {
		return nil, fmt.Errorf("kafka sasl %s: needs a username and a password", m)
	}
	switch m {
	case "plain":
		return plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism(), nil
	case "scram-sha-256":
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism(), nil
	case "scram-sha-512":
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("kafka sasl mechanism %q: want plain, scram-sha-256 or scram-sha-512", s.Mechanism)
}

// Stats returns the sink's counters.
func (k *Kafka) Stats() KafkaStats {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.stats
	s.Brokers = slices.Clone(s.Brokers)
	if k.sub != nil {
		s.Dropped, s.Queued = k.sub.Dropped(), k.sub.Len()
	}
	return s
}

// Record returns the record an event becomes: key the camera id, value the event's JSON, headers
// event-id, rule, type and kind.
func (k *Kafka) Record(e Event) (*kgo.Record, error) {
	body, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	return &kgo.Record{Topic: k.cfg.Topic, Key: []byte(e.Camera), Value: body, Headers: []kgo.RecordHeader{
		{Key: "event-id", Value: []byte(e.ID)}, {Key: "rule", Value: []byte(e.Rule)},
		{Key: "type", Value: []byte(e.Type)}, {Key: "kind", Value: []byte(e.Kind)},
	}}, nil
}

// Subscribe attaches the sink to hub now (so no event published after it returns is missed) and returns
// the function that produces until ctx ends or the hub closes. That function keeps a client whose
// cluster answers (an unreachable cluster is tried again with backoff; events wait in the queue
// meanwhile); a produce that fails makes it start over with a fresh client. When it returns, every
// goroutine it started has ended.
func (k *Kafka) Subscribe(hub *Hub) func(ctx context.Context) {
	sub := hub.Subscribe(k.cfg.QueueLen)
	k.mu.Lock()
	k.sub = sub
	k.mu.Unlock()
	return func(ctx context.Context) {
		defer sub.Close()
		backoff := kafkaMinBackoff
		for ctx.Err() == nil {
			c, err := k.connect(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				k.setError(err)
				k.log.Warn("kafka: cannot reach the cluster", "brokers", k.cfg.Brokers, "error", err, "retryIn", backoff)
				if !sleepCtx(ctx, jitter(backoff)) {
					return
				}
				backoff = min(2*backoff, kafkaMaxBackoff)
				continue
			}
			since := time.Now()
			k.setConnected(true)
			k.log.Info("kafka: connected", "brokers", k.cfg.Brokers, "topic", k.cfg.Topic)
			hubClosed := k.serve(ctx, sub, c)
			c.close()
			k.setConnected(false)
			if ctx.Err() != nil || hubClosed {
				k.log.Info("kafka: closed", "brokers", k.cfg.Brokers)
				return
			}
			k.log.Warn("kafka: cluster lost", "brokers", k.cfg.Brokers, "error", k.Stats().LastError)
			if time.Since(since) >= kafkaStable {
				backoff = kafkaMinBackoff
				continue
			}
			if !sleepCtx(ctx, jitter(backoff)) {
				return
			}
			backoff = min(2*backoff, kafkaMaxBackoff)
		}
	}
}

// kafkaConn is one client; close may be called more than once.
type kafkaConn struct {
	cl   *kgo.Client
	once sync.Once
}

func (c *kafkaConn) close() { c.once.Do(c.cl.Close) }

// connect makes a fresh client and checks within Timeout that the cluster answers.
func (k *Kafka) connect(ctx context.Context) (*kafkaConn, error) {
	cl, err := kgo.NewClient(k.opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka %s: new client: %w", k.cfg.Name, k.redact(err))
	}
	c := &kafkaConn{cl: cl}
	if err := k.ping(ctx, c); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func (k *Kafka) ping(ctx context.Context, c *kafkaConn) error {
	pctx, cancel := context.WithTimeout(ctx, k.cfg.Timeout)
	defer cancel()
	if err := c.cl.Ping(pctx); err != nil {
		return fmt.Errorf("reach kafka %s (%s): %w", k.cfg.Name, strings.Join(k.cfg.Brokers, ","), k.redact(err))
	}
	return nil
}

// serve produces events until ctx ends, a produce or an idle check fails (the events left wait in sub),
// or the hub closes (it then reports true).
func (k *Kafka) serve(ctx context.Context, sub *media.FanoutReader[Event], c *kafkaConn) bool {
	// now is an ended context: sub.Read(now) takes what is queued without waiting.
	now, cancel := context.WithCancel(context.Background())
	cancel()
	for {
		rctx, cancel := context.WithTimeout(ctx, kafkaIdlePing)
		e, err := sub.Read(rctx)
		cancel()
		if errors.Is(err, media.ErrStreamClosed) {
			return true
		}
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			if err := k.ping(ctx, c); err != nil {
				k.setError(err)
				return false
			}
			continue
		}
		var batch []Event
		for {
			if k.cfg.Filter.Match(e) {
				batch = append(batch, e)
			}
			if len(batch) == kafkaBatch {
				break
			}
			if e, err = sub.Read(now); err != nil {
				break
			}
		}
		if len(batch) > 0 && !k.produce(c, batch) {
			return false
		}
	}
}

// produce hands batch to the client and waits for every record's outcome, counting each. The client
// retries as its policy says within Timeout; what is not acknowledged by then fails (the client is
// closed, which fails what it still holds: it does not time records out while no broker answers). It
// reports whether all went out.
func (k *Kafka) produce(c *kafkaConn, batch []Event) bool {
	type result struct {
		id    string
		err   error
		local bool // the event could not become a record: nothing to do with the cluster
	}
	results := make(chan result, len(batch))
	for _, e := range batch {
		rec, err := k.Record(e)
		if err != nil {
			results <- result{e.ID, err, true}
			continue
		}
		// Never blocks: the batch fits in the client's buffer (MaxBufferedRecords) and the previous
		// batch is done. The context is not the sink's: shutting down gives what is under way its Timeout.
		c.cl.Produce(context.Background(), rec, func(_ *kgo.Record, err error) { results <- result{e.ID, err, false} })
	}
	deadline := time.NewTimer(k.cfg.Timeout)
	defer deadline.Stop()
	ok, late := true, false
	for range batch {
		var r result
		select {
		case r = <-results:
		case <-deadline.C:
			late = true
			c.close() // every promise runs, with ErrClientClosed if not before
			r = <-results
		}
		if late && errors.Is(r.err, kgo.ErrClientClosed) {
			r.err = fmt.Errorf("not acknowledged within %v", k.cfg.Timeout)
		}
		k.mu.Lock()
		if r.err != nil {
			if !r.local {
				ok = false
				k.stats.Connected = false
			}
			k.stats.Failed++
			k.stats.LastError = fmt.Sprintf("produce event %s to kafka %s: %v", r.id, k.cfg.Name, k.redact(r.err))
		} else {
			k.stats.Sent++
			k.stats.LastError = ""
			k.stats.LastSentAt = time.Now()
		}
		k.mu.Unlock()
	}
	return ok
}

func (k *Kafka) setConnected(ok bool) {
	k.mu.Lock()
	k.stats.Connected = ok
	k.mu.Unlock()
}

func (k *Kafka) setError(err error) {
	k.mu.Lock()
	k.stats.Connected = false
	k.stats.LastError = err.Error()
	k.mu.Unlock()
}

// redact keeps the password out of an error from the client (which should never contain it; belt and
// braces).
func (k *Kafka) redact(err error) error {
	pw := k.cfg.SASL.Password
	if err == nil || pw == "" || !strings.Contains(err.Error(), pw) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), pw, "xxxxx"))
}
