package webrtc

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	pwebrtc "github.com/pion/webrtc/v4"
)

// fakeSender is a TrackLocalContext and TrackLocalWriter that records what a fanoutTrack writes to it;
// a blocked one never returns from WriteRTP until released.
type fakeSender struct {
	id   string
	ssrc uint32

	block   chan struct{} // nil: never blocks
	blocked atomic.Bool   // a WriteRTP is waiting on block

	mu   sync.Mutex
	pkts []rtp.Packet
}

func (f *fakeSender) CodecParameters() []pwebrtc.RTPCodecParameters {
	return []pwebrtc.RTPCodecParameters{{
		RTPCodecCapability: pwebrtc.RTPCodecCapability{MimeType: pwebrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"},
		PayloadType: 106,
	}}
}
func (f *fakeSender) HeaderExtensions() []pwebrtc.RTPHeaderExtensionParameter { return nil }
func (f *fakeSender) SSRC() pwebrtc.SSRC                                      { return pwebrtc.SSRC(f.ssrc) }
func (f *fakeSender) SSRCRetransmission() pwebrtc.SSRC                        { return 0 }
func (f *fakeSender) SSRCForwardErrorCorrection() pwebrtc.SSRC                { return 0 }
func (f *fakeSender) WriteStream() pwebrtc.TrackLocalWriter                   { return f }
func (f *fakeSender) ID() string                                              { return f.id }
func (f *fakeSender) RTCPReader() interceptor.RTCPReader                      { return nil }

func (f *fakeSender) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	if f.block != nil {
		f.blocked.Store(true)
		<-f.block
	}
	f.mu.Lock()
	f.pkts = append(f.pkts, rtp.Packet{Header: *h, Payload: payload})
	f.mu.Unlock()
	return len(payload), nil
}
func (f *fakeSender) Write(b []byte) (int, error) { return len(b), nil }

func (f *fakeSender) got() []rtp.Packet {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]rtp.Packet(nil), f.pkts...)
}

func testBatch(ts uint32, key bool, n int) batch {
	b := batch{key: key}
	for i := 0; i < n; i++ {
		b.pkts = append(b.pkts, &rtp.Packet{
			Header:  rtp.Header{Version: 2, Timestamp: ts, Marker: i == n-1},
			Payload: []byte{byte(ts), byte(i)},
		})
	}
	return b
}

func newTestFanout(t *testing.T, shards int, needKeyframe func()) (*fanoutTrack, func()) {
	t.Helper()
	f, err := newFanoutTrack(pwebrtc.RTPCodecCapability{MimeType: pwebrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"},
		"video", "test", shards, needKeyframe)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.start(ctx)
	return f, func() { cancel(); f.wait() }
}

// TestFanoutShardsSpreadAndDeliver: viewers are spread evenly over the shards, and every one of them gets
// every packet, with its own SSRC and payload type, the camera's timestamps untouched, and contiguous
// sequence numbers; NACKs are answered from the shard's history with the asking viewer's SSRC only.
func TestFanoutShardsSpreadAndDeliver(t *testing.T) {
	checkGoroutines(t)
	f, stop := newTestFanout(t, 3, nil)
	defer stop()
	var senders []*fakeSender
	for i := 0; i < 7; i++ {
		s := &fakeSender{id: fmt.Sprint("s", i), ssrc: 1000 + uint32(i)}
		if _, err := f.Bind(s); err != nil {
			t.Fatal(err)
		}
		senders = append(senders, s)
	}
	for i, st := range f.stats() {
		if st.Viewers < 2 || st.Viewers > 3 {
			t.Fatalf("shard %d has %d viewers: %+v", i, st.Viewers, f.stats())
		}
	}
	const aus, per = 20, 5
	for i := 0; i < aus; i++ {
		f.publish(testBatch(uint32(i)*3600, i%10 == 0, per))
	}
	waitFor(t, 10*time.Second, "every viewer to get every packet", func() bool {
		for _, s := range senders {
			if len(s.got()) < aus*per {
				return false
			}
		}
		return true
	})
	for _, s := range senders {
		got := s.got()
		if len(got) != aus*per {
			t.Fatalf("%s got %d packets, want %d", s.id, len(got), aus*per)
		}
		for j, p := range got {
			if p.SSRC != s.ssrc || p.PayloadType != 106 {
				t.Fatalf("%s packet %d: ssrc %d pt %d", s.id, j, p.SSRC, p.PayloadType)
			}
			if want := uint32(j/per) * 3600; p.Timestamp != want {
				t.Fatalf("%s packet %d: timestamp %d, want %d", s.id, j, p.Timestamp, want)
			}
			if j > 0 && p.SequenceNumber != got[j-1].SequenceNumber+1 {
				t.Fatalf("%s packet %d: sequence %d after %d", s.id, j, p.SequenceNumber, got[j-1].SequenceNumber)
			}
		}
	}

	// NACK two packets of viewer 0: they come again, with its SSRC. Another viewer's SSRC is ignored.
	s0 := senders[0]
	first := s0.got()[0]
	nack := &rtcp.TransportLayerNack{MediaSSRC: s0.ssrc, Nacks: rtcp.NackPairsFromSequenceNumbers(
		[]uint16{first.SequenceNumber + 3, first.SequenceNumber + 7})}
	f.resend(senders[1].ssrc, nack) // not viewer 1's stream
	f.resend(s0.ssrc, nack)
	got := s0.got()
	if len(got) != aus*per+2 {
		t.Fatalf("after NACK viewer 0 has %d packets, want %d", len(got), aus*per+2)
	}
	for k, off := range []uint16{3, 7} {
		re, orig := got[aus*per+k], got[off]
		if re.SequenceNumber != orig.SequenceNumber || re.SSRC != s0.ssrc || re.Timestamp != orig.Timestamp ||
			string(re.Payload) != string(orig.Payload) {
			t.Fatalf("resent %+v, original %+v", re.Header, orig.Header)
		}
	}
	if n := len(senders[1].got()); n != aus*per {
		t.Fatalf("viewer 1 got %d packets after another viewer's NACK, want %d", n, aus*per)
	}

	for _, s := range senders {
		if err := f.Unbind(s); err != nil {
			t.Fatal(err)
		}
	}
	for _, st := range f.stats() {
		if st.Viewers != 0 {
			t.Fatalf("after unbind: %+v", f.stats())
		}
	}
}

// TestFanoutStuckShard: a viewer whose writes never return stalls only its own shard: the other shard's
// viewers get every access unit, the stuck shard drops its oldest ones (up to a keyframe), asks for a
// keyframe, and resumes once the writer is released.
func TestFanoutStuckShard(t *testing.T) {
	checkGoroutines(t)
	var losses atomic.Int32
	f, stop := newTestFanout(t, 2, func() { losses.Add(1) })
	defer stop()
	stuck := &fakeSender{id: "stuck", ssrc: 1, block: make(chan struct{})}
	release := sync.OnceFunc(func() { close(stuck.block) })
	defer release() // before stop (defers run last-in first-out), so a failing test does not hang
	healthy := &fakeSender{id: "healthy", ssrc: 2}
	for _, s := range []*fakeSender{stuck, healthy} {
		if _, err := f.Bind(s); err != nil {
			t.Fatal(err)
		}
	}
	if st := f.stats(); st[0].Viewers != 1 || st[1].Viewers != 1 {
		t.Fatalf("want one viewer per shard: %+v", st)
	}
	const aus = 4 * shardQueueLen
	for i := 0; i < aus; i++ {
		f.publish(testBatch(uint32(i), i%10 == 0, 2))
		if i == 0 {
			waitFor(t, 10*time.Second, "the stuck viewer's first write", stuck.blocked.Load)
		}
		// Lock-step with the healthy viewer (as a camera's real-time pace would be).
		waitFor(t, 10*time.Second, "the healthy viewer to get the access unit", func() bool { return len(healthy.got()) == (i+1)*2 })
	}
	st := f.stats()
	if st[0].Dropped == 0 || losses.Load() == 0 {
		t.Fatalf("the stuck shard dropped %d access units and asked for %d keyframes; want both > 0", st[0].Dropped, losses.Load())
	}
	if st[1].Dropped != 0 {
		t.Fatalf("the healthy shard dropped %d access units", st[1].Dropped)
	}
	release()
	f.publish(testBatch(999_000, true, 2))
	waitFor(t, 10*time.Second, "the released viewer to get the next keyframe", func() bool {
		got := stuck.got()
		return len(got) > 0 && got[len(got)-1].Timestamp == 999_000
	})
	got := stuck.got()
	for j := 1; j < len(got); j++ {
		if got[j].SequenceNumber != got[j-1].SequenceNumber+1 {
			t.Fatalf("stuck viewer: sequence %d after %d: a dropped access unit left a gap", got[j].SequenceNumber, got[j-1].SequenceNumber)
		}
	}
}
