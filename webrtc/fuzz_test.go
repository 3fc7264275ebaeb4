package webrtc

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"

	"sightline/media"
)

// FuzzWHEPOffer: any body POSTed as an offer gets 201 or a 4xx/503 JSON error, never a panic.
func FuzzWHEPOffer(f *testing.F) {
	for _, name := range []string{"chromium_offer_audio_video.sdp", "firefox_offer_audio_video.sdp", "vp8_only_offer.sdp"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("")
	f.Add("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\n")
	f.Add("v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\n")
	h := newHandlerEnvTB(f, Config{})
	f.Fuzz(func(t *testing.T, body string) {
		rec := h.do("POST", "/whep/cam1", "application/sdp", body, nil)
		switch {
		case rec.Code == 201:
			if del := h.do("DELETE", rec.Header().Get("Location"), "", "", nil); del.Code != 204 {
				t.Fatalf("DELETE after 201: %d", del.Code)
			}
		case rec.Code >= 400 && rec.Code < 500 || rec.Code == 503:
			var e struct{ Error, Code string }
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code == "" || e.Error == "" {
				t.Fatalf("status %d with body %q", rec.Code, rec.Body.String())
			}
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
		}
	})
}

// FuzzTrickleFrag: the sdpfrag parser never panics and only returns well-formed candidates.
func FuzzTrickleFrag(f *testing.F) {
	f.Add("a=ice-ufrag:abc\r\na=ice-pwd:p\r\nm=video 9 RTP/AVP 0\r\na=mid:0\r\na=candidate:1 1 udp 1 127.0.0.1 5000 typ host\r\na=end-of-candidates\r\n")
	f.Add("a=candidate:")
	f.Add("m=\nm=\na=candidate:1 1 udp 1 ::1 1 typ host")
	f.Fuzz(func(t *testing.T, body string) {
		frag, err := parseTrickleFrag(body)
		if err != nil {
			return
		}
		for _, c := range frag.Candidates {
			if !strings.HasPrefix(c.Candidate, "candidate:") || len(strings.Fields(c.Candidate)) < 8 {
				t.Fatalf("bad candidate %q", c.Candidate)
			}
		}
	})
}

// FuzzSignalMessage: the signaling decoder never panics; accepted messages are complete.
func FuzzSignalMessage(f *testing.F) {
	f.Add([]byte(`{"type":"offer","camera":"demo","variant":"raw","sdp":"v=0"}`))
	f.Add([]byte(`{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 1 typ host","sdpMid":"0","sdpMLineIndex":0}}`))
	f.Add([]byte(`{"type":"close"}`))
	f.Add([]byte(`{"type":"candidate"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, e := parseSignalMessage(data)
		if e != nil {
			if e.code == "" || e.msg == "" {
				t.Fatalf("error without code or message: %+v", e)
			}
			return
		}
		switch m.Type {
		case "offer":
			if m.Camera == "" || m.SDP == "" || (m.Variant != VariantRaw && m.Variant != VariantAnnotated) {
				t.Fatalf("incomplete offer accepted: %+v", m)
			}
		case "candidate":
			if m.Candidate == nil {
				t.Fatal("candidate message without candidate accepted")
			}
		case "close":
		default:
			t.Fatalf("type %q accepted", m.Type)
		}
	})
}

// FuzzH264Depacketizer: random RTP payloads in random order never panic the depacketizer, and every
// access unit it emits is made of whole NAL units (a valid header of type 1–23, never empty).
func FuzzH264Depacketizer(f *testing.F) {
	// Each packet: sequence delta, flags (bit 0 marker, bit 1 next timestamp), payload length, payload.
	f.Add([]byte{1, 0, 3, 0x78, 0x00, 0x01, 1, 1, 2, 0x65, 0x88})
	f.Add([]byte{1, 0, 4, 0x7c, 0x85, 0x88, 0x01, 1, 1, 3, 0x7c, 0x45, 0x02, 1, 3, 2, 0x41, 0x9a})
	f.Add([]byte{1, 0, 9, 0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce, 0, 1, 3, 0x65, 0x88, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewH264Depacketizer()
		seq, ts := uint16(65500), uint32(0xfffffff0)
		now := time.Unix(0, 0)
		for len(data) >= 3 {
			delta, flags, n := data[0], data[1], int(data[2])
			data = data[3:]
			n = min(n, len(data))
			payload := append([]byte(nil), data[:n]...)
			data = data[n:]
			seq += uint16(int8(delta))
			if flags&2 != 0 {
				ts += 3600
			}
			now = now.Add(time.Duration(flags>>2) * time.Millisecond)
			for _, au := range d.Push(&rtp.Packet{Header: rtp.Header{SequenceNumber: seq, Timestamp: ts, Marker: flags&1 != 0}, Payload: payload}, now) {
				if len(au.NALUs) == 0 {
					t.Fatal("empty access unit")
				}
				for _, nalu := range au.NALUs {
					if !validNAL(nalu) {
						t.Fatalf("broken NAL unit % x", nalu)
					}
				}
				if au.Keyframe != media.IsKeyframe(media.CodecH264, au.NALUs) {
					t.Fatal("keyframe flag wrong")
				}
			}
		}
	})
}
