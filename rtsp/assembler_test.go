package rtsp

import (
	"testing"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
)

// TestAssemblerTimestamps feeds a depacketizer and the assembler the packets of three access units and
// checks each unit gets its own RTP timestamp: with the marker bit, and without it (cameras that never
// set it, where a unit is only known complete when the next timestamp arrives). The first packet of each
// unit is an AUD alone, which gortsplib cannot time: the unit must take its PTS from a later packet.
func TestAssemblerTimestamps(t *testing.T) {
	for _, marker := range []bool{true, false} {
		forma := &format.H264{PayloadTyp: 96, PacketizationMode: 1}
		dec, err := forma.CreateDecoder()
		if err != nil {
			t.Fatal(err)
		}
		var pkts []*rtp.Packet
		for i := 0; i < 3; i++ {
			ts := uint32(1000 + 3600*i)
			aud := &rtp.Packet{Header: rtp.Header{Timestamp: ts}, Payload: []byte{0x09, 0xf0}}
			big := make([]byte, 3000) // fragmented (FU-A)
			big[0] = 0x65
			enc, _ := forma.CreateEncoder()
			frag, _ := enc.Encode([][]byte{big})
			for _, p := range frag {
				p.Timestamp = ts
				p.Marker = p.Marker && marker
			}
			pkts = append(pkts, aud)
			pkts = append(pkts, frag...)
		}
		var a assembler
		var got []pktInfo
		for _, p := range pkts {
			// Only IDR-starting packets are timed here (as PacketPTS2 does before its first IDR).
			ok := len(p.Payload) > 1 && p.Payload[0]&0x1f == 28 && p.Payload[1]&0x80 != 0
			info := pktInfo{ts: p.Timestamp, pts: int64(p.Timestamp), ptsOK: ok}
			_, err := dec.Decode(p)
			if at, complete := a.next(info, p, err); err == nil {
				if !complete {
					t.Fatalf("marker=%v: unit %d reported incomplete", marker, len(got))
				}
				got = append(got, at)
			}
		}
		want := 3
		if !marker {
			want = 2 // the last unit waits for a next timestamp that never comes
		}
		if len(got) != want {
			t.Fatalf("marker=%v: %d units, want %d", marker, len(got), want)
		}
		for i, at := range got {
			if ts := uint32(1000 + 3600*i); at.ts != ts || !at.ptsOK || at.pts != int64(ts) {
				t.Fatalf("marker=%v unit %d: %+v, want ts %d timed", marker, i, at, ts)
			}
		}
	}
}

// BenchmarkDepacketize measures the per-packet receive path without the network: depacketizing a
// 1280x720 stream's access units (RFC 6184 FU-A/STAP-A) and timing them with the assembler.
func BenchmarkDepacketize(b *testing.B) {
	forma := &format.H264{PayloadTyp: 96, PacketizationMode: 1}
	enc, _ := forma.CreateEncoder()
	idr := make([]byte, 90000)
	idr[0] = 0x65
	p := make([]byte, 4000)
	p[0] = 0x41
	var pkts []*rtp.Packet
	for i := 0; i < 25; i++ {
		au := [][]byte{{0x09, 0xf0}, p}
		if i == 0 {
			au = [][]byte{{0x09, 0xf0}, {0x67, 0x42}, {0x68, 0xce}, idr}
		}
		ps, _ := enc.Encode(au)
		for _, pk := range ps {
			pk.Timestamp = uint32(i * 3600)
		}
		pkts = append(pkts, ps...)
	}
	bytes := 0
	for _, pk := range pkts {
		bytes += len(pk.Payload)
	}
	b.SetBytes(int64(bytes))
	b.ReportAllocs()
	for b.Loop() {
		dec, _ := forma.CreateDecoder()
		var a assembler
		for _, pk := range pkts {
			_, err := dec.Decode(pk)
			a.next(pktInfo{ts: pk.Timestamp, ptsOK: true}, pk, err)
		}
	}
}
