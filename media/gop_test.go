package media

import (
	"bytes"
	"testing"
)

func rtpTimes(aus []*AccessUnit) []uint32 {
	out := make([]uint32, len(aus))
	for i, a := range aus {
		out[i] = a.RTPTime
	}
	return out
}

func equalU32(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Without KeepGOP a GOP reader is an ordinary reader: it waits for the next keyframe.
func TestGOPReaderWithoutCache(t *testing.T) {
	s := NewStream("t")
	s.Write(au(0, true))
	s.Write(au(1, false))
	r := s.NewReaderFromGOP(8)
	defer r.Close()
	if r.Len() != 0 {
		t.Fatalf("backlog of %d without KeepGOP", r.Len())
	}
	s.Write(au(2, false))
	s.Write(au(3, true))
	if got := rtpTimes(readN(t, r, 1)); got[0] != 3 {
		t.Fatalf("first access unit %v, want the next keyframe 3", got)
	}
}

// With KeepGOP a GOP reader gets the chain since the last keyframe (with its parameter sets in band),
// then the live access units; an ordinary reader still starts at the next keyframe.
func TestGOPReaderGetsBacklogThenLive(t *testing.T) {
	s := NewStream("t")
	s.KeepGOP()
	sps, pps := []byte{0x67, 1}, []byte{0x68, 2}
	s.SetParams(Params{Codec: CodecH264, SPS: sps, PPS: pps})
	for i := 0; i < 10; i++ {
		s.Write(au(i, i%4 == 0)) // keyframes 0, 4, 8
	}
	r := s.NewReaderFromGOP(2)
	defer r.Close()
	plain := s.NewReader(2)
	defer plain.Close()
	if r.Len() != 2 {
		t.Fatalf("backlog %d, want 2 (keyframe 8 and 9)", r.Len())
	}
	backlog := readN(t, r, 2)
	if got := rtpTimes(backlog); !equalU32(got, []uint32{8, 9}) {
		t.Fatalf("backlog %v, want [8 9]", got)
	}
	if n := backlog[0].NALUs; len(n) < 3 || !bytes.Equal(n[0], sps) || !bytes.Equal(n[1], pps) {
		t.Fatalf("backlog keyframe NALUs %x: want SPS and PPS in band", n)
	}
	// Live frames follow; the backlog never costs the live queue its room.
	s.Write(au(10, false))
	s.Write(au(11, false))
	if got := rtpTimes(readN(t, r, 2)); !equalU32(got, []uint32{10, 11}) || r.Dropped() != 0 {
		t.Fatalf("live %v (dropped %d), want [10 11]", got, r.Dropped())
	}
	s.Write(au(12, true))
	if got := rtpTimes(readN(t, plain, 1)); got[0] != 12 {
		t.Fatalf("ordinary reader started at %v, want the next keyframe 12", got)
	}
}

// A GOP larger than the cache's bounds is forgotten until the next keyframe.
func TestGOPCacheBounded(t *testing.T) {
	s := NewStream("t")
	s.KeepGOP()
	s.Write(au(0, true))
	for i := 1; i <= maxGOPFrames; i++ {
		s.Write(au(i, false))
	}
	r := s.NewReaderFromGOP(4)
	if r.Len() != 0 {
		t.Fatalf("backlog of %d past the %d-frame bound", r.Len(), maxGOPFrames)
	}
	r.Close()
	s.Write(au(1000, true))
	r = s.NewReaderFromGOP(4)
	defer r.Close()
	if r.Len() != 1 {
		t.Fatalf("backlog %d after a new keyframe, want 1", r.Len())
	}
	s.Close()
	if r2 := s.NewReaderFromGOP(4); r2.Len() != 0 {
		t.Fatal("closed stream still hands out its GOP")
	}
}
