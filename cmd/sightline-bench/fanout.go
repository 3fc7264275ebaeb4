package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"sightline/internal/stamp"
	"sightline/internal/whepclient"
)

type fanoutConfig struct {
	clip           string
	fps            float64
	transport      string
	viewers        []int
	duration       time.Duration
	clientsProcess bool
	dialParallel   int
	cpuProfile     string
	blockProfile   string
	outputFlags
}

func parseViewers(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 5000 {
			return nil, fmt.Errorf("-viewers: %q is not a count in [1, 5000]", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func fanoutFlags(args []string, stderr io.Writer) (fanoutConfig, error) {
	c := fanoutConfig{}
	fs := newModeFlags("fanout", stderr, &c.outputFlags)
	fs.StringVar(&c.clip, "clip", defaultClip(), "Annex-B H.264 clip to publish (looped)")
	fs.Float64Var(&c.fps, "fps", 25, "publishing frame rate")
	fs.StringVar(&c.transport, "transport", "tcp", "RTSP transport Sightline pulls with: tcp or udp")
	v := fs.String("viewers", "100,250,500", "comma-separated viewer counts, one run each")
	fs.DurationVar(&c.duration, "duration", 15*time.Second, "measurement window per viewer count")
	fs.BoolVar(&c.clientsProcess, "clients-process", false, "run the viewers in a child process, so the CPU figure is Sightline's (plus the publisher) alone")
	fs.IntVar(&c.dialParallel, "dial-parallel", 16, "viewers connecting at once")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of this process over each run's window to FILE (FILE.<viewers> when several counts run)")
	fs.StringVar(&c.blockProfile, "blockprofile", "", "record blocking and mutex contention over the runs; write FILE.block and FILE.mutex at the end")
	if err := fs.parse(args); err != nil {
		return c, err
	}
	var err error
	if c.viewers, err = parseViewers(*v); err != nil {
		return c, err
	}
	if err := firstError(checkTransport(c.transport), checkDuration(c.duration)); err != nil {
		return c, err
	}
	if c.dialParallel < 1 {
		c.dialParallel = 1
	}
	return c, nil
}

// viewerStat is one viewer's delivery over the window.
type viewerStat struct {
	From      int64  `json:"from_ns"` // max(window start, first keyframe's stamp); 0 when no keyframe came
	Delivered int    `json:"delivered"`
	RTPLost   uint64 `json:"rtp_lost"`
}

// poolResult is what a set of viewers saw; the child process prints it as JSON.
type poolResult struct {
	Connected   int          `json:"connected"`
	DialErrors  int          `json:"dial_errors"`
	FirstError  string       `json:"first_error,omitempty"`
	DialTime    float64      `json:"dial_seconds"`
	WindowStart int64        `json:"window_start_ns"`
	WindowEnd   int64        `json:"window_end_ns"`
	Viewers     []viewerStat `json:"viewers"`
}

type poolViewer struct {
	c     *whepclient.Client
	keyT  atomic.Int64
	mu    sync.Mutex
	times []int64 // stamp times of frames received after the first keyframe
}

// runViewers connects n WHEP viewers to url, measures for d, and closes them. onStart and onEnd are
// called at the window's edges (the parent measures CPU there).
func runViewers(ctx context.Context, url string, n, parallel int, d time.Duration, onStart, onEnd func()) poolResult {
	var res poolResult
	viewers := make([]*poolViewer, n)
	t0 := time.Now()
	var mu sync.Mutex
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := range viewers {
		v := &poolViewer{}
		viewers[i] = v
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			c, err := whepclient.Dial(dctx, url, whepclient.Options{
				LoopbackOnly: true,
				OnFrame: func(f whepclient.Frame) {
					_, t, ok := stamp.Find(f.NALUs)
					if !ok {
						return
					}
					if v.keyT.Load() == 0 {
						if !f.Keyframe {
							return
						}
						v.keyT.Store(t.UnixNano())
					}
					v.mu.Lock()
					v.times = append(v.times, t.UnixNano())
					v.mu.Unlock()
				},
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.DialErrors++
				if res.FirstError == "" {
					res.FirstError = err.Error()
				}
				return
			}
			v.c = c
			res.Connected++
		}()
	}
	wg.Wait()
	res.DialTime = time.Since(t0).Seconds()

	start := time.Now()
	onStart()
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
	end := time.Now()
	onEnd()
	time.Sleep(500 * time.Millisecond) // frames stamped just before the end are still on their way
	res.WindowStart, res.WindowEnd = start.UnixNano(), end.UnixNano()

	// Close in parallel, bounded.
	for _, v := range viewers {
		if v.c == nil {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_ = v.c.Close()
		}()
	}
	wg.Wait()
	for _, v := range viewers {
		if v.c == nil {
			continue
		}
		st := viewerStat{RTPLost: v.c.Stats().Lost}
		if k := v.keyT.Load(); k != 0 {
			st.From = max(k, res.WindowStart)
			for _, t := range v.times {
				if t >= st.From && t < res.WindowEnd {
					st.Delivered++
				}
			}
		}
		res.Viewers = append(res.Viewers, st)
	}
	return res
}

// fanoutRun is the result for one viewer count.
type fanoutRun struct {
	Viewers        int     `json:"viewers"`
	Connected      int     `json:"connected"`
	DialErrors     int     `json:"dial_errors"`
	FirstError     string  `json:"first_error,omitempty"`
	DialSeconds    float64 `json:"dial_seconds"`
	NoKeyframe     int     `json:"viewers_without_keyframe"`
	DeliveredMin   float64 `json:"delivered_pct_min"`
	DeliveredMed   float64 `json:"delivered_pct_median"`
	DeliveredMean  float64 `json:"delivered_pct_mean"`
	RTPLostTotal   uint64  `json:"rtp_packets_lost_total"`
	CPUPercent     float64 `json:"cpu_pct"`           // this process (server + publisher, + clients when in-process)
	ClientCPU      float64 `json:"client_cpu_pct"`    // child process, -clients-process only
	RSSMB          float64 `json:"rss_mb"`            // this process
	ClientRSSMB    float64 `json:"client_rss_mb"`     // child process
	GoroutinesPre  int     `json:"goroutines_before"` // this process
	GoroutinesMid  int     `json:"goroutines_during"` // this process
	GoroutinesPost int     `json:"goroutines_after"`  // this process, after every viewer left
	MachineCPU     float64 `json:"machine_cpu_pct"`   // every process on the machine, ours and others'
	UDPInErrors    int64   `json:"udp_in_errors"`     // machine-wide /proc/net/snmp deltas over the window
	UDPRcvbufErrs  int64   `json:"udp_rcvbuf_errors"` // (receive queues full: the receiver was too slow)
	UDPSndbufErrs  int64   `json:"udp_sndbuf_errors"`
	ServerViewers  int     `json:"server_viewers_during"`
	ServerAfter    int     `json:"server_viewers_after"`
}

type fanoutResult struct {
	Command        string      `json:"command"`
	Clip           string      `json:"clip"`
	CPUs           int         `json:"cpus"`
	ClientsProcess bool        `json:"clients_process"`
	Duration       string      `json:"duration"`
	Runs           []fanoutRun `json:"runs"`
}

func runFanout(ctx context.Context, c fanoutConfig, progress io.Writer) (*fanoutResult, error) {
	rg, err := startRig(ctx, c.clip, c.fps, c.logLevel, func(url string) string { return cameraYAML(url, c.transport) })
	if err != nil {
		return nil, err
	}
	defer rg.close()
	pub, url := rg.pub, rg.whep("")
	if err := rg.waitStreaming(ctx, 20*time.Second); err != nil {
		return nil, err
	}

	if c.blockProfile != "" {
		runtime.SetBlockProfileRate(int(time.Millisecond))
		runtime.SetMutexProfileFraction(10)
		defer writeNamedProfiles(c.blockProfile)
	}
	res := &fanoutResult{Command: commandLine(), Clip: c.clip, CPUs: runtime.NumCPU(), ClientsProcess: c.clientsProcess, Duration: c.duration.String()}
	for _, n := range c.viewers {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(progress, "fanout: %d viewers...\n", n)
		run := fanoutRun{Viewers: n, GoroutinesPre: settleGoroutines(0, 2*time.Second)}
		var cpu, ccpu cpuMeter
		var mcpu machineMeter
		var udp0 map[string]int64
		childPID := 0
		var prof *os.File
		onStart := func() {
			prof = startProfile(c.cpuProfile, n, len(c.viewers) > 1)
			cpu = startCPU(0)
			mcpu = startMachine()
			udp0 = udpCounters()
			if childPID > 0 {
				ccpu = startCPU(childPID)
			}
		}
		onEnd := func() {
			run.CPUPercent = cpu.percent()
			run.MachineCPU = mcpu.percent()
			if udp1 := udpCounters(); udp0 != nil && udp1 != nil {
				run.UDPInErrors = udp1["InErrors"] - udp0["InErrors"]
				run.UDPRcvbufErrs = udp1["RcvbufErrors"] - udp0["RcvbufErrors"]
				run.UDPSndbufErrs = udp1["SndbufErrors"] - udp0["SndbufErrors"]
			}
			stopProfile(prof)
			if rss, err := rssBytes(0); err == nil {
				run.RSSMB = float64(rss) / (1 << 20)
			}
			if childPID > 0 {
				run.ClientCPU = ccpu.percent()
				if rss, err := rssBytes(childPID); err == nil {
					run.ClientRSSMB = float64(rss) / (1 << 20)
				}
			}
			run.GoroutinesMid = runtime.NumGoroutine()
			run.ServerViewers = rg.viewers(ctx)
		}
		var pr poolResult
		if c.clientsProcess {
			pr, err = runChildViewers(ctx, url, n, c, &childPID, onStart, onEnd)
			if err != nil {
				return res, err
			}
		} else {
			pr = runViewers(ctx, url, n, c.dialParallel, c.duration, onStart, onEnd)
		}
		run.Connected, run.DialErrors, run.FirstError, run.DialSeconds = pr.Connected, pr.DialErrors, pr.FirstError, pr.DialTime
		var pct []float64
		for _, v := range pr.Viewers {
			run.RTPLostTotal += v.RTPLost
			if v.From == 0 {
				run.NoKeyframe++
				pct = append(pct, 0)
				continue
			}
			pubd := pub.published(time.Unix(0, v.From), time.Unix(0, pr.WindowEnd))
			if pubd == 0 {
				continue
			}
			pct = append(pct, 100*float64(v.Delivered)/float64(pubd))
		}
		if len(pct) > 0 {
			sort.Float64s(pct)
			sum := 0.0
			for _, p := range pct {
				sum += p
			}
			run.DeliveredMin, run.DeliveredMed, run.DeliveredMean = pct[0], percentile(pct, 50), sum/float64(len(pct))
		}
		run.GoroutinesPost = settleGoroutines(run.GoroutinesPre, 10*time.Second)
		run.ServerAfter = rg.viewers(ctx)
		res.Runs = append(res.Runs, run)
	}
	return res, nil
}

// startProfile starts a CPU profile into path (path.n when several); nil when path is "" or it fails.
func startProfile(path string, n int, several bool) *os.File {
	if path == "" {
		return nil
	}
	if several {
		path = fmt.Sprintf("%s.%d", path, n)
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cpuprofile: %v\n", err)
		return nil
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "cpuprofile: %v\n", err)
		_ = f.Close()
		return nil
	}
	return f
}

func stopProfile(f *os.File) {
	if f == nil {
		return
	}
	pprof.StopCPUProfile()
	_ = f.Close()
}

// writeNamedProfiles writes the block and mutex profiles to path.block and path.mutex.
func writeNamedProfiles(path string) {
	for _, name := range []string{"block", "mutex"} {
		f, err := os.Create(path + "." + name)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%sprofile: %v\n", name, err)
			continue
		}
		if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
			fmt.Fprintf(os.Stderr, "%sprofile: %v\n", name, err)
		}
		_ = f.Close()
	}
}

// settleGoroutines waits up to d for the goroutine count to fall to target (0: just wait d/4) and
// returns the count.
func settleGoroutines(target int, d time.Duration) int {
	if target == 0 {
		time.Sleep(d / 4)
		return runtime.NumGoroutine()
	}
	deadline := time.Now().Add(d)
	for runtime.NumGoroutine() > target && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	return runtime.NumGoroutine()
}

// runChildViewers runs `sightline-bench fanout-clients` and relays its window edges.
func runChildViewers(ctx context.Context, url string, n int, c fanoutConfig, pid *int, onStart, onEnd func()) (poolResult, error) {
	var pr poolResult
	exe, err := os.Executable()
	if err != nil {
		return pr, fmt.Errorf("find own executable: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, c.duration+5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, exe, "fanout-clients", "-url", url, "-viewers", strconv.Itoa(n),
		"-duration", c.duration.String(), "-dial-parallel", strconv.Itoa(c.dialParallel))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return pr, fmt.Errorf("child stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return pr, fmt.Errorf("start fanout-clients: %w", err)
	}
	*pid = cmd.Process.Pid
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	gotResult := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "START":
			onStart()
		case line == "END":
			onEnd()
		case strings.HasPrefix(line, "{"):
			if err := json.Unmarshal([]byte(line), &pr); err != nil {
				_ = cmd.Wait()
				return pr, fmt.Errorf("decode fanout-clients result: %w", err)
			}
			gotResult = true
		}
	}
	if err := cmd.Wait(); err != nil {
		return pr, fmt.Errorf("fanout-clients: %w", err)
	}
	if !gotResult {
		return pr, fmt.Errorf("fanout-clients printed no result")
	}
	return pr, nil
}

// runFanoutClients is the child side of -clients-process.
func runFanoutClients(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("fanout-clients", stderr)
	url := fs.String("url", "", "WHEP endpoint (loopback only)")
	n := fs.Int("viewers", 1, "viewers")
	d := fs.Duration("duration", 15*time.Second, "window")
	par := fs.Int("dial-parallel", 16, "viewers connecting at once")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 || *n > 5000 || *d <= 0 || *d > time.Hour || *par < 1 {
		return fmt.Errorf("fanout-clients: bad -viewers, -duration or -dial-parallel")
	}
	pr := runViewers(ctx, *url, *n, *par, *d,
		func() { fmt.Fprintln(stdout, "START") },
		func() { fmt.Fprintln(stdout, "END") })
	b, err := json.Marshal(pr)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, string(b))
	return err
}

func printFanout(w io.Writer, r *fanoutResult, asJSON bool) {
	if asJSON {
		printJSON(w, r)
		return
	}
	mode := "viewers in this process (CPU and RSS include the clients)"
	if r.ClientsProcess {
		mode = "viewers in a child process (CPU/RSS: server+publisher | clients)"
	}
	fmt.Fprintf(w, "clip: %s\ncpus: %d, window: %s per run, %s\n\n", r.Clip, r.CPUs, r.Duration, mode)
	t := table{head: []string{"viewers", "connected", "dial s", "no key", "deliv% min", "median", "mean", "rtp lost",
		"cpu %", "machine cpu %", "udp rcvbuf/in/sndbuf err", "rss MB", "gor before", "during", "after", "srv viewers", "after"}}
	for _, x := range r.Runs {
		cpu, rss := fmt.Sprintf("%.0f", x.CPUPercent), fmt.Sprintf("%.0f", x.RSSMB)
		if r.ClientsProcess {
			cpu = fmt.Sprintf("%.0f | %.0f", x.CPUPercent, x.ClientCPU)
			rss = fmt.Sprintf("%.0f | %.0f", x.RSSMB, x.ClientRSSMB)
		}
		t.add(fmt.Sprint(x.Viewers), fmt.Sprint(x.Connected), fmt.Sprintf("%.1f", x.DialSeconds), fmt.Sprint(x.NoKeyframe),
			fmt.Sprintf("%.1f", x.DeliveredMin), fmt.Sprintf("%.1f", x.DeliveredMed), fmt.Sprintf("%.1f", x.DeliveredMean),
			fmt.Sprint(x.RTPLostTotal), cpu, fmt.Sprintf("%.0f", x.MachineCPU),
			fmt.Sprintf("%d/%d/%d", x.UDPRcvbufErrs, x.UDPInErrors, x.UDPSndbufErrs), rss,
			fmt.Sprint(x.GoroutinesPre), fmt.Sprint(x.GoroutinesMid), fmt.Sprint(x.GoroutinesPost),
			fmt.Sprint(x.ServerViewers), fmt.Sprint(x.ServerAfter))
	}
	t.print(w)
	for _, x := range r.Runs {
		if x.FirstError != "" {
			fmt.Fprintf(w, "%d viewers: %d dial errors, first: %s\n", x.Viewers, x.DialErrors, x.FirstError)
		}
	}
	fmt.Fprintln(w, "deliv% = frames received / frames published in [max(window start, viewer's first keyframe), window end)")
	fmt.Fprintln(w, "cpu % is of one core (100 = one core busy); machine cpu % counts every process on the machine (other work included)")
	fmt.Fprintln(w, "udp err: machine-wide /proc/net/snmp deltas over the window (RcvbufErrors: a receiver's socket queue overflowed)")
}
