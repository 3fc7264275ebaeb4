package media

import (
	"bytes"
	"testing"
)

func TestSplitAnnexB(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		want [][]byte
	}{
		{"empty", nil, nil},
		{"no start code", []byte{1, 2, 3}, nil},
		{"three and four byte codes", []byte{0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2}, [][]byte{{0x67, 1}, {0x68, 2}}},
		{"trailing zeros trimmed", []byte{0, 0, 1, 0x65, 7, 0, 0, 0, 0, 1, 0x41}, [][]byte{{0x65, 7}, {0x41}}},
		{"leading garbage ignored", []byte{9, 9, 0, 0, 1, 0x09, 0xf0}, [][]byte{{0x09, 0xf0}}},
		{"empty nal skipped", []byte{0, 0, 1, 0, 0, 1, 0x41}, [][]byte{{0x41}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := SplitAnnexB(c.in)
			if len(got) != len(c.want) {
				t.Fatalf("got %x, want %x", got, c.want)
			}
			for i := range got {
				if !bytes.Equal(got[i], c.want[i]) {
					t.Fatalf("nalu %d = %x, want %x", i, got[i], c.want[i])
				}
			}
		})
	}
}

func TestIsKeyframe(t *testing.T) {
	if !IsKeyframe(CodecH264, [][]byte{{0x09}, {0x67}, {0x65}}) {
		t.Fatal("H.264 IDR not a keyframe")
	}
	if IsKeyframe(CodecH264, [][]byte{{0x41}}) {
		t.Fatal("H.264 P slice is a keyframe")
	}
	if !IsKeyframe(CodecH265, [][]byte{{19 << 1, 1}}) { // IDR_W_RADL
		t.Fatal("H.265 IDR not a keyframe")
	}
	if IsKeyframe(CodecH265, [][]byte{{1 << 1, 1}}) {
		t.Fatal("H.265 TRAIL_R is a keyframe")
	}
}

func FuzzSplitAnnexB(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2})
	f.Add([]byte{0, 0, 1})
	f.Add([]byte{0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		nalus := SplitAnnexB(in)
		for _, n := range nalus {
			if len(n) == 0 {
				t.Fatal("empty NAL unit returned")
			}
			if bytes.Contains(n, []byte{0, 0, 1}) {
				t.Fatalf("NAL unit contains a start code: %x", n)
			}
		}
		// Round trip: joining and splitting again yields the same NAL units.
		again := SplitAnnexB(JoinAnnexB(nalus))
		if len(again) != len(nalus) {
			t.Fatalf("round trip: %d NAL units, want %d", len(again), len(nalus))
		}
		for i := range nalus {
			if !bytes.Equal(again[i], nalus[i]) {
				t.Fatalf("round trip nalu %d: %x != %x", i, again[i], nalus[i])
			}
		}
		_ = IsKeyframe(CodecH264, nalus)
		_ = IsKeyframe(CodecH265, nalus)
	})
}
