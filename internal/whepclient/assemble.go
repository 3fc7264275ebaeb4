package whepclient

import (
	"encoding/binary"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	slwebrtc "sightline/webrtc"
)

// assembler groups RTP packets of one H.264 track into access units: packets with the same timestamp
// form one access unit, completed by the marker bit (RFC 6184 §5.1) or, failing that, by the first
// packet of the next timestamp. A sequence gap (RFC 3550 §A.1) discards the access unit it falls in.
type assembler struct {
	emit func(Frame)

	depack  codecs.H264Packet
	started bool
	lastSeq uint16

	// current access unit
	open     bool
	damaged  bool
	ts       uint32
	nalus    [][]byte
	first    time.Time
	npackets int

	lost, incomplete uint64
}

func newAssembler(emit func(Frame)) *assembler {
	return &assembler{emit: emit, depack: codecs.H264Packet{IsAVC: true}}
}

func (a *assembler) push(pkt *rtp.Packet, now time.Time) {
	gapped := false
	if a.started {
		gap := pkt.SequenceNumber - a.lastSeq // uint16 wrap-around arithmetic
		switch {
		case gap == 0 || gap > 0x8000: // duplicate or late reordered packet: ignore
			return
		case gap > 1:
			a.lost += uint64(gap - 1)
			gapped = true
			a.depack = codecs.H264Packet{IsAVC: true} // drop a half-built FU-A
			if a.open {
				a.damaged = true
			}
		}
	}
	a.started = true
	a.lastSeq = pkt.SequenceNumber

	if a.open && pkt.Timestamp != a.ts {
		// The previous access unit ended without (or lost) its marker bit.
		a.finish(now)
	}
	if !a.open {
		a.open = true
		a.ts = pkt.Timestamp
		a.first = now
		a.nalus = nil
		a.npackets = 0
		// After a gap a new access unit is only known intact when it visibly starts at its beginning.
		// (Senders such as pion drop access unit delimiters, so the payload itself must tell.)
		a.damaged = gapped && !slwebrtc.StartsAccessUnit(pkt.Payload)
	}
	a.npackets++
	if len(pkt.Payload) > 0 {
		out, err := a.depack.Unmarshal(pkt.Payload)
		if err != nil {
			a.damaged = true
		} else {
			a.nalus = appendAVC(a.nalus, out)
		}
	}
	if pkt.Marker {
		a.finish(now)
	}
}

func (a *assembler) finish(now time.Time) {
	defer func() {
		a.open = false
		a.damaged = false
		a.nalus = nil
	}()
	if a.damaged || len(a.nalus) == 0 {
		a.incomplete++
		return
	}
	key := false
	for _, n := range a.nalus {
		if len(n) > 0 && n[0]&0x1f == 5 {
			key = true
			break
		}
	}
	a.emit(Frame{NALUs: a.nalus, RTPTime: a.ts, Keyframe: key, FirstPacketAt: a.first, CompleteAt: now, Packets: a.npackets})
}

// appendAVC splits 4-byte length-prefixed NAL units (pion's IsAVC output) and appends them.
func appendAVC(nalus [][]byte, b []byte) [][]byte {
	for len(b) >= 4 {
		n := int(binary.BigEndian.Uint32(b))
		b = b[4:]
		if n > len(b) {
			break
		}
		if n > 0 {
			nalus = append(nalus, b[:n:n])
		}
		b = b[n:]
	}
	return nalus
}
