package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"

	"sightline/codec"
	"sightline/media"
)

// Snapshot endpoints: the accelerators present, a camera's stream parameters (from its SPS) and a JPEG
// of its latest picture. They only read streams: they never change a camera or hold a stream up.

const (
	// frameWait bounds how long frame.jpg waits for a picture (the next keyframe when no GOP is cached).
	frameWait = 2 * time.Second
	// annotatedFrameWait bounds the wait on the annotated stream, which first starts its annotator
	// (decoder and encoder) and waits for a raw keyframe before it encodes the forced IDR.
	annotatedFrameWait = 5 * time.Second
	// maxSnapshotWidth bounds ?width= of frame.jpg.
	maxSnapshotWidth = 7680
)

// hwAccelCap answers GET /api/v1/hw-accel-cap: the accelerators (with why one is unavailable) and the
// decoders and encoders compiled into libavcodec.
func (g *Gateway) hwAccelCap(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, codec.Probe())
}

// streamInfo is what GET /api/v1/cameras/{id}/info returns.
type streamInfo struct {
	Codec      media.Codec `json:"codec"`
	Profile    string      `json:"profile"`
	ProfileIdc int         `json:"profile_idc"`
	Level      string      `json:"level"`
	Width      int         `json:"width"`
	Height     int         `json:"height"`
	// FPS is the frame rate the SPS declares, or the measured one when the SPS declares none.
	FPS         float64           `json:"fps"`
	MeasuredFPS float64           `json:"measured_fps"`
	BitrateBps  float64           `json:"bitrate_bps"`
	Transport   string            `json:"transport,omitempty"`
	State       media.SourceState `json:"state"`
}

// parseStreamInfo reads codec, profile, level, size and declared frame rate from a stream's SPS.
func parseStreamInfo(p media.Params) (streamInfo, error) {
	in := streamInfo{Codec: p.Codec}
	switch p.Codec {
	case media.CodecH264:
		var s h264.SPS
		if err := s.Unmarshal(p.SPS); err != nil {
			return in, fmt.Errorf("parse H.264 SPS: %w", err)
		}
		in.ProfileIdc = int(s.ProfileIdc)
		in.Profile = h264ProfileName(s.ProfileIdc, s.ConstraintSet1Flag)
		in.Level = strconv.FormatFloat(float64(s.LevelIdc)/10, 'f', -1, 64)
		in.Width, in.Height, in.FPS = s.Width(), s.Height(), s.FPS()
	case media.CodecH265:
		var s h265.SPS
		if err := s.Unmarshal(p.SPS); err != nil {
			return in, fmt.Errorf("parse H.265 SPS: %w", err)
		}
		ptl := s.ProfileTierLevel
		in.ProfileIdc = int(ptl.GeneralProfileIdc)
		in.Profile = h265ProfileName(ptl.GeneralProfileIdc)
		// general_level_idc is 30 times the level number.
		in.Level = strconv.FormatFloat(float64(ptl.GeneralLevelIdc)/30, 'f', -1, 64)
		in.Width, in.Height, in.FPS = s.Width(), s.Height(), s.FPS()
	default:
		return in, fmt.Errorf("parse SPS: unknown codec %q", p.Codec)
	}
	if in.Width <= 0 || in.Height <= 0 {
		return in, fmt.Errorf("parse %s SPS: picture size %dx%d", p.Codec, in.Width, in.Height)
	}
	return in, nil
}

func h264ProfileName(idc uint8, constraintSet1 bool) string {
	switch idc {
	case 66:
		if constraintSet1 {
			return "Constrained Baseline"
		}
		return "Baseline"
	case 77:
		return "Main"
	case 88:
		return "Extended"
	case 100:
		return "High"
	case 110:
		return "High 10"
	case 122:
		return "High 4:2:2"
	case 244:
		return "High 4:4:4 Predictive"
	case 44:
		return "CAVLC 4:4:4 Intra"
	}
	return "profile_idc " + strconv.Itoa(int(idc))
}

func h265ProfileName(idc uint8) string {
	switch idc {
	case 1:
		return "Main"
	case 2:
		return "Main 10"
	case 3:
		return "Main Still Picture"
	case 4:
		return "Range Extensions"
	}
	return "general_profile_idc " + strconv.Itoa(int(idc))
}

// cameraInfo answers GET /api/v1/cameras/{id}/info from the camera's SPS and its source status.
func (g *Gateway) cameraInfo(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	c, ok := g.cameras.get(id)
	if !ok {
		writeError(w, http.StatusNotFound, "unknown_camera", "no camera with id "+quote(id))
		return
	}
	cfg, _, st := g.cameras.snapshot(c)
	p := c.raw.Params()
	if p.Codec == "" {
		p.Codec = st.Codec
	}
	if len(p.SPS) == 0 {
		writeError(w, http.StatusServiceUnavailable, "no_stream_yet",
			fmt.Sprintf("camera %s has not sent its stream parameters (SPS) yet (state: %s)", quote(id), st.State))
		return
	}
	in, err := parseStreamInfo(p)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "bad_stream", "camera "+quote(id)+": "+err.Error())
		return
	}
	in.MeasuredFPS, in.BitrateBps, in.State = st.FPS, st.BitrateBps, st.State
	if in.FPS == 0 {
		in.FPS = st.FPS
	}
	in.Transport = st.Transport
	if in.Transport == "" {
		in.Transport = cfg.Transport
	}
	writeJSON(w, http.StatusOK, in)
}

// frameJPEG answers GET /api/v1/cameras/{id}/frame.jpg?width=&annotated=: it decodes the current picture
// of the camera's raw stream from its GOP cache (or, with annotated=1 or variant=annotated, the next
// keyframe of its annotated stream: joining it starts the annotator, which forces an IDR at once) with a
// short-lived software decoder, optionally
// scales it to width (keeping the aspect ratio) and sends it as a JPEG. While there is no frame to give
// (camera stopped, disabled, not streaming, nothing within the wait) it answers 404 no_frame.
func (g *Gateway) frameJPEG(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	c, ok := g.cameras.get(id)
	if !ok {
		writeError(w, http.StatusNotFound, "unknown_camera", "no camera with id "+quote(id))
		return
	}
	q := r.URL.Query()
	width := 0
	if s := q.Get("width"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 2 || n > maxSnapshotWidth {
			writeError(w, http.StatusBadRequest, "bad_width",
				fmt.Sprintf("width must be an integer from 2 to %d, got %s", maxSnapshotWidth, quote(s)))
			return
		}
		width = n
	}
	annotated, err := snapshotVariant(q.Get("annotated"), q.Get("variant"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_variant", err.Error())
		return
	}
	if _, _, st := g.cameras.snapshot(c); st.State == media.StateDisabled || st.State == media.StateStopped {
		writeError(w, http.StatusNotFound, "no_frame", "no frame yet: camera "+quote(id)+" is "+string(st.State))
		return
	}
	stream, wait, what := c.raw, frameWait, "frame"
	if annotated {
		stream, wait, what = g.cameras.annotated(c), annotatedFrameWait, "annotated frame"
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	f, err := grabFrame(ctx, stream)
	if err != nil {
		if r.Context().Err() != nil {
			return // the client went away
		}
		_, _, st := g.cameras.snapshot(c)
		if errors.Is(err, context.DeadlineExceeded) {
			writeError(w, http.StatusNotFound, "no_frame",
				fmt.Sprintf("no %s from camera %s within %s (state: %s)", what, quote(id), wait, st.State))
			return
		}
		g.log.Warn("snapshot", "camera", id, "annotated", annotated, "err", err)
		writeError(w, http.StatusNotFound, "no_frame",
			fmt.Sprintf("no %s from camera %s (state: %s): %v", what, quote(id), st.State, err))
		return
	}
	defer f.Release()
	if width > 0 && width != f.Width {
		h := (f.Height*width + f.Width/2) / f.Width
		width, h = width&^1, h&^1
		if h < 2 {
			h = 2
		}
		var rz codec.Resizer
		small, err := rz.Resize(f, width, h)
		rz.Close()
		if err != nil {
			writeError(w, http.StatusInternalServerError, "internal", "camera "+quote(id)+": "+err.Error())
			return
		}
		defer small.Release()
		f = small
	}
	var buf bytes.Buffer
	if err := codec.EncodeJPEG(&buf, f, 0); err != nil {
		writeError(w, http.StatusInternalServerError, "internal", "camera "+quote(id)+": "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

// snapshotVariant reads frame.jpg's choice of stream: annotated=1|true|0|false or variant=raw|annotated
// (both may be given when they agree). It reports whether the annotated stream is wanted.
func snapshotVariant(annotated, variant string) (bool, error) {
	a, v := false, false
	switch annotated {
	case "":
	case "1", "true":
		a = true
	case "0", "false":
	default:
		return false, fmt.Errorf("annotated must be 1, true, 0 or false, got %s", quote(annotated))
	}
	switch variant {
	case "", "raw":
	case "annotated":
		v = true
	default:
		return false, fmt.Errorf("variant must be raw or annotated, got %s", quote(variant))
	}
	if annotated != "" && variant != "" && a != v {
		return false, fmt.Errorf("annotated=%s and variant=%s disagree", annotated, variant)
	}
	return a || v, nil
}

// grabFrame returns the stream's current picture, which the caller releases: decoded from its GOP cache
// when it keeps one (media.Stream.KeepGOP), else from its next keyframe.
func grabFrame(ctx context.Context, s *media.Stream) (*codec.Frame, error) {
	rd := s.NewReaderFromGOP(4)
	defer rd.Close()
	if rd.Len() > 0 {
		return decodeBacklog(ctx, s, rd)
	}
	s.RequestKeyframe()
	var dec *codec.Decoder
	defer func() {
		if dec != nil {
			dec.Close()
		}
	}()
	var frames []*codec.Frame
	for {
		au, err := rd.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("read stream %s: %w", s.Name(), err)
		}
		if !au.Keyframe {
			continue
		}
		if dec == nil {
			dec, err = codec.NewDecoder(codec.DecoderConfig{Codec: au.Codec, Params: s.Params(),
				Accel: codec.AccelSoftware, KeyframesOnly: true})
			if err != nil {
				return nil, fmt.Errorf("open decoder: %w", err)
			}
		}
		frames, err = dec.Decode(au, frames[:0])
		if err != nil {
			if errors.Is(err, codec.ErrCorrupt) {
				continue // try the next keyframe
			}
			return nil, fmt.Errorf("decode keyframe: %w", err)
		}
		if len(frames) == 0 {
			// A picture held for reordering: drain it (this decoder ends here).
			if frames, err = dec.Flush(frames); err != nil {
				return nil, fmt.Errorf("decode keyframe: %w", err)
			}
			if len(frames) == 0 {
				return nil, errors.New("decode keyframe: the decoder returned no picture")
			}
		}
		for _, extra := range frames[1:] {
			extra.Release()
		}
		return frames[0], nil
	}
}

// decodeBacklog decodes the GOP backlog rd starts with (live access units that arrive meanwhile are left
// alone) and returns its last picture.
func decodeBacklog(ctx context.Context, s *media.Stream, rd *media.Reader) (*codec.Frame, error) {
	n := rd.Len()
	var dec *codec.Decoder
	defer func() {
		if dec != nil {
			dec.Close()
		}
	}()
	var last *codec.Frame
	keep := func(frames []*codec.Frame) {
		for _, f := range frames {
			if last != nil {
				last.Release()
			}
			last = f
		}
	}
	var frames []*codec.Frame
	for i := 0; i < n; i++ {
		au, err := rd.Read(ctx)
		if err != nil {
			if last != nil {
				last.Release()
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("read stream %s: %w", s.Name(), err)
		}
		if dec == nil {
			if dec, err = codec.NewDecoder(codec.DecoderConfig{Codec: au.Codec, Params: s.Params(), Accel: codec.AccelSoftware}); err != nil {
				return nil, fmt.Errorf("open decoder: %w", err)
			}
		}
		frames, err = dec.Decode(au, frames[:0])
		if err != nil && !errors.Is(err, codec.ErrCorrupt) {
			if last != nil {
				last.Release()
			}
			return nil, fmt.Errorf("decode: %w", err)
		}
		keep(frames)
	}
	if dec != nil {
		if flushed, err := dec.Flush(frames[:0]); err == nil {
			keep(flushed)
		}
	}
	if last == nil {
		return nil, errors.New("decode: the cached GOP gave no picture")
	}
	return last, nil
}
