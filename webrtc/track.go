package webrtc

import (
	"context"
	"errors"
	"log/slog"
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

// SentFrame records when a frame left: its RTP timestamp and the wall-clock when its packets were handed
// to the shards that write them to the viewers.
type SentFrame struct {
	RTP    uint32    `json:"rtp"`
	SentAt time.Time `json:"sentAt"`
}

// sharedTrack is the one TrackLocal of a (camera, variant) that every viewer's PeerConnection adds
// (DESIGN.md decisions 1–2). One goroutine reads the camera's stream and packetizes each access unit once;
// the fanoutTrack hands the packets, read-only, to its shards, whose goroutines write them to their
// viewers with each viewer's SSRC and payload type. Every hand-off is a bounded queue that drops the
// oldest access units, so a slow shard or viewer never holds up the camera or the others (it loses
// packets instead). The goroutines run from the first viewer to the last.
type sharedTrack struct {
	key    trackKey
	codec  media.Codec
	stream *media.Stream
	local  *fanoutTrack
	log    *slog.Logger

	refs      int  // guarded by Server.mu
	forgotten bool // guarded by Server.mu: CloseCamera ran; do not keep its drop counts when it stops

	// onStreamEnd is called (from the track's goroutine, which must not wait for the track) when the
	// stream closes: nothing more will come, so the server ends the track's sessions.
	onStreamEnd func()
	reader      *media.Reader // set by start, before the track is shared

	cancel context.CancelFunc
	done   chan struct{}

	lastKeyReq atomic.Int64 // unix nanoseconds of the last forwarded keyframe request
	keyPending atomic.Bool  // a request deferred to the end of the rate-limit period is scheduled

	ringMu   sync.Mutex
	ring     [sentRingLen]SentFrame
	ringNext int
	ringLen  int

	frames  atomic.Uint64
	packets atomic.Uint64
}

func newSharedTrack(key trackKey, codec media.Codec, stream *media.Stream, shards int, log *slog.Logger) (*sharedTrack, error) {
	mime := pwebrtc.MimeTypeH264
	fmtp := "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
	if codec == media.CodecH265 {
		mime, fmtp = pwebrtc.MimeTypeH265, ""
	}
	t := &sharedTrack{key: key, codec: codec, stream: stream,
		log: log.With("camera", key.camera, "variant", key.variant)}
	local, err := newFanoutTrack(
		pwebrtc.RTPCodecCapability{MimeType: mime, ClockRate: media.VideoClockRate, SDPFmtpLine: fmtp},
		"video", "sightline-"+key.camera+"-"+key.variant, shards, t.requestKeyframe)
	if err != nil {
		return nil, err
	}
	t.local = local
	return t, nil
}

// start opens a reader on the stream and starts the packetizing goroutine and the shards' writers.
func (t *sharedTrack) start() {
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	t.done = make(chan struct{})
	reader := t.stream.NewReader(trackQueueLen)
	t.reader = reader
	t.local.start(ctx)
	go t.run(ctx, reader)
	// No keyframe request here: the viewer's sender is not bound yet (DTLS is not up), so an IDR now
	// would be lost; Bind asks for one when the viewer can receive it.
}

// stop ends the goroutines and detaches the reader from the stream; it returns when all are done.
func (t *sharedTrack) stop() {
	t.cancel()
	<-t.done
	t.local.wait()
}

func (t *sharedTrack) run(ctx context.Context, reader *media.Reader) {
	defer close(t.done)
	defer reader.Close()
	var payloader rtp.Payloader = &codecs.H264Payloader{}
	if t.codec == media.CodecH265 {
		payloader = &codecs.H265Payloader{}
	}
	warnedCodec := false
	for {
		au, err := reader.Read(ctx)
		if err != nil {
			if errors.Is(err, media.ErrStreamClosed) && t.onStreamEnd != nil {
				t.log.Debug("camera stream closed: ending its sessions")
				t.onStreamEnd()
			} else if !errors.Is(err, context.Canceled) {
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
		if len(payloads) == 0 {
			continue
		}
		// One allocation for the AU's packets and one for the pointers the shards share read-only.
		pkts := make([]rtp.Packet, len(payloads))
		ptrs := make([]*rtp.Packet, len(payloads))
		for i, p := range payloads {
			pkts[i] = rtp.Packet{
				Header: rtp.Header{
					Version:   2,
					Marker:    i == len(payloads)-1,
					Timestamp: au.RTPTime,
				},
				Payload: p,
			}
			ptrs[i] = &pkts[i] // sequence numbers are the shards' own
		}
		t.recordSent(au.RTPTime, time.Now())
		t.local.publish(batch{pkts: ptrs, key: au.Keyframe})
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

// requestKeyframe forwards a keyframe request (a viewer's PLI/FIR, a viewer starting, a shard's loss) to
// the stream's producer, at most once per keyframeMinPeriod: a request inside the period is deferred to
// its end (one for all that come meanwhile), so a viewer that joins just after another still gets its
// keyframe promptly instead of waiting for its own PLI.
func (t *sharedTrack) requestKeyframe() {
	now := time.Now().UnixNano()
	last := t.lastKeyReq.Load()
	if last == 0 || now-last >= int64(keyframeMinPeriod) {
		if t.lastKeyReq.CompareAndSwap(last, now) {
			t.stream.RequestKeyframe()
		}
		return
	}
	if t.keyPending.CompareAndSwap(false, true) {
		time.AfterFunc(time.Duration(last+int64(keyframeMinPeriod)-now), func() {
			t.lastKeyReq.Store(time.Now().UnixNano())
			t.keyPending.Store(false)
			t.stream.RequestKeyframe()
		})
	}
}

// acquireTrack returns the shared track of key, creating and starting it for the first viewer.
func (s *Server) acquireTrack(key trackKey, stream *media.Stream) (*sharedTrack, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errServerClosed
	}
	if stream.Closed() {
		return nil, errors.New("the camera's stream is closed")
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
	t, err := newSharedTrack(key, codec, stream, s.shards, s.log)
	if err != nil {
		return nil, err
	}
	t.refs = 1
	t.onStreamEnd = func() { s.goTracked(func() { s.closeTrackSessions(t) }) }
	t.start()
	s.tracks[key] = t
	s.live[t] = struct{}{}
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
	if !last {
		return
	}
	t.stop()
	// Fold the stopped track's final drop counts into the camera's totals in the same critical section
	// that forgets the track, so Stats never sees a counter go back.
	d := t.drops()
	s.mu.Lock()
	delete(s.live, t)
	if !t.forgotten {
		tot := s.drops[t.key]
		tot.fanout += d.fanout
		tot.reader += d.reader
		s.drops[t.key] = tot
	}
	s.mu.Unlock()
}
