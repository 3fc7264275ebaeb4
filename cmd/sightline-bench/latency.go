package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"sightline/internal/stamp"
	"sightline/internal/whepclient"
)

type latencyConfig struct {
	clip      string
	fps       float64
	transport string
	duration  time.Duration
	outputFlags
}

// viewerResult is one reader's figures over the measurement window.
type viewerResult struct {
	Name     string  `json:"name"`
	Expected int     `json:"frames_published"`
	Frames   int     `json:"frames"`
	Lost     int     `json:"frames_lost"`
	Latency  summary `json:"latency"`
	// WHEP only: RTP-level counters of the client.
	RTPPacketsLost   uint64 `json:"rtp_packets_lost,omitempty"`
	IncompleteFrames uint64 `json:"incomplete_frames,omitempty"`
}

type latencyResult struct {
	Command   string         `json:"command"`
	Clip      string         `json:"clip"`
	Transport string         `json:"transport"`
	Window    string         `json:"window"`
	Readers   []viewerResult `json:"readers"`
	Added     summary        `json:"added"`
	GoalMet   bool           `json:"goal_met"`
}

// arrivals records, per frame index, the latency (arrival - stamp) one reader saw.
type arrivals struct {
	mu sync.Mutex
	m  map[uint64]time.Duration
}

func newArrivals() *arrivals { return &arrivals{m: make(map[uint64]time.Duration)} }

func (a *arrivals) add(idx uint64, stamped, arrived time.Time) {
	a.mu.Lock()
	if _, dup := a.m[idx]; !dup {
		a.m[idx] = arrived.Sub(stamped)
	}
	a.mu.Unlock()
}

func (a *arrivals) window(lo, hi uint64) map[uint64]time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[uint64]time.Duration)
	for i, d := range a.m {
		if i >= lo && i < hi {
			out[i] = d
		}
	}
	return out
}

func latencyFlags(args []string, stderr io.Writer) (latencyConfig, error) {
	c := latencyConfig{}
	fs := newModeFlags("latency", stderr, &c.outputFlags)
	fs.StringVar(&c.clip, "clip", defaultClip(), "Annex-B H.264 clip to publish (looped)")
	fs.Float64Var(&c.fps, "fps", 25, "publishing frame rate")
	fs.StringVar(&c.transport, "transport", "tcp", "RTSP transport for Sightline and the baseline: tcp or udp")
	fs.DurationVar(&c.duration, "duration", 20*time.Second, "measurement window")
	if err := fs.parse(args); err != nil {
		return c, err
	}
	return c, firstError(checkTransport(c.transport), checkDuration(c.duration))
}

// runLatency measures per-frame latency of a direct RTSP reader and of a WHEP viewer of Sightline, both
// fed by the same stamped publisher, and prints both and their difference.
func runLatency(ctx context.Context, c latencyConfig, stdout io.Writer) (*latencyResult, error) {
	rg, err := startRig(ctx, c.clip, c.fps, c.logLevel, func(url string) string { return cameraYAML(url, c.transport) })
	if err != nil {
		return nil, err
	}
	defer rg.close()
	pub := rg.pub

	base, whep := newArrivals(), newArrivals()
	bl, err := startBaseline(pub.URL, c.transport, base.add)
	if err != nil {
		return nil, err
	}
	defer bl.close()

	dialCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	wc, err := dialStamped(dialCtx, rg.whep(""), whep)
	if err != nil {
		return nil, err
	}
	defer wc.Close()

	st0 := wc.Stats()
	start := time.Now()
	if err := sleepCtx(ctx, c.duration); err != nil {
		return nil, err
	}
	end := time.Now()
	// Let frames stamped just before the end arrive.
	time.Sleep(500 * time.Millisecond)
	lo, hi := pub.indexRange(start, end)

	res := &latencyResult{
		Command: commandLine(), Clip: c.clip, Transport: c.transport,
		Window: fmt.Sprintf("%v (frames %d..%d)", end.Sub(start).Round(time.Millisecond), lo, hi),
	}
	bw, ww := base.window(lo, hi), whep.window(lo, hi)
	res.Readers, res.Added = compareReaders(lo, hi, "rtsp direct (baseline)", bw, "sightline whep", ww)
	st := wc.Stats()
	res.Readers[1].RTPPacketsLost, res.Readers[1].IncompleteFrames = st.Lost-st0.Lost, st.Incomplete-st0.Incomplete
	if os.Getenv("BENCH_DEBUG") != "" {
		for i := lo; i < hi; i++ {
			_, b := bw[i]
			_, w := ww[i]
			if !b || !w {
				fmt.Fprintf(os.Stderr, "frame %d: baseline %v whep %v\n", i, b, w)
			}
		}
	}
	res.GoalMet = res.Added.N > 0 && res.Added.Median <= 5 && res.Added.P99 <= 20
	return res, nil
}

func printLatency(w io.Writer, r *latencyResult, asJSON bool) {
	if asJSON {
		printJSON(w, r)
		return
	}
	fmt.Fprintf(w, "clip: %s\ntransport: %s, window: %s\n\n", r.Clip, r.Transport, r.Window)
	printReaders(w, r.Readers, "added by sightline", r.Added)
	fmt.Fprintf(w, "\ngoal: added <= 5 ms median, <= 20 ms p99: %s\n", verdict(r.GoalMet))
	if len(r.Readers) > 1 {
		fmt.Fprintf(w, "whep client during the window: %d RTP packets lost, %d incomplete access units\n",
			r.Readers[1].RTPPacketsLost, r.Readers[1].IncompleteFrames)
	}
	fmt.Fprintln(w, "latency = arrival of the whole access unit - publisher wall-clock just before its RTP packets were written")
}

// compareReaders is the figures of a baseline reader and a reader through Sightline over the frames
// [lo, hi) (their per-index latencies base and other), and what Sightline adds: other - base per frame
// index both saw.
func compareReaders(lo, hi uint64, baseName string, base map[uint64]time.Duration, otherName string, other map[uint64]time.Duration) ([]viewerResult, summary) {
	var readers []viewerResult
	for _, r := range []struct {
		name string
		m    map[uint64]time.Duration
	}{{baseName, base}, {otherName, other}} {
		d := make([]time.Duration, 0, len(r.m))
		for _, v := range r.m {
			d = append(d, v)
		}
		readers = append(readers, viewerResult{
			Name: r.name, Expected: int(hi - lo), Frames: len(r.m), Lost: int(hi-lo) - len(r.m), Latency: summarize(d),
		})
	}
	var added []time.Duration
	for i, o := range other {
		if b, ok := base[i]; ok {
			added = append(added, o-b)
		}
	}
	return readers, summarize(added)
}

// printReaders prints the readers' latency table and, last, the added row named addedName.
func printReaders(w io.Writer, readers []viewerResult, addedName string, added summary) {
	t := table{head: []string{"reader", "published", "frames", "lost", "median ms", "p95 ms", "p99 ms", "max ms"}}
	for _, v := range readers {
		t.add(v.Name, fmt.Sprint(v.Expected), fmt.Sprint(v.Frames), fmt.Sprint(v.Lost),
			ms(v.Latency.Median), ms(v.Latency.P95), ms(v.Latency.P99), ms(v.Latency.Max))
	}
	t.add(addedName, "", fmt.Sprint(added.N), "", ms(added.Median), ms(added.P95), ms(added.P99), ms(added.Max))
	t.print(w)
}

// dialStamped connects a WHEP viewer to url that records each frame's stamp latency (CompleteAt − stamp)
// in arr, and returns once its first keyframe arrived (or ctx ends).
func dialStamped(ctx context.Context, url string, arr *arrivals) (*whepclient.Client, error) {
	firstKey := make(chan struct{})
	var once sync.Once
	wc, err := whepclient.Dial(ctx, url, whepclient.Options{
		LoopbackOnly: true,
		SendPLI:      true,
		OnFrame: func(f whepclient.Frame) {
			if idx, t, ok := stamp.Find(f.NALUs); ok {
				arr.add(idx, t, f.CompleteAt)
			}
			if f.Keyframe {
				once.Do(func() { close(firstKey) })
			}
		},
	})
	if err != nil {
		return nil, err
	}
	select {
	case <-firstKey:
		return wc, nil
	case <-ctx.Done():
		st := wc.Stats()
		_ = wc.Close()
		return nil, fmt.Errorf("no keyframe from WHEP within 20 s (client stats %+v)", st)
	}
}
