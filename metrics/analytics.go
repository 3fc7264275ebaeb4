package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Analytics stage names in sightline_stage_seconds.
const (
	StageDecode     = "decode"     // one access unit through the video decoder
	StagePreprocess = "preprocess" // letterboxing a frame into the detector's input tensor
	StageMotion     = "motion"     // the motion gate in front of the object detector
	StageInference  = "inference"  // the detector (the model, or the motion detector without one)
	StageTrack      = "track"      // tracking and rule evaluation of one analysed frame
)

// StageBuckets suit millisecond-scale stages: 0.5 ms to 1 s.
var StageBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}

// Analytics holds the analytics pipelines' series: stage durations, analysed frames, detections and
// rule events per camera. Pass it to New to serve it.
type Analytics struct {
	stage      *prometheus.HistogramVec
	inference  *prometheus.CounterVec
	detections *prometheus.CounterVec
	events     *prometheus.CounterVec
}

// NewAnalytics builds the (empty) analytics series.
func NewAnalytics() *Analytics {
	return &Analytics{
		stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sightline_stage_seconds", Help: "Time spent in an analytics stage (decode per access unit; preprocess, motion, inference, track per frame), by camera and stage.",
			Buckets: StageBuckets,
		}, []string{"camera", "stage"}),
		inference: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sightline_inference_total", Help: "Frames the camera's detector analysed.",
		}, []string{"camera"}),
		detections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sightline_detections_total", Help: "Detections the detector returned (before tracking), by camera and class label.",
		}, []string{"camera", "class"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sightline_events_total", Help: "Rule events raised, by camera and rule.",
		}, []string{"camera", "rule"}),
	}
}

// Describe implements prometheus.Collector.
func (a *Analytics) Describe(ch chan<- *prometheus.Desc) {
	a.stage.Describe(ch)
	a.inference.Describe(ch)
	a.detections.Describe(ch)
	a.events.Describe(ch)
}

// Collect implements prometheus.Collector.
func (a *Analytics) Collect(ch chan<- prometheus.Metric) {
	a.stage.Collect(ch)
	a.inference.Collect(ch)
	a.detections.Collect(ch)
	a.events.Collect(ch)
}

// Camera returns one camera's recorder; its methods are safe for concurrent use.
func (a *Analytics) Camera(id string) *CameraAnalytics {
	c := &CameraAnalytics{a: a, id: id, stages: map[string]prometheus.Observer{},
		inference: a.inference.WithLabelValues(id)}
	for _, s := range []string{StageDecode, StagePreprocess, StageMotion, StageInference, StageTrack} {
		c.stages[s] = a.stage.WithLabelValues(id, s)
	}
	return c
}

// Forget removes a camera's series (after it was deleted).
func (a *Analytics) Forget(camera string) {
	l := prometheus.Labels{"camera": camera}
	a.stage.DeletePartialMatch(l)
	a.inference.DeletePartialMatch(l)
	a.detections.DeletePartialMatch(l)
	a.events.DeletePartialMatch(l)
}

// CameraAnalytics records one camera's analytics series.
type CameraAnalytics struct {
	a         *Analytics
	id        string
	stages    map[string]prometheus.Observer // read-only after Camera
	inference prometheus.Counter
}

// ObserveStage records d for stage (one of the Stage* names; others get their own series).
func (c *CameraAnalytics) ObserveStage(stage string, d time.Duration) {
	o, ok := c.stages[stage]
	if !ok {
		o = c.a.stage.WithLabelValues(c.id, stage)
	}
	o.Observe(d.Seconds())
}

// Analysed counts one frame the detector analysed.
func (c *CameraAnalytics) Analysed() { c.inference.Inc() }

// Detection counts one detection of class (the detector's label).
func (c *CameraAnalytics) Detection(class string) { c.a.detections.WithLabelValues(c.id, class).Inc() }

// Event counts one rule event.
func (c *CameraAnalytics) Event(rule string) { c.a.events.WithLabelValues(c.id, rule).Inc() }
