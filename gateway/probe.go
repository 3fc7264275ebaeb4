package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"sightline/media"
	"sightline/rtsp"
)

// POST /api/v1/probe: connect to a URL the way an API-created camera would, read until the first
// keyframe and describe the stream, without adding a camera. It never returns or logs credentials.

const (
	// probeWait bounds one probe from connecting to the first keyframe.
	probeWait = 5 * time.Second
	// maxProbes bounds the probes running at once (each holds a connection to a camera).
	maxProbes = 4
)

// probeRequest is the body of POST /api/v1/probe.
type probeRequest struct {
	URL       string `json:"url"`
	Transport string `json:"transport"`
}

// probeResult is what a probe answers: the /info shape plus the probed URL, redacted.
type probeResult struct {
	URL string `json:"url"`
	streamInfo
}

// errProbeFailed ends a probe whose source reported a failure before the first keyframe.
type errProbeFailed struct{ msg string }

func (e *errProbeFailed) Error() string { return e.msg }

func (g *Gateway) probe(w http.ResponseWriter, r *http.Request) {
	var req probeRequest
	if e := g.decodeJSONBody(w, r, &req, "url, transport"); e != nil {
		e.write(w)
		return
	}
	cc := withCameraDefaults(CameraConfig{ID: "probe", URL: req.URL, Transport: req.Transport})
	if e := g.checkCamera(r, &cc); e != nil {
		e.msg = scrubURL(e.msg, req.URL)
		e.write(w)
		return
	}
	if kind, _ := cameraKind(cc.URL); kind == kindWHIP {
		(&apiError{http.StatusUnprocessableEntity, "invalid_value",
			"a whip: camera has nothing to probe: its publisher pushes to /whip/{camera}", "url"}).write(w)
		return
	}
	select {
	case g.probeSlots <- struct{}{}:
		defer func() { <-g.probeSlots }()
	default:
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "too_many_probes",
			fmt.Sprintf("%d probes are already running; try again shortly", maxProbes))
		return
	}
	redacted := rtsp.Redact(req.URL)
	in, err := g.runProbe(r.Context(), cc)
	if err != nil {
		if r.Context().Err() != nil {
			return // the client went away
		}
		msg := scrubURL(err.Error(), req.URL)
		var failed *errProbeFailed
		switch {
		case errors.As(err, &failed):
			g.log.Info("probe failed", "url", redacted, "err", msg)
			writeError(w, http.StatusBadGateway, "probe_failed", "probe "+redacted+": "+msg)
		case errors.Is(err, context.DeadlineExceeded):
			g.log.Info("probe timed out", "url", redacted)
			writeError(w, http.StatusGatewayTimeout, "probe_timeout",
				fmt.Sprintf("probe %s: no keyframe within %s (%s)", redacted, probeWait, msg))
		default:
			g.log.Warn("probe failed", "url", redacted, "err", msg)
			writeError(w, http.StatusBadGateway, "probe_failed", "probe "+redacted+": "+msg)
		}
		return
	}
	writeJSON(w, http.StatusOK, probeResult{URL: redacted, streamInfo: in})
}

// runProbe runs a short-lived source for cc into a temporary stream until its first keyframe, then
// stops it and waits for it.
func (g *Gateway) runProbe(parent context.Context, cc CameraConfig) (streamInfo, error) {
	stream := media.NewStream("probe")
	defer stream.Close()
	src, err := newSource(g.cfg, cc, stream, g.log.With("probe", rtsp.Redact(cc.URL)))
	if err != nil {
		return streamInfo{}, err
	}
	rd := stream.NewReader(8)
	defer rd.Close()

	ctx, cancel := context.WithTimeoutCause(parent, probeWait, context.DeadlineExceeded)
	ctx, fail := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	defer func() {
		fail(context.Canceled)
		cancel()
		wg.Wait()
	}()
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := src.Run(ctx); err != nil {
			fail(&errProbeFailed{msg: err.Error()})
		}
	}()
	// A source retries failures forever: the first failure it reports ends the probe.
	go func() {
		defer wg.Done()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if st := src.Status(); st.RestartCount > 0 || st.LastError != "" {
				fail(&errProbeFailed{msg: st.LastError})
				return
			}
		}
	}()

	for {
		au, err := rd.Read(ctx)
		if err != nil {
			if cause := context.Cause(ctx); cause != nil {
				if errors.Is(cause, context.DeadlineExceeded) {
					st := src.Status()
					return streamInfo{}, fmt.Errorf("%w: state %s", context.DeadlineExceeded, st.State)
				}
				return streamInfo{}, cause
			}
			return streamInfo{}, fmt.Errorf("read stream: %w", err)
		}
		if !au.Keyframe {
			continue
		}
		p := stream.Params()
		if p.Codec == "" {
			p.Codec = au.Codec
		}
		in, err := parseStreamInfo(p)
		if err != nil {
			return streamInfo{}, &errProbeFailed{msg: err.Error()}
		}
		st := src.Status()
		in.State, in.Transport = st.State, st.Transport
		if in.Transport == "" {
			in.Transport = cc.Transport
		}
		return in, nil
	}
}

// scrubURL removes rawURL's credentials from msg: the URL itself becomes its redacted form, and its
// user info and password become ***.
func scrubURL(msg, rawURL string) string {
	if rawURL == "" {
		return msg
	}
	msg = strings.ReplaceAll(msg, rawURL, rtsp.Redact(rawURL))
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return msg
	}
	if ui := u.User.String(); ui != "" {
		msg = strings.ReplaceAll(msg, ui, "***")
	}
	if p, ok := u.User.Password(); ok && p != "" {
		msg = strings.ReplaceAll(msg, p, "***")
	}
	if n := u.User.Username(); len(n) >= 4 {
		msg = strings.ReplaceAll(msg, n, "***")
	}
	return msg
}
