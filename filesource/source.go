// Package filesource owns playing a video file in a loop, in real time, as if it were a live camera
// writing to a media.Stream; it reads the file once and must never block on the Stream's readers nor
// drift from its frame schedule.
package filesource

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"

	"sightline/media"
)

// DefaultFPS is the frame rate used when neither Config.FPS nor the SPS gives one.
const DefaultFPS = 25

// Config configures a Source.
type Config struct {
	// Path is an Annex-B elementary stream: .h264/.264 (H.264) or .h265/.265/.hevc (H.265).
	Path string
	// FPS paces playback; 0 takes the SPS's VUI timing information, else DefaultFPS.
	FPS float64
	// Loop plays the file forever; false ends Run (with nil) after one pass.
	Loop bool
	// Logger receives the source's logs; the caller sets the "camera" field. nil means slog.Default().
	Logger *slog.Logger
}

// Source plays a file as a live stream.
type Source struct {
	cfg Config
	out *media.Stream
	log *slog.Logger

	status *media.StatusTracker
}

// New returns a Source that writes to out. Run starts it.
func New(cfg Config, out *media.Stream) *Source {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Source{cfg: cfg, out: out, log: log.With("file", cfg.Path), status: media.NewStatusTracker(media.SourceStatus{Transport: "file"})}
}

// Status returns a snapshot of the source's health.
func (s *Source) Status() media.SourceStatus { return s.status.Status() }

// CodecOf returns the codec a file name's extension announces.
func CodecOf(path string) (media.Codec, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".h264", ".264":
		return media.CodecH264, nil
	case ".h265", ".265", ".hevc":
		return media.CodecH265, nil
	}
	return "", fmt.Errorf("file %s: extension %q is not .h264, .264, .h265, .265 or .hevc", path, filepath.Ext(path))
}

// clip is a file split into access units, ready to play.
type clip struct {
	codec  media.Codec
	aus    [][][]byte
	keys   []bool
	params media.Params
	fps    float64 // from the SPS, 0 when absent
}

func load(path string) (*clip, error) {
	codec, err := CodecOf(path)
	if err != nil {
		return nil, err
	}
	buf, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read video file: %w", err)
	}
	if len(buf) == 0 {
		return nil, fmt.Errorf("video file %s is empty", path)
	}
	aus := SplitAccessUnits(codec, media.SplitAnnexB(buf))
	// Start at the first keyframe, so that every loop starts decodable.
	for len(aus) > 0 && !media.IsKeyframe(codec, aus[0]) {
		aus = aus[1:]
	}
	if len(aus) == 0 {
		return nil, fmt.Errorf("video file %s holds no %s keyframe", path, codec)
	}
	c := &clip{codec: codec, aus: aus, keys: make([]bool, len(aus)), params: media.Params{Codec: codec}}
	for i, au := range aus {
		c.keys[i] = media.IsKeyframe(codec, au)
		for _, n := range au {
			t := media.NALUType(codec, n)
			switch {
			case codec == media.CodecH264 && t == 7 && c.params.SPS == nil:
				c.params.SPS = n
				var sps h264.SPS
				if sps.Unmarshal(n) == nil {
					c.fps = sps.FPS()
				}
			case codec == media.CodecH264 && t == 8 && c.params.PPS == nil:
				c.params.PPS = n
			case codec == media.CodecH265 && t == 32 && c.params.VPS == nil:
				c.params.VPS = n
			case codec == media.CodecH265 && t == 33 && c.params.SPS == nil:
				c.params.SPS = n
				var sps h265.SPS
				if sps.Unmarshal(n) == nil {
					c.fps = sps.FPS()
				}
			case codec == media.CodecH265 && t == 34 && c.params.PPS == nil:
				c.params.PPS = n
			}
		}
	}
	if math.IsNaN(c.fps) || math.IsInf(c.fps, 0) || c.fps < 1 || c.fps > 300 {
		c.fps = 0
	}
	return c, nil
}

// Run plays the file until ctx ends (or, without Loop, until its end). Frame i is written at start +
// i/fps on the monotonic clock, with RTP timestamp i·90000/fps and PTS i/fps, counting on across loops.
// A file that cannot be read or holds no playable access unit ends Run at once with an error.
func (s *Source) Run(ctx context.Context) error {
	c, err := load(s.cfg.Path)
	if err != nil {
		s.status.Update(func(st *media.SourceStatus) {
			st.State, st.LastError, st.Since = media.StateStopped, err.Error(), time.Now()
		})
		return err
	}
	fps := s.cfg.FPS
	if fps <= 0 || math.IsNaN(fps) || math.IsInf(fps, 0) {
		fps = c.fps
	}
	if fps <= 0 {
		fps = DefaultFPS
	}
	if !c.params.Empty() {
		s.out.SetParams(c.params)
	}
	s.status.Update(func(st *media.SourceStatus) { st.Codec = c.codec })
	s.status.SetState(media.StateStreaming)
	s.log.Info("file source playing", "codec", c.codec, "access_units", len(c.aus), "fps", fps, "loop", s.cfg.Loop)

	start := time.Now() // carries the monotonic clock
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := int64(0); ; i++ {
		idx := int(i % int64(len(c.aus)))
		if !s.cfg.Loop && i >= int64(len(c.aus)) {
			s.status.SetState(media.StateStopped)
			return nil
		}
		select {
		case <-ctx.Done():
			s.status.SetState(media.StateStopped)
			return nil
		case <-timer.C:
		}
		now := time.Now()
		au := &media.AccessUnit{
			Codec:    c.codec,
			NALUs:    c.aus[idx],
			PTS:      time.Duration(float64(i) / fps * float64(time.Second)),
			RTPTime:  uint32(int64(math.Round(float64(i) * media.VideoClockRate / fps))),
			Received: now,
			Keyframe: c.keys[idx],
		}
		s.status.Wrote(au.Size(), now)
		s.out.Write(au)
		next := start.Add(time.Duration(float64(i+1) / fps * float64(time.Second)))
		timer.Reset(time.Until(next))
	}
}
