package alerts

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"sightline/media"
)

// Webhook defaults.
const (
	DefaultWebhookTimeout    = 5 * time.Second
	DefaultWebhookBackoff    = 500 * time.Millisecond
	DefaultWebhookMaxBackoff = 30 * time.Second
	DefaultWebhookQueueLen   = 100
)

// WebhookConfig configures one webhook sink.
type WebhookConfig struct {
	// Name identifies the sink in status and logs (default: the URL's host).
	Name string
	// URL receives one POST per event with the Event's JSON as body (http or https).
	URL string
	// Filter selects the events sent (empty: all).
	Filter Filter
	// Headers are added to every request (e.g. Authorization).
	Headers map[string]string
	// Secret, when set, signs each body: X-Sightline-Signature: sha256=<hex HMAC-SHA256(secret, body)>.
	Secret string
	// Timeout bounds one attempt (default 5s).
	Timeout time.Duration
	// Retries is how many times a failed delivery (network error, 408, 429, 5xx) is tried again; other
	// 4xx answers are final. Waits start at Backoff (default 500ms) and double up to MaxBackoff (default
	// 30s), with ±20 % jitter; a Retry-After of seconds is honoured up to MaxBackoff.
	Retries    int
	Backoff    time.Duration
	MaxBackoff time.Duration
	// QueueLen is how many events may wait while one is being delivered (default 100); when it is full
	// the oldest waiting event is dropped and counted.
	QueueLen int
	// Client sends the requests (default: a client without redirects following nothing but the URL).
	Client *http.Client
	Logger *slog.Logger
}

// WebhookStats is what a sink has done so far.
type WebhookStats struct {
	Name string `json:"name"`
	// URL is the target without credentials or query (which may hold secrets).
	URL       string `json:"url"`
	Delivered uint64 `json:"delivered"`
	// Failed events were given up (retries exhausted or a final 4xx); Dropped never tried (queue full).
	Failed  uint64 `json:"failed"`
	Dropped uint64 `json:"dropped"`
	Retries uint64 `json:"retries"`
	// LastStatus is the HTTP status of the last attempt (0: no answer); LastError its error, if any.
	LastStatus    int       `json:"lastStatus,omitempty"`
	LastError     string    `json:"lastError,omitempty"`
	LastDelivered time.Time `json:"lastDelivered,omitzero"`
}

// Webhook delivers events to one URL, in order, one at a time, with retries. It never blocks the
// publisher: events wait in its own bounded subscription.
type Webhook struct {
	cfg    WebhookConfig
	target *url.URL
	log    *slog.Logger

	mu    sync.Mutex
	stats WebhookStats
	sub   *media.FanoutReader[Event]
}

// NewWebhook checks cfg and fills in defaults.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		// url.Error repeats the whole URL, credentials included; keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("webhook url: cannot parse: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("webhook url %q: want http:// or https:// with a host", redactURL(u))
	}
	if cfg.Retries < 0 || cfg.Timeout < 0 || cfg.Backoff < 0 || cfg.MaxBackoff < 0 || cfg.QueueLen < 0 {
		return nil, errors.New("webhook: negative retries, timeout, backoff or queueLen")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultWebhookTimeout
	}
	if cfg.Backoff == 0 {
		cfg.Backoff = DefaultWebhookBackoff
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = DefaultWebhookMaxBackoff
	}
	if cfg.QueueLen == 0 {
		cfg.QueueLen = DefaultWebhookQueueLen
	}
	if cfg.Client == nil {
		// A webhook goes where it was configured to go: redirects are answers, not directions.
		cfg.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if cfg.Name == "" {
		cfg.Name = u.Host
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	w := &Webhook{cfg: cfg, target: u, log: cfg.Logger.With("webhook", cfg.Name)}
	w.stats.Name, w.stats.URL = cfg.Name, redactURL(u)
	return w, nil
}

// redactURL returns u without user info, query or fragment.
func redactURL(u *url.URL) string {
	c := *u
	c.User, c.RawQuery, c.ForceQuery, c.Fragment = nil, "", false, ""
	return c.String()
}

// Stats returns the sink's counters.
func (w *Webhook) Stats() WebhookStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.stats
	if w.sub != nil {
		s.Dropped = w.sub.Dropped()
	}
	return s
}

// Subscribe attaches the sink to hub now (so no event published after it returns is missed) and returns
// the function that delivers until ctx ends or the hub closes.
func (w *Webhook) Subscribe(hub *Hub) func(ctx context.Context) {
	sub := hub.Subscribe(w.cfg.QueueLen)
	w.mu.Lock()
	w.sub = sub
	w.mu.Unlock()
	return func(ctx context.Context) {
		defer sub.Close()
		for {
			e, err := sub.Read(ctx)
			if err != nil {
				return
			}
			if w.cfg.Filter.Match(e) {
				w.deliver(ctx, e)
			}
		}
	}
}

// deliver sends e, retrying as configured; it returns when e is delivered, given up or ctx ends.
func (w *Webhook) deliver(ctx context.Context, e Event) {
	body, err := json.Marshal(e)
	if err != nil { // cannot happen for Event; counted rather than lost silently
		w.finish(false, 0, err)
		return
	}
	wait := w.cfg.Backoff
	for attempt := 0; ; attempt++ {
		status, retryAfter, err := w.post(ctx, e.ID, body)
		if err == nil {
			w.finish(true, status, nil)
			return
		}
		if ctx.Err() != nil {
			return // shutting down: neither delivered nor failed
		}
		retryable := status == 0 || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
		if !retryable || attempt >= w.cfg.Retries {
			w.log.Warn("webhook: giving up on event", "event", e.ID, "attempts", attempt+1, "error", err)
			w.finish(false, status, err)
			return
		}
		d := jitter(wait)
		if retryAfter > 0 {
			d = retryAfter
		}
		d = min(d, w.cfg.MaxBackoff)
		w.mu.Lock()
		w.stats.Retries++
		w.stats.LastStatus, w.stats.LastError = status, err.Error()
		w.mu.Unlock()
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, w.cfg.MaxBackoff)
	}
}

func (w *Webhook) finish(ok bool, status int, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stats.LastStatus = status
	if ok {
		w.stats.Delivered++
		w.stats.LastError = ""
		w.stats.LastDelivered = time.Now()
		return
	}
	w.stats.Failed++
	if err != nil {
		w.stats.LastError = err.Error()
	}
}

// jitter spreads d by ±20 % so that many sinks retrying one endpoint do not stay in step.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// post makes one attempt. It returns the HTTP status (0 without an answer), a Retry-After delay when the
// server asked for one, and an error unless the status is 2xx.
func (w *Webhook) post(ctx context.Context, id string, body []byte) (int, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.target.String(), bytes.NewReader(body))
	if err != nil {
		return 0, 0, fmt.Errorf("build request: %w", err)
	}
	for k, v := range w.cfg.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Sightline-Webhook/1")
	req.Header.Set("X-Sightline-Event", id)
	if w.cfg.Secret != "" {
		req.Header.Set("X-Sightline-Signature", "sha256="+Sign(w.cfg.Secret, body))
	}
	resp, err := w.cfg.Client.Do(req)
	if err != nil {
		// url.Error repeats the URL, which may hold credentials; keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, 0, fmt.Errorf("post to %s: %w", redactURL(w.target), err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.StatusCode, 0, nil
	}
	var after time.Duration
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		after = time.Duration(s) * time.Second
	}
	return resp.StatusCode, after, fmt.Errorf("post to %s: %s", redactURL(w.target), resp.Status)
}

// Sign returns the hex HMAC-SHA256 of body with secret, as sent in X-Sightline-Signature (after
// "sha256="). Receivers recompute it over the raw body to check an event came from this server.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}
