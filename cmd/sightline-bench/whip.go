package main

// The whip mode: what Sightline's WHIP ingest → WHEP path adds to a direct WebRTC hop. Two WHIP
// publishers (internal/whipclient) send the same looped clip with the same stamp SEI at the same moments:
// one into a whip: camera of an in-process Sightline that a WHEP viewer reads, the other into a direct
// pion answerer (the baseline) that depacketizes with Sightline's own H.264 depacketizer.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	pwebrtc "github.com/pion/webrtc/v4"

	"sightline/internal/rtcloop"
	"sightline/internal/rtsptest"
	"sightline/internal/stamp"
	"sightline/internal/whipclient"
	slwebrtc "sightline/webrtc"
)

type whipConfig struct {
	clip     string
	fps      float64
	duration time.Duration
	outputFlags
}

type whipResult struct {
	Command string         `json:"command"`
	Clip    string         `json:"clip"`
	Window  string         `json:"window"`
	Readers []viewerResult `json:"readers"`
	Added   summary        `json:"added"`
	GoalMet bool           `json:"goal_met"`
}

func whipFlags(args []string, stderr io.Writer) (whipConfig, error) {
	c := whipConfig{}
	fs := newModeFlags("whip", stderr, &c.outputFlags)
	fs.StringVar(&c.clip, "clip", defaultClip(), "Annex-B H.264 clip to publish (looped), an AUD before every access unit")
	fs.Float64Var(&c.fps, "fps", 25, "publishing frame rate")
	fs.DurationVar(&c.duration, "duration", 20*time.Second, "measurement window")
	if err := fs.parse(args); err != nil {
		return c, err
	}
	if c.fps <= 0 || c.fps > 120 {
		return c, fmt.Errorf("-fps %g: want (0, 120]", c.fps)
	}
	return c, checkDuration(c.duration)
}

// runWhip measures per-frame latency of a direct WebRTC receiver and of a WHEP viewer of Sightline's
// whip: camera, both fed by WHIP publishers of the same stamped access units, and their difference.
func runWhip(ctx context.Context, c whipConfig) (*whipResult, error) {
	raw, err := os.ReadFile(c.clip)
	if err != nil {
		return nil, fmt.Errorf("read clip: %w", err)
	}
	aus := rtsptest.SplitAUD(raw)
	g, err := startSightlineYAML(ctx, baseYAML(levelName(c.logLevel))+"cameras:\n  - {id: cam1, url: 'whip:'}\n", c.logLevel)
	if err != nil {
		return nil, err
	}
	defer g.Close()

	base, whep := newArrivals(), newArrivals()
	direct, err := startDirectReceiver(base.add)
	if err != nil {
		return nil, err
	}
	defer direct.close()

	dialCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var pubs []*whipclient.Client
	defer func() {
		for _, p := range pubs {
			_ = p.Close()
		}
	}()
	for _, u := range []string{"http://" + g.HTTPAddr() + "/whip/cam1", direct.url} {
		p, err := whipclient.Dial(dialCtx, u, whipclient.Options{LoopbackOnly: true})
		if err != nil {
			return nil, fmt.Errorf("whip publish to %s: %w", u, err)
		}
		pubs = append(pubs, p)
		if err := p.WaitConnected(dialCtx); err != nil {
			return nil, fmt.Errorf("whip publish to %s: %w", u, err)
		}
	}
	var stamps stampLog
	feedCtx, stopFeed := context.WithCancel(ctx)
	feedErr := make(chan error, 1)
	go func() { feedErr <- feedWhip(feedCtx, aus, c.fps, pubs, &stamps) }()
	defer func() {
		stopFeed()
		<-feedErr
	}()

	wc, err := dialStamped(dialCtx, "http://"+g.HTTPAddr()+"/whep/cam1", whep)
	if err != nil {
		return nil, err
	}
	defer wc.Close()

	start := time.Now()
	if err := sleepCtx(ctx, c.duration); err != nil {
		return nil, err
	}
	end := time.Now()
	time.Sleep(500 * time.Millisecond) // let frames stamped just before the end arrive
	select {
	case err := <-feedErr: // the feed stopped early: a publisher failed
		feedErr <- err // for the deferred stop
		return nil, fmt.Errorf("whip feed: %w", err)
	default:
	}
	lo, hi := stamps.indexRange(start, end)
	res := &whipResult{Command: commandLine(), Clip: c.clip,
		Window: fmt.Sprintf("%v (frames %d..%d)", end.Sub(start).Round(time.Millisecond), lo, hi)}
	res.Readers, res.Added = compareReaders(lo, hi, "webrtc direct (baseline)", base.window(lo, hi),
		"sightline whip->whep", whep.window(lo, hi))
	res.GoalMet = res.Added.N > 0 && res.Added.Median <= 5 && res.Added.P99 <= 20
	return res, nil
}

// feedWhip sends aus in a loop at fps to every publisher until ctx ends, each access unit stamped with its
// frame index and the wall-clock just before it is handed to that publisher (the first publisher's stamp
// goes to stamps). The order of the publishers alternates per frame, so neither always goes second.
func feedWhip(ctx context.Context, aus [][][]byte, fps float64, pubs []*whipclient.Client, stamps *stampLog) error {
	period := time.Duration(float64(time.Second) / fps)
	start := time.Now()
	t := time.NewTimer(0)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		au, ts := aus[i%len(aus)], uint32(1_000_000+int64(float64(i)*90000/fps))
		for k := range pubs {
			p := pubs[(k+i)%len(pubs)]
			now := time.Now()
			if k == 0 {
				stamps.record(now)
			}
			if err := p.WriteAccessUnit(stamp.Insert(au, uint64(i), now), ts); err != nil {
				return fmt.Errorf("frame %d: %w", i, err)
			}
		}
		t.Reset(time.Until(start.Add(time.Duration(i+1) * period)))
	}
}

// directReceiver is the baseline: a WHIP endpoint on 127.0.0.1 whose pion answerer depacketizes the
// publisher's track with Sightline's H264Depacketizer and reports every stamped access unit.
type directReceiver struct {
	url    string
	srv    *httptest.Server
	api    *pwebrtc.API
	mux    ice.UDPMux
	mu     sync.Mutex
	closed bool
	pcs    []*pwebrtc.PeerConnection
	done   sync.WaitGroup // track readers
}

func startDirectReceiver(onFrame func(index uint64, stamped, arrived time.Time)) (*directReceiver, error) {
	m := &pwebrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, fmt.Errorf("baseline codecs: %w", err)
	}
	se := pwebrtc.SettingEngine{}
	// Loopback only, on one UDP socket on 127.0.0.1 as Sightline and whipclient have: with pion's default
	// per-candidate sockets every keyframe reached this receiver ~95 ms late. Read buffer as Sightline's.
	mux, err := rtcloop.Socket(&se, 8<<20, 0)
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	d := &directReceiver{api: pwebrtc.NewAPI(pwebrtc.WithMediaEngine(m), pwebrtc.WithSettingEngine(se)), mux: mux}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := d.answer(w, r, onFrame); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
	}))
	d.url = d.srv.URL + "/whip/direct"
	return d, nil
}

// answer accepts one WHIP offer; its track is read until the PeerConnection closes.
func (d *directReceiver) answer(w http.ResponseWriter, r *http.Request, onFrame func(uint64, time.Time, time.Time)) error {
	offer, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil || r.Method != http.MethodPost {
		return errors.Join(errors.New("want a POSTed SDP offer"), err)
	}
	pc, err := d.api.NewPeerConnection(pwebrtc.Configuration{})
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.pcs = append(d.pcs, pc)
	d.mu.Unlock()
	pc.OnTrack(func(tr *pwebrtc.TrackRemote, _ *pwebrtc.RTPReceiver) {
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			return
		}
		d.done.Add(1)
		d.mu.Unlock()
		defer d.done.Done()
		dep := slwebrtc.NewH264Depacketizer()
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}

			for _, au := range dep.Push(pkt, time.Now()) {
				if idx, t, ok := stamp.Find(au.NALUs); ok {
					onFrame(idx, t, au.Received)
				}
			}
		}
	})
	gathered := pwebrtc.GatheringCompletePromise(pc)
	if err := pc.SetRemoteDescription(pwebrtc.SessionDescription{Type: pwebrtc.SDPTypeOffer, SDP: string(offer)}); err != nil {
		return err
	}
	ans, err := pc.CreateAnswer(nil)
	if err == nil {
		err = pc.SetLocalDescription(ans)
	}
	if err != nil {
		return err
	}
	<-gathered
	w.Header().Set("Content-Type", "application/sdp")
	w.WriteHeader(http.StatusCreated)
	_, err = io.WriteString(w, pc.LocalDescription().SDP)
	return err
}

// close closes the answerer's PeerConnections and waits for their track readers, then the HTTP server.
func (d *directReceiver) close() {
	d.mu.Lock()
	d.closed = true
	for _, pc := range d.pcs {
		_ = pc.Close()
	}
	d.mu.Unlock()
	d.srv.Close()
	d.done.Wait()
	_ = d.mux.Close() // closes its socket
}

func printWhip(w io.Writer, r *whipResult, asJSON bool) {
	if asJSON {
		printJSON(w, r)
		return
	}
	fmt.Fprintf(w, "clip: %s\nwindow: %s\n\n", r.Clip, r.Window)
	printReaders(w, r.Readers, "added by sightline's relay", r.Added)
	fmt.Fprintf(w, "\ngoal (the latency mode's): added <= 5 ms median, <= 20 ms p99: %s\n", verdict(r.GoalMet))
	fmt.Fprintln(w, "latency = arrival of the whole access unit - publisher wall-clock just before it was handed to its WHIP client")
}
