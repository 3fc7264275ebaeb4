package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"time"
)

type firstFrameConfig struct {
	clip    string
	fps     float64
	runs    int
	warm    bool
	model   string
	library string
	outputFlags
}

func firstFrameFlags(args []string, stderr io.Writer) (firstFrameConfig, error) {
	c := firstFrameConfig{}
	fs := newModeFlags("firstframe", stderr, &c.outputFlags)
	fs.StringVar(&c.clip, "clip", defaultClip(), "Annex-B H.264 clip to publish (looped; the street clip has an IDR every second)")
	fs.Float64Var(&c.fps, "fps", 25, "publishing frame rate")
	fs.IntVar(&c.runs, "runs", 10, "viewers per track, one after another")
	fs.BoolVar(&c.warm, "warm", false, "cameras[].annotatedWarm: true (decode the camera while nobody watches the annotated track)")
	modelFlags(fs.FlagSet, &c.model, &c.library)
	if err := fs.parse(args); err != nil {
		return c, err
	}
	if c.runs < 1 || c.runs > 1000 {
		return c, fmt.Errorf("-runs %d: want 1..1000", c.runs)
	}
	return c, nil
}

// firstFrameTrack is the figures of one track over all runs.
type firstFrameTrack struct {
	Track string `json:"track"`
	Runs  int    `json:"runs"`
	// Failed runs decoded nothing within 10 s.
	Failed int `json:"failed"`
	// First is POST → first decoded picture; Answer is POST → WHEP answer applied (Dial returned).
	First  summary   `json:"first_frame"`
	Answer summary   `json:"answer"`
	Each   []float64 `json:"first_frame_each_ms"`
}

type firstFrameResult struct {
	Command     string            `json:"command"`
	Clip        string            `json:"clip"`
	Warm        bool              `json:"annotated_warm"`
	Tracks      []firstFrameTrack `json:"tracks"`
	GoalMet     bool              `json:"goal_met"`
	LoadAverage string            `json:"load_average_before"`
}

// runFirstFrame measures, run after run, the time from just before a WHEP POST to the first decoded
// picture: a new viewer of the raw track, then a new viewer of the annotated track, each one alone (the
// previous left, and the annotator stopped unless warm), joining at a random point of the camera's GOP.
func runFirstFrame(ctx context.Context, c firstFrameConfig, progress io.Writer) (*firstFrameResult, error) {
	if err := checkModel(c.model, c.library); err != nil {
		return nil, err
	}
	load := loadAverage()
	rg, err := startRig(ctx, c.clip, c.fps, c.logLevel, func(url string) string {
		return analyticsYAML(c.model, c.library, 5) +
			fmt.Sprintf("cameras:\n  - {id: cam1, url: %q, transport: tcp, annotatedWarm: %v}\n", url, c.warm)
	})
	if err != nil {
		return nil, err
	}
	defer rg.close()

	// Wait for the camera to play (and the model to load) before the first run.
	if err := rg.waitAnalysed(ctx); err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "firstframe: %d runs of raw then annotated (annotatedWarm %v)...\n", c.runs, c.warm)

	tracks := []struct {
		name, url string
		first     []time.Duration
		answer    []time.Duration
		failed    int
		each      []float64
	}{{name: "raw /whep/cam1", url: rg.whep("")}, {name: "annotated /whep/cam1/annotated", url: rg.whep("/annotated")}}
	for run := 0; run < c.runs; run++ {
		for i := range tracks {
			tr := &tracks[i]
			// Join at a random point of the camera's 1 s GOP.
			if err := sleepCtx(ctx, time.Duration(rand.Int64N(int64(time.Second)))); err != nil {
				return nil, err
			}
			first, answer, err := firstFrameOnce(ctx, tr.url)
			if err != nil {
				tr.failed++
				fmt.Fprintf(progress, "firstframe: %s run %d: %v\n", tr.name, run+1, err)
			} else {
				tr.first = append(tr.first, first)
				tr.answer = append(tr.answer, answer)
				tr.each = append(tr.each, float64(first.Microseconds())/1000)
			}
			// The viewer left: wait until Sightline counts no viewer, and for the annotator to stop.
			rg.waitNoViewers(ctx, 10*time.Second)
			time.Sleep(200 * time.Millisecond)
		}
	}
	res := &firstFrameResult{Command: commandLine(), Clip: c.clip, Warm: c.warm, LoadAverage: load}
	for _, tr := range tracks {
		res.Tracks = append(res.Tracks, firstFrameTrack{Track: tr.name, Runs: c.runs, Failed: tr.failed,
			First: summarize(tr.first), Answer: summarize(tr.answer), Each: tr.each})
	}
	a := res.Tracks[1]
	res.GoalMet = a.Failed == 0 && a.First.N > 0 && a.First.Median <= 300
	return res, nil
}

// firstFrameOnce opens one viewer of url, waits (10 s at most) for its first decoded picture and leaves.
func firstFrameOnce(ctx context.Context, url string) (first, answer time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	t0 := time.Now()
	v, err := dialDecoding(ctx, url, nil, "")
	if err != nil {
		return 0, 0, err
	}
	defer v.close()
	answer = time.Since(t0)
	select {
	case <-v.firstDecoded():
		return v.firstDecodedAt().Sub(t0), answer, nil
	case <-ctx.Done():
		return 0, 0, fmt.Errorf("no decoded picture within 10 s (client %+v)", v.stats())
	}
}

func printFirstFrame(w io.Writer, r *firstFrameResult, asJSON bool) {
	if asJSON {
		printJSON(w, r)
		return
	}
	mode := "cold (annotator stopped between viewers)"
	if r.Warm {
		mode = "warm (cameras[].annotatedWarm: true)"
	}
	fmt.Fprintf(w, "clip: %s\nannotated: %s\nload average before: %s\n\n", r.Clip, mode, r.LoadAverage)
	t := table{head: []string{"track", "runs", "failed", "p50 ms", "p95 ms", "max ms", "min ms", "answer p50 ms"}}
	for _, v := range r.Tracks {
		t.add(v.Track, fmt.Sprint(v.Runs), fmt.Sprint(v.Failed), ms(v.First.Median), ms(v.First.P95), ms(v.First.Max),
			ms(v.First.Min), ms(v.Answer.Median))
	}
	t.print(w)
	fmt.Fprintf(w, "\ngoal: annotated first frame <= 300 ms median: %s\n", verdict(r.GoalMet))
	for _, v := range r.Tracks {
		fmt.Fprintf(w, "%s each run (ms): %v\n", v.Track, v.Each)
	}
	fmt.Fprintln(w, "first frame = just before the WHEP POST -> first picture out of the client's decoder (libavcodec, software); answer = POST -> answer applied; each viewer joins at a random point of the camera's 1 s GOP, alone")
}
