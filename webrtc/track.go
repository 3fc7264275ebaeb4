package webrtc

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	pwebrtc "github.com/pion/webrtc/v4"

	"sightline/media"
)

const (
	rtpMTU            = 1200
	trackQueueLen     = 64
	sentRingLen       = 256
	keyframeMinPeriod = 500 * time.Millisecond
)

type trackKey struct{ camera, variant string }

// SentFrame records when a frame left: its RTP timestamp and the wall-clock when its first packet was
// written to the viewers.
type SentFrame struct {
	RTP    uint32    `json:"rtp"`
	SentAt time.Time `json:"sentAt"`
}

// sharedTrack is the one TrackLocalStaticRTP of a (camera, variant) that every viewer's PeerConnection
// adds (DESIGN.md decisions 1–2). One goroutine reads the camera's stream and packetizes each access unit
// once; pion copies the packet to each binding with that viewer's SSRC and payload type. Writes to a
// binding go through SRTP to a non-blocking UDP socket send, so a slow or dead viewer never holds up the
// others (it loses packets instead). The goroutine runs from the first viewer to the last.
type sharedTrack struct {
	key    trackKey
	codec  media.Codec
	stream *media.Stream
	local  *pwebrtc.TrackLocalStaticRTP
	log    *slog.Logger

	refs int // guarded by Server.mu

	cancel context.CancelFunc
	done   chan struct{}

	lastKeyReq atomic.Int64 // unix nanoseconds of the last forwarded keyframe request

	ringMu   sync.Mutex
	ring     [sentRingLen]SentFrame
	ringNext int
	ringLen  int

	frames  atomic.Uint64
	packets atomic.Uint64
}

func newSharedTrack(key trackKey, codec media.Codec, stream *media.Stream, log *slog.Logger) (*sharedTrack, error) {
	mime := pwebrtc.MimeTypeH264
	fmtp := "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
	if codec == media.CodecH265 {
		mime, fmtp = pwebrtc.MimeTypeH265, ""
	}
	local, err := pwebrtc.NewTrackLocalStaticRTP(
		pwebrtc.RTPCodecCapability{MimeType: mime, ClockRate: media.VideoClockRate, SDPFmtpLine: fmtp},
		"video", "sightline-"+key.camera+"-"+key.variant)
	if err != nil {
		return nil, err
	}
	return &sharedTrack{key: key, codec: codec, stream: stream, local: local,
		log: log.With("camera", key.camera, "variant", key.variant)}, nil
}

// start opens a reader on the stream and starts the packetizing goroutine.
func (t *sharedTrack) start() {
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	t.done = make(chan struct{})
	reader := t.stream.NewReader(trackQueueLen)
	go t.run(ctx, reader)
	t.requestKeyframe() // a producer that can (an encoder) sends the new viewer an IDR at once
}

// stop ends the goroutine and detaches its reader from the stream; it returns when both are done.
func (t *sharedTrack) stop() {
	t.cancel()
	<-t.done
}

func (t *sharedTrack) run(ctx context.Context, reader *media.Reader) {
	defer close(t.done)
	defer reader.Close()
	var payloader rtp.Payloader = &codecs.H264Payloader{}
	if t.codec == media.CodecH265 {
		payloader = &codecs.H265Payloader{}
	}
	seq := uint16(rand.Uint32())
	warnedCodec := false
	for {
		au, err := reader.Read(ctx)
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				t.log.Debug("shared track reader ended", "err", err)
			}
			return
		}
		if au.Codec != "" && au.Codec != t.codec {
			if !warnedCodec {
				t.log.Warn("dropping access units of another codec than the track's", "au_codec", au.Codec, "track_codec", t.codec)
				warnedCodec = true
			}
			continue
		}
		payloads := payloader.Payload(rtpMTU, media.JoinAnnexB(au.NALUs))
		for i, p := range payloads {
			pkt := rtp.Packet{
				Header: rtp.Header{
					Version:        2,
					Marker:         i == len(payloads)-1,
					SequenceNumber: seq,
					Timestamp:      au.RTPTime,
				},
				Payload: p,
			}
			seq++
			if i == 0 {
				t.recordSent(au.RTPTime, time.Now())
			}
			// Errors name bindings whose transport is closed; those sessions are removed by their own
			// state handlers, and the other bindings were written anyway.
			_ = t.local.WriteRTP(&pkt)
		}
		t.packets.Add(uint64(len(payloads)))
		t.frames.Add(1)
	}
}

func (t *sharedTrack) recordSent(ts uint32, at time.Time) {
	t.ringMu.Lock()
	t.ring[t.ringNext] = SentFrame{RTP: ts, SentAt: at}
	t.ringNext = (t.ringNext + 1) % sentRingLen
	if t.ringLen < sentRingLen {
		t.ringLen++
	}
	t.ringMu.Unlock()
}

// SentFrames returns the recorded frames, oldest first.
func (t *sharedTrack) SentFrames() []SentFrame {
	t.ringMu.Lock()
	defer t.ringMu.Unlock()
	out := make([]SentFrame, 0, t.ringLen)
	start := (t.ringNext - t.ringLen + sentRingLen) % sentRingLen
	for i := 0; i < t.ringLen; i++ {
		out = append(out, t.ring[(start+i)%sentRingLen])
	}
	return out
}

// requestKeyframe forwards a viewer's PLI/FIR to the stream's producer, at most once per 500 ms.
func (t *sharedTrack) requestKeyframe() {
	now := time.Now().UnixNano()
	last := t.lastKeyReq.Load()
	if last != 0 && now-last < int64(keyframeMinPeriod) {
		return
	}
	if !t.lastKeyReq.CompareAndSwap(last, now) {
		return
	}
	t.stream.RequestKeyframe()
}

// acquireTrack returns the shared track of key, creating and starting it for the first viewer.
func (s *Server) acquireTrack(key trackKey, stream *media.Stream) (*sharedTrack, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errServerClosed
	}
	if t := s.tracks[key]; t != nil && t.stream == stream {
		t.refs++
		return t, nil
	} else if t != nil {
		// The camera's stream was replaced (camera re-created): retire the old track from the map; its
		// viewers keep it until they leave.
		delete(s.tracks, key)
	}
	codec := stream.Params().Codec
	if codec == "" {
		codec = media.CodecH264
	}
	t, err := newSharedTrack(key, codec, stream, s.log)
	if err != nil {
		return nil, err
	}
	t.refs = 1
	t.start()
	s.tracks[key] = t
	return t, nil
}

// releaseTrack drops one viewer's reference; the last one stops the track.
func (s *Server) releaseTrack(t *sharedTrack) {
	s.mu.Lock()
	t.refs--
	last := t.refs == 0
	if last && s.tracks[t.key] == t {
		delete(s.tracks, t.key)
	}
	s.mu.Unlock()
	if last {
		t.stop()
	}
}
