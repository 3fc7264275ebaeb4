package webrtc

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	pwebrtc "github.com/pion/webrtc/v4"
)

const (
	// shardQueueLen is how many access units (as packet batches) a shard may fall behind the camera
	// before it drops the oldest, up to the next keyframe.
	shardQueueLen = 32
	// historyLen is how many sent packets a track remembers for NACK retransmission (a power of two, so
	// the uint16 sequence number maps onto it without a seam): ~5 s at 2 Mbps of 1200-byte packets.
	historyLen = 1024
	// maxResendPerNACK bounds what one NACK can make the server send (a keyframe is ~100 packets).
	maxResendPerNACK = 256
)

// batch is one access unit's packets, packetized once and shared read-only by every shard and binding.
type batch struct {
	pkts []*rtp.Packet
	key  bool
}

// binding is one viewer's RTPSender bound to a fanoutTrack.
type binding struct {
	id  string
	w   pwebrtc.TrackLocalWriter
	ssr uint32
	pt  uint8
	// shard is the shard that writes to this viewer; set once in Bind.
	shard *shard
	// hdr is the per-viewer header the shard goroutine rewrites for every packet (SSRC, payload type), so
	// the shared packet is never modified and nothing is allocated per packet and viewer. Only the shard
	// goroutine touches it; nothing downstream keeps the pointer (no interceptor buffers headers).
	hdr rtp.Header
}

// fanoutTrack is the TrackLocal every viewer of a (camera, variant) adds. It spreads the viewers' bindings
// over shards, each with its own goroutine and bounded queue, so the per-packet cost of writing to N
// viewers (interceptors, SRTP, a UDP send each) runs on every core, and a shard that falls behind drops
// its oldest access units (to the next keyframe) instead of holding up the camera or the other shards.
// Packets are packetized once and never copied per viewer; the last historyLen of them answer NACKs.
type fanoutTrack struct {
	id, streamID string
	// match is never written to: its Bind does pion's codec negotiation for us (fuzzy fmtp matching).
	match *pwebrtc.TrackLocalStaticRTP
	// needKeyframe asks the producer for a keyframe: when a viewer's sender is bound (its decoder needs
	// one to start) and after a shard dropped access units.
	needKeyframe func()

	mu       sync.Mutex
	shards   []*shard
	bindings map[string]*binding // by TrackLocalContext.ID
	bySSRC   map[uint32]*binding

	wg sync.WaitGroup
}

func newFanoutTrack(codec pwebrtc.RTPCodecCapability, id, streamID string, shards int, needKeyframe func()) (*fanoutTrack, error) {
	match, err := pwebrtc.NewTrackLocalStaticRTP(codec, id, streamID)
	if err != nil {
		return nil, err
	}
	if shards < 1 {
		shards = 1
	}
	f := &fanoutTrack{id: id, streamID: streamID, match: match, needKeyframe: needKeyframe,
		bindings: make(map[string]*binding), bySSRC: make(map[uint32]*binding)}
	for i := 0; i < shards; i++ {
		f.shards = append(f.shards, &shard{notify: make(chan struct{}, 1), queue: make([]batch, shardQueueLen),
			seq: uint16(rand.Uint32())})
	}
	return f, nil
}

// start runs one goroutine per shard until ctx ends; wait returns when they have.
func (f *fanoutTrack) start(ctx context.Context) {
	for _, s := range f.shards {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			s.run(ctx)
		}()
	}
}

func (f *fanoutTrack) wait() { f.wg.Wait() }

// ID, RID, StreamID and Kind implement pwebrtc.TrackLocal.
func (f *fanoutTrack) ID() string                 { return f.id }
func (f *fanoutTrack) RID() string                { return "" }
func (f *fanoutTrack) StreamID() string           { return f.streamID }
func (f *fanoutTrack) Kind() pwebrtc.RTPCodecType { return pwebrtc.RTPCodecTypeVideo }

// Bind adds a viewer's sender to the least-loaded shard and asks for a keyframe: pion binds a sender
// once DTLS is up, so this is the first moment the viewer can receive one (a producer that cannot, an
// RTSP camera, ignores it and the viewer starts at the camera's next keyframe).
func (f *fanoutTrack) Bind(tc pwebrtc.TrackLocalContext) (pwebrtc.RTPCodecParameters, error) {
	codec, err := f.match.Bind(tc)
	if err != nil {
		return codec, err
	}
	b := &binding{id: tc.ID(), w: tc.WriteStream(), ssr: uint32(tc.SSRC()), pt: uint8(codec.PayloadType)}
	if f.needKeyframe != nil {
		defer f.needKeyframe() // after the binding is in place (deferred calls run last-in first-out)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	best := f.shards[0]
	for _, s := range f.shards[1:] {
		if s.size() < best.size() {
			best = s
		}
	}
	b.shard = best
	best.add(b)
	f.bindings[b.id] = b
	f.bySSRC[b.ssr] = b
	return codec, nil
}

// Unbind removes a viewer's sender. A write of the shard's current batch may still reach it; pion
// answers such writes with an error once the sender is stopped.
func (f *fanoutTrack) Unbind(tc pwebrtc.TrackLocalContext) error {
	_ = f.match.Unbind(tc)
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.bindings[tc.ID()]
	if b == nil {
		return errors.New("webrtc: unbind of an unknown sender")
	}
	delete(f.bindings, b.id)
	if f.bySSRC[b.ssr] == b {
		delete(f.bySSRC, b.ssr)
	}
	for _, s := range f.shards {
		if s.remove(b) {
			break
		}
	}
	return nil
}

// publish hands one access unit's packets to every shard that has viewers. It never blocks: a full shard
// queue drops its oldest access units.
func (f *fanoutTrack) publish(b batch) {
	loss := false
	for _, s := range f.shards {
		if s.size() > 0 && s.push(b) {
			loss = true
		}
	}
	if loss && f.needKeyframe != nil {
		f.needKeyframe()
	}
}

// resend answers the NACK of the viewer whose sender has SSRC ssrc from its shard's history, with that
// viewer's SSRC and payload type (every viewer of a shard gets the same sequence numbers).
// A NACK for another SSRC is ignored; packets no longer remembered are skipped; at most
// maxResendPerNACK packets are sent per NACK.
func (f *fanoutTrack) resend(ssrc uint32, n *rtcp.TransportLayerNack) {
	if n.MediaSSRC != ssrc {
		return
	}
	f.mu.Lock()
	b := f.bySSRC[ssrc]
	f.mu.Unlock()
	if b == nil {
		return
	}
	sent := 0
	for _, pair := range n.Nacks {
		for _, seq := range pair.PacketList() {
			if sent >= maxResendPerNACK {
				return
			}
			sent++
			p := b.shard.sent(seq)
			if p == nil {
				continue
			}
			h := p.Header
			h.SSRC, h.PayloadType, h.SequenceNumber = b.ssr, b.pt, seq
			_, _ = b.w.WriteRTP(&h, p.Payload)
		}
	}
}

// shardStats is a snapshot of one shard, for tests and logs.
type shardStats struct {
	Viewers int
	Batches uint64 // access units written
	Dropped uint64 // access units dropped on overflow or while waiting for a keyframe after one
}

func (f *fanoutTrack) stats() []shardStats {
	out := make([]shardStats, len(f.shards))
	for i, s := range f.shards {
		out[i] = shardStats{Viewers: s.size(), Batches: s.written.Load(), Dropped: s.dropCount()}
	}
	return out
}

// shard is a set of bindings written by one goroutine from its own bounded queue. A shard numbers the
// packets it writes itself, so the access units it drops leave no sequence gap (a gap would make every
// viewer NACK packets that were never sent); the camera's RTP timestamps pass through unchanged.
type shard struct {
	bindings atomic.Pointer[[]*binding] // copy-on-write; changed under fanoutTrack.mu
	n        atomic.Int32

	notify chan struct{}

	mu          sync.Mutex
	queue       []batch // ring
	head, count int
	waitKey     bool
	dropped     uint64

	written atomic.Uint64

	seq uint16 // next sequence number; the shard goroutine's own

	histMu  sync.Mutex
	hist    [historyLen]*rtp.Packet // by the shard's sequence number, for NACKs
	histSeq [historyLen]uint16
}

// sent returns the packet the shard wrote with sequence number seq, if it still remembers it.
func (s *shard) sent(seq uint16) *rtp.Packet {
	s.histMu.Lock()
	defer s.histMu.Unlock()
	i := seq % historyLen
	if s.hist[i] == nil || s.histSeq[i] != seq {
		return nil
	}
	return s.hist[i]
}

func (s *shard) size() int { return int(s.n.Load()) }

func (s *shard) add(b *binding) {
	var cur []*binding
	if p := s.bindings.Load(); p != nil {
		cur = *p
	}
	next := make([]*binding, len(cur), len(cur)+1)
	copy(next, cur)
	next = append(next, b)
	s.bindings.Store(&next)
	s.n.Store(int32(len(next)))
}

func (s *shard) remove(b *binding) bool {
	p := s.bindings.Load()
	if p == nil {
		return false
	}
	cur := *p
	for i, x := range cur {
		if x == b {
			next := make([]*binding, 0, len(cur)-1)
			next = append(append(next, cur[:i]...), cur[i+1:]...)
			s.bindings.Store(&next)
			s.n.Store(int32(len(next)))
			return true
		}
	}
	return false
}

// push queues b and reports whether access units were lost (the viewers need a keyframe). On overflow it
// drops the oldest batch and every batch that depended on it, up to the next queued keyframe; with no
// keyframe queued it skips every batch until one arrives (a decoder could not use them).
func (s *shard) push(b batch) (loss bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waitKey {
		if !b.key {
			s.dropped++
			return false
		}
		s.waitKey = false
	}
	if s.count == len(s.queue) {
		s.popLocked()
		s.dropped++
		for s.count > 0 && !s.queue[s.head].key {
			s.popLocked()
			s.dropped++
		}
		if s.count == 0 && !b.key {
			s.dropped++
			s.waitKey = true
			return true
		}
		loss = true
	}
	s.queue[(s.head+s.count)%len(s.queue)] = b
	s.count++
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return loss
}

func (s *shard) popLocked() batch {
	b := s.queue[s.head]
	s.queue[s.head] = batch{}
	s.head = (s.head + 1) % len(s.queue)
	s.count--
	return b
}

func (s *shard) dropCount() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// run writes queued batches to the shard's bindings until ctx ends.
func (s *shard) run(ctx context.Context) {
	for {
		s.mu.Lock()
		if s.count == 0 {
			s.mu.Unlock()
			select {
			case <-s.notify:
				continue
			case <-ctx.Done():
				return
			}
		}
		b := s.popLocked()
		s.mu.Unlock()
		s.write(b)
		s.written.Add(1)
	}
}

func (s *shard) write(b batch) {
	p := s.bindings.Load()
	if p == nil {
		return
	}
	bs := *p
	first := s.seq
	s.histMu.Lock()
	for i, pkt := range b.pkts {
		seq := first + uint16(i)
		s.hist[seq%historyLen], s.histSeq[seq%historyLen] = pkt, seq
	}
	s.histMu.Unlock()
	s.seq += uint16(len(b.pkts))
	for i, pkt := range b.pkts {
		seq := first + uint16(i)
		for _, v := range bs {
			v.hdr = pkt.Header
			v.hdr.SSRC, v.hdr.PayloadType, v.hdr.SequenceNumber = v.ssr, v.pt, seq
			// An error names a viewer whose transport is closed; its session is torn down by its own state
			// handlers, and the other viewers are written anyway.
			_, _ = v.w.WriteRTP(&v.hdr, pkt.Payload)
		}
	}
}
