package stamp

import (
	"bytes"
	"testing"
	"time"
)

func TestBuildFindRoundTrip(t *testing.T) {
	now := time.Unix(1700000000, 123456789)
	aud := []byte{0x09, 0xf0}
	sps := []byte{0x67, 0x42, 0xc0, 0x1f}
	pps := []byte{0x68, 0xce, 0x3c, 0x80}
	idr := []byte{0x65, 0x88, 0x84, 0x00}
	slice := []byte{0x41, 0x9a, 0x00}
	otherSEI := []byte{0x06, 0x05, 0x01, 0x00, 0x80}
	cases := []struct {
		name    string
		au      [][]byte
		index   uint64
		wantPos int
	}{
		{"idr with params", [][]byte{aud, sps, pps, idr}, 0, 3},
		{"p frame", [][]byte{aud, slice}, 1, 1},
		{"no aud", [][]byte{slice}, 42, 0},
		{"other sei first", [][]byte{aud, otherSEI, slice, slice}, 1 << 40, 2},
		{"no slice", [][]byte{aud, sps}, ^uint64(0), 2},
		{"empty", nil, 7, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			orig := append([][]byte(nil), tc.au...)
			out := Insert(tc.au, tc.index, now)
			if len(out) != len(tc.au)+1 {
				t.Fatalf("len = %d, want %d", len(out), len(tc.au)+1)
			}
			if out[tc.wantPos][0]&0x1f != nalSEI {
				t.Fatalf("SEI not at %d: %x", tc.wantPos, out)
			}
			for i := range orig {
				if !bytes.Equal(orig[i], tc.au[i]) {
					t.Fatalf("input modified")
				}
			}
			idx, ts, ok := Find(out)
			if !ok || idx != tc.index || !ts.Equal(now) {
				t.Fatalf("Find = %d %v %v, want %d %v", idx, ts, ok, tc.index, now)
			}
			if _, _, ok := Find(tc.au); ok {
				t.Fatalf("found a stamp in the unstamped AU")
			}
		})
	}
}

func TestEmulationPrevention(t *testing.T) {
	cases := []struct{ rbsp, ebsp []byte }{
		{[]byte{0, 0, 0}, []byte{0, 0, 3, 0}},
		{[]byte{0, 0, 1}, []byte{0, 0, 3, 1}},
		{[]byte{0, 0, 2}, []byte{0, 0, 3, 2}},
		{[]byte{0, 0, 3}, []byte{0, 0, 3, 3}},
		{[]byte{0, 0, 4}, []byte{0, 0, 4}},
		{[]byte{0, 0, 0, 0, 0}, []byte{0, 0, 3, 0, 0, 3, 0}},
		{[]byte{1, 0, 0}, []byte{1, 0, 0, 3}},
		{[]byte{0, 1, 0, 0, 1}, []byte{0, 1, 0, 0, 3, 1}},
	}
	for _, tc := range cases {
		got := AppendEBSP(nil, tc.rbsp)
		if !bytes.Equal(got, tc.ebsp) {
			t.Errorf("AppendEBSP(%x) = %x, want %x", tc.rbsp, got, tc.ebsp)
		}
		if back := UnescapeRBSP(got); !bytes.Equal(back, tc.rbsp) {
			t.Errorf("UnescapeRBSP(%x) = %x, want %x", got, back, tc.rbsp)
		}
	}
}

// A stamp SEI written by another encoder with emulation prevention in its payload and a second message
// in front of ours must still parse.
func TestParseEscapedAndMultipleMessages(t *testing.T) {
	data := append(append([]byte{}, UUID[:]...), "i=9;t=1000"...)
	var rbsp []byte
	rbsp = append(rbsp, 5, 18) // another user_data_unregistered with zeros in its UUID
	rbsp = append(rbsp, make([]byte, 18)...)
	rbsp = append(rbsp, 5, byte(len(data)))
	rbsp = append(rbsp, data...)
	rbsp = append(rbsp, 0x80)
	nalu := AppendEBSP([]byte{0x06}, rbsp)
	if bytes.Equal(nalu[1:], rbsp) {
		t.Fatal("test input should need emulation prevention")
	}
	idx, ts, err := Parse(nalu)
	if err != nil || idx != 9 || ts.UnixNano() != 1000 {
		t.Fatalf("Parse = %d %v %v", idx, ts, err)
	}
}

func TestParseRejects(t *testing.T) {
	good := Build(3, time.Unix(0, 5))
	cases := map[string][]byte{
		"empty":        {},
		"not sei":      {0x65, 0x00},
		"truncated":    good[:10],
		"size overrun": {0x06, 0x05, 0x40, 0x01},
		"ff run":       append([]byte{0x06}, bytes.Repeat([]byte{0xff}, 50)...),
		"other uuid":   {0x06, 0x05, 0x10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0x80},
		"bad data":     AppendEBSP([]byte{0x06}, append(append([]byte{5, 16 + 5}, UUID[:]...), "i=x;t"...)),
	}
	for name, nalu := range cases {
		if _, _, err := Parse(nalu); err == nil {
			t.Errorf("%s: Parse accepted %x", name, nalu)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Build(1, time.Unix(0, 2)))
	f.Add([]byte{0x06, 0x05, 0x00, 0x80})
	f.Add([]byte{0x06, 0xff, 0xff, 0x00, 0x00, 0x03, 0x01})
	f.Fuzz(func(t *testing.T, nalu []byte) {
		idx, ts, err := Parse(nalu)
		if err != nil {
			return
		}
		// Whatever parses must round-trip through Build.
		idx2, ts2, err := Parse(Build(idx, ts))
		if err != nil || idx2 != idx || !ts2.Equal(ts) {
			t.Fatalf("round trip of %d %v: %d %v %v", idx, ts, idx2, ts2, err)
		}
		_, _, _ = Find([][]byte{nalu})
	})
}
