package webrtc

import (
	"bytes"
	"math/rand"
	"os"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"sightline/internal/testenv"
	"sightline/media"
)

// Crafted NAL units: SPS, PPS, an IDR slice and a P slice (first_mb_in_slice = 0: the byte after the
// header starts with bit 1).
var (
	tSPS = []byte{0x67, 0x42, 0xe0, 0x1f, 0xda, 0x01, 0x40, 0x16}
	tPPS = []byte{0x68, 0xce, 0x3c, 0x80}
	tIDR = append([]byte{0x65, 0x88}, bytes.Repeat([]byte{0xab}, 3000)...)
	tP   = []byte{0x41, 0x9a, 0x01, 0x02, 0x03}
)

type pktSeq struct {
	seq uint16
	ts  uint32
	out []*rtp.Packet
}

func (s *pktSeq) add(payload []byte, marker bool) {
	s.out = append(s.out, &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: s.seq,
		Timestamp: s.ts, Marker: marker, SSRC: 1}, Payload: payload})
	s.seq++
}

func stapA(nalus ...[]byte) []byte {
	p := []byte{nalSTAP | 0x60}
	for _, n := range nalus {
		p = append(p, byte(len(n)>>8), byte(len(n)))
		p = append(p, n...)
	}
	return p
}

// fuA splits nalu into FU-A fragments of at most size bytes of payload.
func fuA(nalu []byte, size int) [][]byte {
	var out [][]byte
	body := nalu[1:]
	for i := 0; i < len(body); i += size {
		end := min(i+size, len(body))
		hdr := nalu[0] & 0x1f
		if i == 0 {
			hdr |= 0x80
		}
		if end == len(body) {
			hdr |= 0x40
		}
		out = append(out, append([]byte{nalu[0]&0xe0 | nalFUA, hdr}, body[i:end]...))
	}
	return out
}

// keyframe adds an access unit STAP-A(SPS, PPS) + FU-A(IDR) at the current timestamp, then advances it.
func (s *pktSeq) keyframe() {
	s.add(stapA(tSPS, tPPS), false)
	frags := fuA(tIDR, 1000)
	for i, f := range frags {
		s.add(f, i == len(frags)-1)
	}
	s.ts += 3600
}

func (s *pktSeq) pframe() {
	s.add(tP, true)
	s.ts += 3600
}

func run(d *H264Depacketizer, pkts []*rtp.Packet) []*media.AccessUnit {
	var out []*media.AccessUnit
	now := time.Unix(1000, 0)
	for _, p := range pkts {
		out = append(out, d.Push(p, now)...)
		now = now.Add(time.Millisecond)
	}
	return out
}

func sameNALUs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func TestDepackSTAPAndFUA(t *testing.T) {
	s := &pktSeq{seq: 100, ts: 5000}
	s.keyframe()
	s.pframe()
	s.add(tP, false) // a two-slice P frame: the second slice in a STAP-A with an SEI
	s.add(stapA([]byte{0x06, 0x05, 0x01, 0x80}, tP), true)
	d := NewH264Depacketizer()
	aus := run(d, s.out)
	if len(aus) != 3 {
		t.Fatalf("%d access units, want 3: %+v", len(aus), d.Stats())
	}
	if !aus[0].Keyframe || !sameNALUs(aus[0].NALUs, [][]byte{tSPS, tPPS, tIDR}) || aus[0].RTPTime != 5000 || aus[0].PTS != 0 {
		t.Fatalf("keyframe: key %v ts %d pts %v nalus %d", aus[0].Keyframe, aus[0].RTPTime, aus[0].PTS, len(aus[0].NALUs))
	}
	if aus[1].Keyframe || !sameNALUs(aus[1].NALUs, [][]byte{tP}) || aus[1].PTS != 40*time.Millisecond {
		t.Fatalf("P frame: %+v", aus[1])
	}
	if len(aus[2].NALUs) != 3 || aus[2].RTPTime != 5000+7200 {
		t.Fatalf("two-slice frame: %+v", aus[2])
	}
	if st := d.Stats(); st.Lost != 0 || st.Discarded != 0 || st.AccessUnit != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDepackWaitsForFirstKeyframe(t *testing.T) {
	s := &pktSeq{seq: 1, ts: 1}
	s.pframe()
	s.pframe()
	s.keyframe()
	s.pframe()
	d := NewH264Depacketizer()
	asked := 0
	d.OnKeyframeNeeded = func() { asked++ }
	aus := run(d, s.out)
	if len(aus) != 2 || !aus[0].Keyframe || asked != 2 {
		t.Fatalf("%d access units (first key %v), %d keyframe requests", len(aus), len(aus) > 0 && aus[0].Keyframe, asked)
	}
}

func TestDepackLossInFUA(t *testing.T) {
	s := &pktSeq{seq: 10, ts: 90000}
	s.keyframe()
	s.pframe()
	s.keyframe() // packets 4..8: STAP-A, FU-A x3
	s.pframe()
	s.pframe()
	s.keyframe()
	s.pframe()
	pkts := append([]*rtp.Packet(nil), s.out...)
	lostSeq := pkts[8].SequenceNumber // the middle FU-A fragment of the second keyframe
	pkts = append(pkts[:8], pkts[9:]...)
	d := NewH264Depacketizer()
	asked := 0
	d.OnKeyframeNeeded = func() { asked++ }
	var aus []*media.AccessUnit
	now := time.Unix(0, 0)
	for _, p := range pkts {
		aus = append(aus, d.Push(p, now)...)
		now = now.Add(50 * time.Millisecond) // slow enough that the window gives up on the lost packet
	}
	var got []uint32
	for _, au := range aus {
		got = append(got, au.RTPTime)
		for _, n := range au.NALUs {
			if !validNAL(n) {
				t.Fatalf("broken NAL unit emitted")
			}
		}
		if au.Keyframe && !sameNALUs(au.NALUs, [][]byte{tSPS, tPPS, tIDR}) {
			t.Fatalf("keyframe %d emitted incomplete", au.RTPTime)
		}
	}
	// keyframe, P, [damaged keyframe, P, P dropped], keyframe, P
	want := []uint32{90000, 93600, 90000 + 5*3600, 90000 + 6*3600}
	if len(got) != len(want) {
		t.Fatalf("emitted %v, want %v (lost seq %d)", got, want, lostSeq)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("emitted %v, want %v", got, want)
		}
	}
	if st := d.Stats(); st.Lost != 1 || st.Discarded != 3 || asked != 3 {
		t.Fatalf("stats %+v, %d keyframe requests", st, asked)
	}
}

func TestDepackReorderWithinWindow(t *testing.T) {
	s := &pktSeq{seq: 7, ts: 1}
	for i := 0; i < 5; i++ {
		s.keyframe()
		s.pframe()
	}
	in := run(NewH264Depacketizer(), s.out)
	pkts := append([]*rtp.Packet(nil), s.out...)
	r := rand.New(rand.NewSource(1))
	for i := 4; i+4 < len(pkts); i += 4 { // shuffle inside windows of 4 packets
		r.Shuffle(4, func(a, b int) { pkts[i+a], pkts[i+b] = pkts[i+b], pkts[i+a] })
	}
	pkts = append(pkts, pkts[3], pkts[9]) // and duplicates
	d := NewH264Depacketizer()
	out := run(d, pkts)
	if len(out) != len(in) || len(in) != 10 {
		t.Fatalf("reordered: %d access units, in order: %d", len(out), len(in))
	}
	for i := range in {
		if out[i].RTPTime != in[i].RTPTime || !sameNALUs(out[i].NALUs, in[i].NALUs) {
			t.Fatalf("access unit %d differs", i)
		}
	}
	if st := d.Stats(); st.Lost != 0 || st.Late != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDepackSequenceAndTimestampWrap(t *testing.T) {
	s := &pktSeq{seq: 65530, ts: 0xffffffff - 3600*2 + 1}
	for i := 0; i < 3; i++ {
		s.keyframe()
		s.pframe()
	}
	d := NewH264Depacketizer()
	aus := run(d, s.out)
	if len(aus) != 6 {
		t.Fatalf("%d access units, stats %+v", len(aus), d.Stats())
	}
	for i, au := range aus {
		if want := time.Duration(i) * 40 * time.Millisecond; au.PTS != want {
			t.Fatalf("access unit %d: PTS %v, want %v (ts %d)", i, au.PTS, want, au.RTPTime)
		}
	}
	if s.seq > 100 || aus[5].RTPTime > 0x10000 {
		t.Fatal("the test did not wrap")
	}
}

func TestDepackGivesUpAfterWindow(t *testing.T) {
	s := &pktSeq{seq: 1, ts: 1}
	s.keyframe()
	for i := 0; i < reorderWindow+10; i++ {
		s.pframe()
	}
	s.keyframe()
	pkts := append(append([]*rtp.Packet(nil), s.out[:6]...), s.out[7:]...) // lose the second P frame
	d := NewH264Depacketizer()
	aus := run(d, pkts) // 1 ms apart: only the window's size gives up on it
	if st := d.Stats(); st.Lost != 1 {
		t.Fatalf("stats %+v", st)
	}
	if len(aus) != 3 || !aus[2].Keyframe {
		t.Fatalf("%d access units", len(aus))
	}
}

// The street clip, packetized by pion's H.264 payloader (STAP-A for SPS/PPS, FU-A for big slices) and
// reordered a little, comes out access unit by access unit as it went in (without AUDs, which the
// payloader drops).
func TestDepackStreetClip(t *testing.T) {
	raw := readAsset(t)
	var aus [][][]byte
	for _, n := range media.SplitAnnexB(raw) {
		if media.NALUType(media.CodecH264, n) == 9 || len(aus) == 0 {
			aus = append(aus, nil)
		}
		if media.NALUType(media.CodecH264, n) != 9 {
			aus[len(aus)-1] = append(aus[len(aus)-1], n)
		}
	}
	pay := &codecs.H264Payloader{}
	var pkts []*rtp.Packet
	seq, ts := uint16(60000), uint32(0xfffff000)
	for _, au := range aus {
		var payloads [][]byte
		for _, n := range au {
			payloads = append(payloads, pay.Payload(1200, media.JoinAnnexB([][]byte{n}))...)
		}
		for i, p := range payloads {
			pkts = append(pkts, &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: ts,
				Marker: i == len(payloads)-1}, Payload: p})
			seq++
		}
		ts += 3600
	}
	r := rand.New(rand.NewSource(2))
	for i := 8; i+8 < len(pkts); i += 8 {
		r.Shuffle(8, func(a, b int) { pkts[i+a], pkts[i+b] = pkts[i+b], pkts[i+a] })
	}
	d := NewH264Depacketizer()
	out := run(d, pkts)
	if len(out) != len(aus) {
		t.Fatalf("%d access units out of %d, stats %+v", len(out), len(aus), d.Stats())
	}
	for i := range aus {
		if !sameNALUs(out[i].NALUs, aus[i]) || out[i].Keyframe != media.IsKeyframe(media.CodecH264, aus[i]) {
			t.Fatalf("access unit %d differs", i)
		}
	}
}

func readAsset(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(testenv.Asset(t, "camera/cam_street_1280x720_25fps.h264"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
