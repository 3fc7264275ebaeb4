// Package metrics owns Sightline's Prometheus registry and metric names: per-camera series read from a
// snapshot function at scrape time, HTTP/auth/rate-limit counters, and the Go runtime and process
// collectors. It only reports; it must never change or hold the state it describes.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// CameraSample is one camera's state at scrape time.
type CameraSample struct {
	ID         string
	State      string // media.SourceState
	Streaming  bool
	Frames     uint64
	Bytes      uint64
	FPS        float64
	BitrateBps float64
	Restarts   int
	Viewers    int
	Readers    int // readers of the camera's raw stream (viewers' shared tracks, analytics)
	WebRTC     []WebRTCSample
}

// WebRTCSample is one (camera, variant)'s WebRTC fan-out at scrape time.
type WebRTCSample struct {
	Variant string // raw, annotated
	// Sessions counts live sessions by peer connection state (the keys of WebRTCStates).
	Sessions map[string]int
	// FanoutDropped counts access units the fan-out shards dropped for viewers that fell behind;
	// ReaderDropped those the shared track's stream reader lost. Both only grow.
	FanoutDropped, ReaderDropped uint64
}

// WebRTCStates are the session states sightline_webrtc_sessions always reports, 0 included.
var WebRTCStates = []string{"new", "connecting", "connected", "disconnected", "failed"}

// Registry is the set of metrics one Sightline serves at /metrics.
type Registry struct {
	reg *prometheus.Registry

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	authFailures *prometheus.CounterVec
	rateLimited  *prometheus.CounterVec
}

// New builds a registry; cameras is called on every scrape and must be safe for concurrent use. extra
// collectors (such as an *Analytics) are served too; nil ones are skipped.
func New(cameras func() []CameraSample, extra ...prometheus.Collector) *Registry {
	r := &Registry{
		reg: prometheus.NewRegistry(),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sightline_http_requests_total", Help: "HTTP requests by route pattern and status code.",
		}, []string{"route", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sightline_http_request_seconds", Help: "Time to answer an HTTP request, by route pattern (WebSockets excluded).",
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sightline_auth_failures_total", Help: "Requests refused by authentication (401) or authorization (403).",
		}, []string{"reason"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sightline_rate_limited_total", Help: "Requests refused with 429, by limit.",
		}, []string{"limit"}),
	}
	r.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		r.httpRequests, r.httpDuration, r.authFailures, r.rateLimited,
		&cameraCollector{snapshot: cameras},
	)
	for _, c := range extra {
		if c != nil {
			r.reg.MustRegister(c)
		}
	}
	return r
}

// Handler serves the registry in the Prometheus exposition formats.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{Registry: r.reg})
}

// ObserveRequest counts one answered request; route is the mux pattern (never the raw path, whose
// values are unbounded).
func (r *Registry) ObserveRequest(route string, code int, d time.Duration, websocket bool) {
	r.httpRequests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	if !websocket {
		r.httpDuration.WithLabelValues(route).Observe(d.Seconds())
	}
}

// AuthFailure counts a refused request; reason is "unauthorized" or "forbidden".
func (r *Registry) AuthFailure(reason string) { r.authFailures.WithLabelValues(reason).Inc() }

// RateLimited counts a 429; limit is "api" or "whep".
func (r *Registry) RateLimited(limit string) { r.rateLimited.WithLabelValues(limit).Inc() }

var (
	descUp        = prometheus.NewDesc("sightline_camera_up", "1 while the camera streams, else 0.", []string{"camera"}, nil)
	descState     = prometheus.NewDesc("sightline_camera_state", "1 for the camera's current source state.", []string{"camera", "state"}, nil)
	descFrames    = prometheus.NewDesc("sightline_camera_frames_total", "Access units received from the camera.", []string{"camera"}, nil)
	descBytes     = prometheus.NewDesc("sightline_camera_bytes_total", "Bytes of access units received from the camera.", []string{"camera"}, nil)
	descFPS       = prometheus.NewDesc("sightline_camera_fps", "Frames per second received (recent window).", []string{"camera"}, nil)
	descBitrate   = prometheus.NewDesc("sightline_camera_bitrate_bps", "Bits per second received (recent window).", []string{"camera"}, nil)
	descRestarts  = prometheus.NewDesc("sightline_camera_reconnects_total", "Times the camera's source reconnected.", []string{"camera"}, nil)
	descViewers   = prometheus.NewDesc("sightline_camera_viewers", "Live WebRTC sessions watching the camera.", []string{"camera"}, nil)
	descReaders   = prometheus.NewDesc("sightline_stream_readers", "Readers of the camera's raw stream.", []string{"camera"}, nil)
	descSessions  = prometheus.NewDesc("sightline_webrtc_sessions", "Live WebRTC sessions by peer connection state (new, connecting, connected, disconnected, failed).", []string{"state"}, nil)
	descRTCDrops  = prometheus.NewDesc("sightline_webrtc_dropped_frames_total", "Access units the WebRTC fan-out dropped, by camera, variant and stage (fanout: shards of slow viewers; reader: the shared track's stream reader).", []string{"camera", "variant", "stage"}, nil)
	descCameras   = prometheus.NewDesc("sightline_cameras", "Cameras configured.", nil, nil)
	cameraStateOf = []string{"starting", "connecting", "streaming", "reconnecting", "stopped", "disabled"}
)

// cameraCollector turns a snapshot into const metrics at scrape time, so that created and deleted
// cameras appear and vanish without bookkeeping.
type cameraCollector struct {
	snapshot func() []CameraSample
}

func (c *cameraCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descState, descFrames, descBytes, descFPS, descBitrate,
		descRestarts, descViewers, descReaders, descSessions, descRTCDrops, descCameras} {
		ch <- d
	}
}

func (c *cameraCollector) Collect(ch chan<- prometheus.Metric) {
	cams := c.snapshot()
	sessions := make(map[string]int, len(WebRTCStates))
	for _, s := range cams {
		up := 0.0
		if s.Streaming {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up, s.ID)
		for _, st := range cameraStateOf {
			v := 0.0
			if st == s.State {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, s.ID, st)
		}
		ch <- prometheus.MustNewConstMetric(descFrames, prometheus.CounterValue, float64(s.Frames), s.ID)
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(s.Bytes), s.ID)
		ch <- prometheus.MustNewConstMetric(descFPS, prometheus.GaugeValue, s.FPS, s.ID)
		ch <- prometheus.MustNewConstMetric(descBitrate, prometheus.GaugeValue, s.BitrateBps, s.ID)
		ch <- prometheus.MustNewConstMetric(descRestarts, prometheus.CounterValue, float64(s.Restarts), s.ID)
		ch <- prometheus.MustNewConstMetric(descViewers, prometheus.GaugeValue, float64(s.Viewers), s.ID)
		ch <- prometheus.MustNewConstMetric(descReaders, prometheus.GaugeValue, float64(s.Readers), s.ID)
		for _, w := range s.WebRTC {
			for st, n := range w.Sessions {
				sessions[st] += n
			}
			ch <- prometheus.MustNewConstMetric(descRTCDrops, prometheus.CounterValue, float64(w.FanoutDropped), s.ID, w.Variant, "fanout")
			ch <- prometheus.MustNewConstMetric(descRTCDrops, prometheus.CounterValue, float64(w.ReaderDropped), s.ID, w.Variant, "reader")
		}
	}
	for _, st := range WebRTCStates {
		ch <- prometheus.MustNewConstMetric(descSessions, prometheus.GaugeValue, float64(sessions[st]), st)
	}
	ch <- prometheus.MustNewConstMetric(descCameras, prometheus.GaugeValue, float64(len(cams)))
}
