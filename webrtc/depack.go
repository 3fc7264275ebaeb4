package webrtc

import (
	"time"

	"github.com/pion/rtp"

	"sightline/media"
)

// Reorder window of the H.264 depacketizer: a missing packet is waited for (a NACK retransmission, a
// reordered packet) until this many later packets are buffered or the oldest buffered one has waited
// reorderMaxDelay, whichever comes first; then it counts as lost.
const (
	reorderWindow   = 64
	reorderMaxDelay = 200 * time.Millisecond
	// maxAUBytes bounds one access unit: a publisher that never ends one cannot exhaust memory.
	maxAUBytes = 8 << 20
)

// H.264 NAL unit types the depacketizer handles (RFC 6184 §5.4).
const (
	nalIDR  = 5
	nalSPS  = 7
	nalPPS  = 8
	nalSTAP = 24
	nalFUA  = 28
)

// DepackStats are the running counters of an H264Depacketizer.
type DepackStats struct {
	Packets    uint64 // packets pushed
	Lost       uint64 // packets given up on (sequence gaps the reorder window did not fill)
	Late       uint64 // duplicates and packets that came after they were given up on
	AccessUnit uint64 // access units emitted
	Discarded  uint64 // access units dropped: damaged, or not a keyframe while waiting for one
}

// H264Depacketizer turns the RTP packets of one H.264 stream (RFC 6184: single NAL unit packets, STAP-A
// and FU-A) into whole access units. Packets are put back in sequence-number order within a small
// reorder window; packets with one RTP timestamp form one access unit, which ends at the marker bit or at
// the first packet of the next timestamp. An access unit that lost a packet, or holds a malformed or
// unsupported payload, is never emitted: it is dropped, and so is every access unit after it until the
// next keyframe (whose references it lacks). OnKeyframeNeeded is called each time such a drop happens
// and while waiting for the first keyframe, so the caller can send a PLI (rate-limited on its side).
//
// Emitted access units carry the sender's RTP timestamp (RTPTime), a PTS from the unwrapped 90 kHz
// timestamp (0 at the first packet), the arrival time of their last packet (Received) and the keyframe
// flag (an IDR slice). Their NAL units are copies, never aliases of packet buffers. Not safe for
// concurrent use.
type H264Depacketizer struct {
	// OnKeyframeNeeded, when set, is called (synchronously) whenever the depacketizer waits for a keyframe.
	OnKeyframeNeeded func()

	// reorder buffer
	started bool
	next    uint16 // the next sequence number to process
	pending map[uint16]pendingPacket
	lateRun int // consecutive late packets (a sender that restarted its sequence numbers)

	// timestamp unwrapping
	tsStarted bool
	lastTS    uint32
	extTS     int64

	// the access unit being assembled
	open    bool
	damaged bool
	ts      uint32
	pts     time.Duration
	nalus   [][]byte
	size    int
	fu      []byte // FU-A NAL unit being reassembled (nil when none)

	waitKey bool // drop access units until a keyframe
	stats   DepackStats
	out     []*media.AccessUnit
}

type pendingPacket struct {
	pkt     *rtp.Packet
	arrived time.Time
}

// NewH264Depacketizer returns a depacketizer that waits for a keyframe before its first access unit.
func NewH264Depacketizer() *H264Depacketizer {
	return &H264Depacketizer{pending: make(map[uint16]pendingPacket), waitKey: true}
}

// Stats returns the running counters.
func (d *H264Depacketizer) Stats() DepackStats { return d.stats }

// Push adds one packet that arrived at now and returns the access units it completed, oldest first.
func (d *H264Depacketizer) Push(pkt *rtp.Packet, now time.Time) []*media.AccessUnit {
	d.out = nil
	d.stats.Packets++
	if !d.started {
		d.started, d.next = true, pkt.SequenceNumber
	}
	seq := pkt.SequenceNumber
	if _, dup := d.pending[seq]; dup || int16(seq-d.next) < 0 {
		d.stats.Late++
		d.lateRun++
		if d.lateRun <= reorderWindow {
			return nil
		}
		// The sender jumped backwards for good (a restarted sequence): start over at this packet.
		d.skipPending(now)
		d.next = seq
	}
	d.lateRun = 0
	d.pending[seq] = pendingPacket{pkt: pkt, arrived: now}
	d.release(now)
	return d.out
}

// release processes buffered packets in order, giving up on a missing one when the window says so.
func (d *H264Depacketizer) release(now time.Time) {
	for len(d.pending) > 0 {
		if p, ok := d.pending[d.next]; ok {
			delete(d.pending, d.next)
			d.next++
			d.process(p.pkt, false, now)
			continue
		}
		// d.next is missing: find the closest buffered packet, and decide whether to wait.
		var nearest uint16
		minDist, maxDist := uint16(0xffff), uint16(0)
		oldest := now
		for s, p := range d.pending {
			dist := s - d.next
			if dist < minDist {
				minDist, nearest = dist, s
			}
			maxDist = max(maxDist, dist)
			if p.arrived.Before(oldest) {
				oldest = p.arrived
			}
		}
		if len(d.pending) < reorderWindow && maxDist < 2*reorderWindow && now.Sub(oldest) < reorderMaxDelay {
			return
		}
		d.stats.Lost += uint64(minDist)
		p := d.pending[nearest]
		delete(d.pending, nearest)
		d.next = nearest + 1
		d.process(p.pkt, true, now)
	}
}

// skipPending processes every buffered packet in order as if the gaps before them were lost.
func (d *H264Depacketizer) skipPending(now time.Time) {
	for len(d.pending) > 0 {
		var nearest uint16
		minDist := uint16(0xffff)
		for s := range d.pending {
			if dist := s - d.next; dist < minDist {
				minDist, nearest = dist, s
			}
		}
		p := d.pending[nearest]
		delete(d.pending, nearest)
		d.stats.Lost += uint64(minDist)
		d.next = nearest + 1
		d.process(p.pkt, minDist > 0, now)
	}
}

// process assembles one in-order packet; gap says packets before it were lost.
func (d *H264Depacketizer) process(pkt *rtp.Packet, gap bool, now time.Time) {
	if gap {
		// Whatever was lost (a part of this access unit, of the previous one, or whole access units in
		// between), later frames may reference it: only a keyframe is safe to emit now.
		d.waitKey = true
	}
	if d.open && pkt.Timestamp != d.ts {
		if gap {
			d.damaged = true // the lost packets may have been this access unit's tail
		}
		d.finish(now)
	}
	if !d.open {
		d.open, d.ts, d.nalus, d.size, d.fu = true, pkt.Timestamp, nil, 0, nil
		// After a gap a new access unit is only known whole when it visibly starts at its beginning.
		d.damaged = gap && !StartsAccessUnit(pkt.Payload)
		d.pts = d.unwrap(pkt.Timestamp)
	} else if gap {
		d.damaged = true
	}
	if !d.damaged {
		d.depayload(pkt.Payload)
	}
	if pkt.Marker {
		d.finish(now)
	}
}

// unwrap extends a 32-bit RTP timestamp and returns it as a duration since the first one.
func (d *H264Depacketizer) unwrap(ts uint32) time.Duration {
	if !d.tsStarted {
		d.tsStarted, d.lastTS = true, ts
	}
	d.extTS += int64(int32(ts - d.lastTS))
	d.lastTS = ts
	return time.Duration(d.extTS) * time.Second / media.VideoClockRate
}

// validNAL reports whether b is a NAL unit a packet may carry whole: a header with forbidden_zero_bit
// 0 and a type of 1–23 (24–31 are RTP payload structures, 0 is unspecified).
func validNAL(b []byte) bool {
	if len(b) == 0 || b[0]&0x80 != 0 {
		return false
	}
	t := b[0] & 0x1f
	return t >= 1 && t <= 23
}

// depayload adds one packet's payload to the access unit, marking it damaged when malformed.
func (d *H264Depacketizer) depayload(p []byte) {
	if len(p) == 0 {
		return // padding-only packet
	}
	if p[0]&0x80 != 0 {
		d.damaged = true
		return
	}
	switch typ := p[0] & 0x1f; {
	case typ >= 1 && typ <= 23: // single NAL unit packet (§5.6)
		if d.fu != nil {
			d.damaged = true // an FU-A that never ended
			return
		}
		d.addNAL(append([]byte(nil), p...))
	case typ == nalSTAP: // STAP-A (§5.7.1): 16-bit size, NAL unit, ...
		if d.fu != nil {
			d.damaged = true
			return
		}
		rest := p[1:]
		if len(rest) == 0 {
			d.damaged = true
			return
		}
		var nalus [][]byte
		for len(rest) > 0 {
			if len(rest) < 2 {
				d.damaged = true
				return
			}
			n := int(rest[0])<<8 | int(rest[1])
			rest = rest[2:]
			if n == 0 || n > len(rest) || !validNAL(rest[:n]) {
				d.damaged = true
				return
			}
			nalus = append(nalus, append([]byte(nil), rest[:n]...))
			rest = rest[n:]
		}
		for _, n := range nalus {
			d.addNAL(n)
		}
	case typ == nalFUA: // FU-A (§5.8): indicator, header (S, E, R, type), fragment
		if len(p) < 3 {
			d.damaged = true
			return
		}
		start, end, ntype := p[1]&0x80 != 0, p[1]&0x40 != 0, p[1]&0x1f
		if ntype < 1 || ntype > 23 || (start && end) {
			d.damaged = true
			return
		}
		hdr := p[0]&0xe0 | ntype
		switch {
		case start:
			if d.fu != nil {
				d.damaged = true
				return
			}
			d.fu = append(make([]byte, 0, 2*len(p)), hdr)
		case d.fu == nil || d.fu[0] != hdr:
			d.damaged = true // a fragment without its start, or of another NAL unit
			return
		}
		d.fu = append(d.fu, p[2:]...)
		if d.size+len(d.fu) > maxAUBytes {
			d.damaged = true
			return
		}
		if end {
			n := d.fu
			d.fu = nil
			d.addNAL(n)
		}
	default: // STAP-B, MTAP, FU-B (interleaved mode) and reserved types are not supported
		d.damaged = true
	}
}

func (d *H264Depacketizer) addNAL(n []byte) {
	d.size += len(n)
	if d.size > maxAUBytes {
		d.damaged = true
		return
	}
	d.nalus = append(d.nalus, n)
}

// finish ends the open access unit and emits it when whole.
func (d *H264Depacketizer) finish(now time.Time) {
	nalus, damaged := d.nalus, d.damaged || d.fu != nil
	d.open, d.damaged, d.nalus, d.size, d.fu = false, false, nil, 0, nil
	if len(nalus) == 0 && !damaged {
		return // padding only
	}
	key := false
	for _, n := range nalus {
		if n[0]&0x1f == nalIDR {
			key = true
			break
		}
	}
	if damaged || (d.waitKey && !key) {
		d.waitKey = true
		d.stats.Discarded++
		if d.OnKeyframeNeeded != nil {
			d.OnKeyframeNeeded()
		}
		return
	}
	d.waitKey = false
	d.stats.AccessUnit++
	d.out = append(d.out, &media.AccessUnit{
		Codec: media.CodecH264, NALUs: nalus, PTS: d.pts, RTPTime: d.ts, Received: now, Keyframe: key,
	})
}

// StartsAccessUnit reports whether an RTP H.264 payload visibly begins an access unit: its first NAL unit is
// one that only precedes the first slice (SEI, SPS, PPS, AUD: H.264 7.4.1.2.3) or is a slice with
// first_mb_in_slice = 0 (ue(v) 0 is the single bit 1), as a single NAL unit packet, the first NAL unit of
// a STAP-A (RFC 6184 §5.7.1) or the start fragment of an FU-A (§5.8).
func StartsAccessUnit(p []byte) bool {
	if len(p) < 2 {
		return false
	}
	var typ, next byte
	switch p[0] & 0x1f {
	case nalSTAP: // header, 2-byte size, NAL header, first payload byte
		if len(p) < 5 {
			return false
		}
		typ, next = p[3]&0x1f, p[4]
	case nalFUA: // indicator, FU header (start bit, type), first payload byte
		if len(p) < 3 || p[1]&0x80 == 0 {
			return false
		}
		typ, next = p[1]&0x1f, p[2]
	default:
		typ, next = p[0]&0x1f, p[1]
	}
	switch typ {
	case 6, nalSPS, nalPPS, 9:
		return true
	case 1, nalIDR:
		return next&0x80 != 0
	}
	return false
}
