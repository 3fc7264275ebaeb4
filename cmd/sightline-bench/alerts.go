package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/coder/websocket"
)

type alertsConfig struct {
	clip         string
	fps          float64
	analyticsFPS float64
	duration     time.Duration
	model        string
	library      string
	outputFlags
}

func alertsFlags(args []string, stderr io.Writer) (alertsConfig, error) {
	c := alertsConfig{}
	fs := newModeFlags("alerts", stderr, &c.outputFlags)
	fs.StringVar(&c.clip, "clip", defaultClip(), "Annex-B H.264 clip to publish (looped)")
	fs.Float64Var(&c.fps, "fps", 25, "publishing frame rate")
	fs.Float64Var(&c.analyticsFPS, "analytics-fps", 5, "analysed frames per second (analytics.fps)")
	fs.DurationVar(&c.duration, "duration", 30*time.Second, "measurement window")
	modelFlags(fs.FlagSet, &c.model, &c.library)
	if err := fs.parse(args); err != nil {
		return c, err
	}
	return c, firstError(checkDuration(c.duration), checkAnalyticsFPS(c.analyticsFPS))
}

// alertRules are the demo configuration's rules (configs/sightline.yaml): a zone over the walkway and a
// vertical line across the middle, for people.
const alertRules = `    rules:
      - {id: walkway, type: zone, polygon: [[0.1,0.5],[0.9,0.5],[0.9,1],[0.1,1]], classes: [person]}
      - {id: crossing, type: line, line: [[0.5,0],[0.5,1]], classes: [person]}
`

// feedMessage is the part of a /ws/alerts or /ws/meta message the benchmark reads. Events carry
// capturedAt (the frame's capture wall-clock; older builds only "at", the same value) and rtp (the
// frame's RTP timestamp) where the build has them; Meta carries rtp and capturedAt.
type feedMessage struct {
	Type       string    `json:"type"`
	Rule       string    `json:"rule"`
	Kind       string    `json:"kind"`
	RTP        *uint32   `json:"rtp"`
	CapturedAt time.Time `json:"capturedAt"`
	At         time.Time `json:"at"`
}

type alertsResult struct {
	Command      string   `json:"command"`
	Clip         string   `json:"clip"`
	Window       string   `json:"window"`
	Rules        string   `json:"rules"`
	Events       int      `json:"events"`
	ByKind       []string `json:"by_rule_kind"`
	CaptureField string   `json:"capture_field"`
	// Latency is receive - capture wall-clock of the event's frame.
	Latency summary `json:"latency"`
	// FromPublish is receive - publish wall-clock of the event's frame (events carrying rtp only).
	FromPublish summary `json:"from_publish"`
	// CaptureOffset is Meta capturedAt - publish wall-clock of the same frame (by RTP timestamp): how far
	// Sightline's capture clock is behind the camera's send (RTCP SR NTP, else arrival).
	CaptureOffset summary `json:"capture_offset"`
	AnalysedFPS   float64 `json:"analysed_fps"`
	GoalMet       bool    `json:"goal_met"`
	LoadAverage   string  `json:"load_average_before"`
}

// runAlerts loops the clip from the stamped publisher into Sightline with the model and the demo rules,
// and times every rule event from its frame's capture to a /ws/alerts subscriber.
func runAlerts(ctx context.Context, c alertsConfig, progress io.Writer) (*alertsResult, error) {
	if err := checkModel(c.model, c.library); err != nil {
		return nil, err
	}
	load := loadAverage()
	rg, err := startRig(ctx, c.clip, c.fps, c.logLevel, func(url string) string {
		return analyticsYAML(c.model, c.library, c.analyticsFPS) + cameraYAML(url, "tcp") + alertRules
	})
	if err != nil {
		return nil, err
	}
	defer rg.close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type received struct {
		m  feedMessage
		at time.Time
	}
	var (
		mu     sync.Mutex
		events []received
		metas  []received
		wg     sync.WaitGroup
	)
	defer wg.Wait()
	defer cancel()
	subscribe := func(path string, keep func(feedMessage, time.Time)) error {
		dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
		defer dcancel()
		conn, _, err := websocket.Dial(dctx, "ws://"+rg.g.HTTPAddr()+path, nil)
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", path, err)
		}
		conn.SetReadLimit(1 << 20)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.CloseNow()
			for {
				_, b, err := conn.Read(ctx)
				now := time.Now()
				if err != nil {
					return
				}
				var m feedMessage
				if json.Unmarshal(b, &m) == nil {
					keep(m, now)
				}
			}
		}()
		return nil
	}
	measuring := false
	if err := subscribe("/ws/alerts?camera=cam1", func(m feedMessage, at time.Time) {
		mu.Lock()
		if measuring && m.Type == "event" {
			events = append(events, received{m, at})
		}
		mu.Unlock()
	}); err != nil {
		return nil, err
	}
	if err := subscribe("/ws/meta?camera=cam1", func(m feedMessage, at time.Time) {
		mu.Lock()
		if measuring && m.Type != "event" {
			metas = append(metas, received{m, at})
		}
		mu.Unlock()
	}); err != nil {
		return nil, err
	}

	if err := rg.waitAnalysed(ctx); err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "alerts: analytics running; measuring %v...\n", c.duration)
	st0, err := rg.status(ctx)
	if err != nil {
		return nil, err
	}
	mu.Lock()
	measuring = true
	mu.Unlock()
	start := time.Now()
	if err := sleepCtx(ctx, c.duration); err != nil {
		return nil, err
	}
	mu.Lock()
	measuring = false
	evs, mts := append([]received(nil), events...), append([]received(nil), metas...)
	mu.Unlock()
	end := time.Now()
	st1, err := rg.status(ctx)
	if err != nil {
		return nil, err
	}

	res := &alertsResult{Command: commandLine(), Clip: c.clip, LoadAverage: load,
		Window: end.Sub(start).Round(time.Millisecond).String(), Events: len(evs),
		Rules: "walkway zone [[0.1,0.5],[0.9,0.5],[0.9,1],[0.1,1]] and crossing line [[0.5,0],[0.5,1]], person"}
	if a0, a1 := st0.Analytics, st1.Analytics; a0 != nil && a1 != nil {
		res.AnalysedFPS = float64(a1.Analysed-a0.Analysed) / end.Sub(start).Seconds()
	}
	var lat, fromPub, offs []time.Duration
	kinds := map[string]int{}
	fields := map[string]int{}
	for _, e := range evs {
		kinds[e.m.Rule+" "+e.m.Kind]++
		capt, field := e.m.CapturedAt, "capturedAt"
		if capt.IsZero() {
			capt, field = e.m.At, "at"
		}
		if capt.IsZero() {
			continue
		}
		fields[field]++
		lat = append(lat, e.at.Sub(capt))
		if e.m.RTP != nil {
			if _, pt, ok := rg.pub.publishedByRTP(*e.m.RTP); ok {
				fromPub = append(fromPub, e.at.Sub(pt))
			}
		}
	}
	for _, m := range mts {
		if m.m.RTP == nil || m.m.CapturedAt.IsZero() {
			continue
		}
		if _, pt, ok := rg.pub.publishedByRTP(*m.m.RTP); ok {
			offs = append(offs, m.m.CapturedAt.Sub(pt))
		}
	}
	for k, n := range kinds {
		res.ByKind = append(res.ByKind, fmt.Sprintf("%s: %d", k, n))
	}
	sort.Strings(res.ByKind)
	for f, n := range fields {
		if res.CaptureField != "" {
			res.CaptureField += ", "
		}
		res.CaptureField += fmt.Sprintf("%s (%d events)", f, n)
	}
	res.Latency, res.FromPublish, res.CaptureOffset = summarize(lat), summarize(fromPub), summarize(offs)
	res.GoalMet = res.Latency.N > 0 && res.Latency.Median <= 300
	return res, nil
}

func printAlerts(w io.Writer, r *alertsResult, asJSON bool) {
	if asJSON {
		printJSON(w, r)
		return
	}
	fmt.Fprintf(w, "clip: %s\nrules: %s\nwindow: %s, load average before: %s\nevents: %d %v, capture time from %s; %.2f analysed fps\n\n",
		r.Clip, r.Rules, r.Window, r.LoadAverage, r.Events, r.ByKind, r.CaptureField, r.AnalysedFPS)
	t := table{head: []string{"measure", "n", "median ms", "p95 ms", "max ms", "min ms"}}
	row := func(name string, s summary) {
		t.add(name, fmt.Sprint(s.N), ms(s.Median), ms(s.P95), ms(s.Max), ms(s.Min))
	}
	row("event capture -> /ws/alerts received", r.Latency)
	row("event publish -> /ws/alerts received", r.FromPublish)
	row("publish -> Sightline capturedAt (meta)", r.CaptureOffset)
	t.print(w)
	fmt.Fprintf(w, "\ngoal: event capture -> subscriber <= 300 ms median: %s\n", verdict(r.GoalMet))
	fmt.Fprintln(w, "capture = the event's capturedAt (its frame's capture wall-clock: RTCP SR NTP, else arrival); publish = the in-process RTSP server's wall-clock just before the frame's packets were written (found by the event's or meta's rtp); a /ws/meta subscriber gives the publish -> capture offset")
}
