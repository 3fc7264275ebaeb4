package main

// The rig every Sightline-running mode measures: the stamped RTSP publisher looping a clip and Sightline
// in-process pulling it as camera cam1, started and closed together, with cam1's API status and the waits
// on it (streaming, analysed) the modes start their windows after.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"sightline/analytics/pipeline"
	"sightline/gateway"
)

// rig is a running publisher and the Sightline pulling it.
type rig struct {
	pub *publisher
	g   *gateway.Gateway
}

// startRig starts the publisher looping clip at fps, then Sightline from baseYAML at logLevel followed by
// sections(the publisher's URL): analytics, cameras (cam1), rules. opts go to gateway.New.
func startRig(ctx context.Context, clip string, fps float64, logLevel slog.Level, sections func(rtspURL string) string, opts ...gateway.Option) (*rig, error) {
	pub, err := newPublisher(clip, fps)
	if err != nil {
		return nil, err
	}
	g, err := startSightlineYAML(ctx, baseYAML(levelName(logLevel))+sections(pub.URL), logLevel, opts...)
	if err != nil {
		pub.close()
		return nil, err
	}
	return &rig{pub: pub, g: g}, nil
}

// close stops Sightline, then the publisher.
func (r *rig) close() {
	r.g.Close()
	r.pub.close()
}

// whep is the WHEP endpoint of cam1's track: "" for the raw track, "/annotated" for the annotated one.
func (r *rig) whep(track string) string { return "http://" + r.g.HTTPAddr() + "/whep/cam1" + track }

// cameraStatus is the part of GET /api/v1/cameras/{id} the benchmarks read.
type cameraStatus struct {
	Viewers          int              `json:"viewers"`
	ViewersRaw       int              `json:"viewersRaw"`
	ViewersAnnotated int              `json:"viewersAnnotated"`
	Analytics        *pipeline.Status `json:"analytics"`
	Status           struct {
		State string `json:"state"`
	} `json:"status"`
}

// status is cam1's API status (5 s at most).
func (r *rig) status(ctx context.Context) (cameraStatus, error) {
	var st cameraStatus
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.g.HTTPAddr()+"/api/v1/cameras/cam1", nil)
	if err != nil {
		return st, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, fmt.Errorf("camera status: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("camera status: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// viewers is cam1's viewer count as Sightline's API reports it (-1 when unknown).
func (r *rig) viewers(ctx context.Context) int {
	st, err := r.status(ctx)
	if err != nil {
		return -1
	}
	return st.Viewers
}

// waitStreaming waits (d at most) until cam1's API state is "streaming".
func (r *rig) waitStreaming(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	last := ""
	for time.Now().Before(deadline) {
		if st, err := r.status(ctx); err == nil {
			last = st.Status.State
			if last == "streaming" {
				return nil
			}
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("camera not streaming after %v (state %q)", d, last)
}

// waitAnalysed waits (30 s at most) until cam1's analytics analysed a frame: the camera plays and the
// model is loaded.
func (r *rig) waitAnalysed(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := r.status(ctx)
		if err == nil && st.Analytics != nil && st.Analytics.Analysed > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("camera not analysed within 30 s (%+v, %v)", st, err)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// waitNoViewers waits (d at most) until Sightline counts no viewer of cam1.
func (r *rig) waitNoViewers(ctx context.Context, d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if st, err := r.status(ctx); err == nil && st.Viewers == 0 {
			return
		}
	}
}
