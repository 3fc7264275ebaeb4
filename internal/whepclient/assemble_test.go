package whepclient

import (
	"bytes"
	"testing"
	"time"

	"github.com/pion/rtp"
)

func pkt(seq uint16, ts uint32, marker bool, payload ...byte) *rtp.Packet {
	return &rtp.Packet{Header: rtp.Header{SequenceNumber: seq, Timestamp: ts, Marker: marker}, Payload: payload}
}

func TestAssembler(t *testing.T) {
	aud := []byte{0x09, 0xf0}
	stapAUDSPS := []byte{24, 0, 2, 0x09, 0xf0, 0, 3, 0x67, 0x42, 0x1f}
	idrStart := []byte{0x7c, 0x85, 0xaa} // FU-A start of an IDR
	idrEnd := []byte{0x7c, 0x45, 0xbb}   // FU-A end
	pslice := []byte{0x41, 0x9a}         // first_mb_in_slice = 0
	cases := []struct {
		name      string
		pkts      []*rtp.Packet
		want      [][][]byte // NALUs per delivered frame
		keys      []bool
		lost, inc uint64
	}{
		{
			name: "clean",
			pkts: []*rtp.Packet{
				pkt(1, 100, false, stapAUDSPS...), pkt(2, 100, false, idrStart...), pkt(3, 100, true, idrEnd...),
				pkt(4, 200, false, aud...), pkt(5, 200, true, pslice...),
			},
			want: [][][]byte{{aud, {0x67, 0x42, 0x1f}, {0x65, 0xaa, 0xbb}}, {aud, pslice}},
			keys: []bool{true, false},
		},
		{
			name: "loss inside frame discards it",
			pkts: []*rtp.Packet{
				pkt(10, 100, false, stapAUDSPS...), pkt(12, 100, true, idrEnd...),
				pkt(13, 200, false, aud...), pkt(14, 200, true, pslice...),
			},
			want: [][][]byte{{aud, pslice}},
			keys: []bool{false},
			lost: 1, inc: 1,
		},
		{
			name: "whole frame lost, next starts with AUD",
			pkts: []*rtp.Packet{
				pkt(1, 100, false, aud...), pkt(2, 100, true, pslice...),
				pkt(5, 300, false, aud...), pkt(6, 300, true, pslice...),
			},
			want: [][][]byte{{aud, pslice}, {aud, pslice}},
			keys: []bool{false, false},
			lost: 2,
		},
		{
			name: "head lost: slice with first_mb_in_slice > 0",
			pkts: []*rtp.Packet{
				pkt(1, 100, true, pslice...),
				pkt(3, 200, true, 0x41, 0x1a),
				pkt(4, 300, true, pslice...),
			},
			want: [][][]byte{{pslice}, {pslice}},
			keys: []bool{false, false},
			lost: 1, inc: 1,
		},
		{
			name: "frame lost, next starts with FU-A IDR first slice",
			pkts: []*rtp.Packet{
				pkt(1, 100, true, pslice...),
				pkt(4, 300, false, idrStart...), pkt(5, 300, true, idrEnd...),
			},
			want: [][][]byte{{pslice}, {{0x65, 0xaa, 0xbb}}},
			keys: []bool{false, true},
			lost: 2,
		},
		{
			name: "missing marker completes on next timestamp",
			pkts: []*rtp.Packet{
				pkt(65535, 100, false, pslice...), pkt(0, 200, true, pslice...),
			},
			want: [][][]byte{{pslice}, {pslice}},
			keys: []bool{false, false},
		},
		{
			name: "duplicate and late packets ignored",
			pkts: []*rtp.Packet{
				pkt(1, 100, false, aud...), pkt(1, 100, false, aud...), pkt(2, 100, true, pslice...), pkt(0, 50, true, pslice...),
			},
			want: [][][]byte{{aud, pslice}},
			keys: []bool{false},
		},
		{
			name: "garbage payload",
			pkts: []*rtp.Packet{pkt(1, 100, true, 30, 1, 2), pkt(2, 200, true, 24, 0, 9, 1)},
			inc:  2,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []Frame
			a := newAssembler(func(f Frame) { got = append(got, f) })
			now := time.Unix(1, 0)
			for _, p := range tc.pkts {
				a.push(p, now)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("frames = %d, want %d (%v)", len(got), len(tc.want), got)
			}
			for i, f := range got {
				if len(f.NALUs) != len(tc.want[i]) {
					t.Fatalf("frame %d: %x, want %x", i, f.NALUs, tc.want[i])
				}
				for j := range f.NALUs {
					if !bytes.Equal(f.NALUs[j], tc.want[i][j]) {
						t.Fatalf("frame %d nalu %d: %x, want %x", i, j, f.NALUs[j], tc.want[i][j])
					}
				}
				if f.Keyframe != tc.keys[i] {
					t.Errorf("frame %d keyframe = %v", i, f.Keyframe)
				}
			}
			if a.lost != tc.lost || a.incomplete != tc.inc {
				t.Errorf("lost, incomplete = %d, %d, want %d, %d", a.lost, a.incomplete, tc.lost, tc.inc)
			}
		})
	}
}
