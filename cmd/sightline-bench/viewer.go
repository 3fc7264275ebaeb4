package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"sightline/codec"
	"sightline/internal/stamp"
	"sightline/internal/whepclient"
	"sightline/media"
)

// decodedFrame is one picture a decodingViewer decoded.
type decodedFrame struct {
	// Pos is the visual stamp read from the picture, -1 when unreadable.
	Pos int64
	// SEI is the stamp SEI's index of the access unit, when it had one (the raw track keeps it).
	SEI    uint64
	HasSEI bool
	// RTP is the RTP timestamp the access unit arrived with.
	RTP      uint32
	Keyframe bool
	// Arrived is when the whole access unit arrived; Decoded when its picture came out of the decoder.
	Arrived, Decoded time.Time
}

// decodingViewer is a WHEP viewer that decodes every access unit it receives (libavcodec, software, one
// thread, on its own goroutine so the receiver never waits) and reads the visual stamp of each picture.
type decodingViewer struct {
	wc     *whepclient.Client
	in     chan whepclient.Frame
	visual *stamp.Visual // nil: do not read a visual stamp
	done   chan struct{}
	first  chan struct{}
	// saveJPEG, when set before the first frame, is where the 150th decoded picture is written as JPEG
	// (to look at what a track shows: boxes, stamp).
	saveJPEG string

	mu         sync.Mutex
	closed     bool
	frames     []decodedFrame
	firstAt    time.Time
	dropped    int // access units the decoding goroutine could not keep up with
	decodeErrs int
}

// dialDecoding opens a WHEP session on url (loopback only, PLI on start) and starts decoding.
func dialDecoding(ctx context.Context, url string, visual *stamp.Visual, saveJPEG string) (*decodingViewer, error) {
	dec, err := codec.NewDecoder(codec.DecoderConfig{Codec: media.CodecH264, Accel: codec.AccelSoftware})
	if err != nil {
		return nil, err
	}
	v := &decodingViewer{in: make(chan whepclient.Frame, 512), visual: visual, done: make(chan struct{}),
		first: make(chan struct{}), saveJPEG: saveJPEG}
	go v.decode(dec)
	v.wc, err = whepclient.Dial(ctx, url, whepclient.Options{LoopbackOnly: true, SendPLI: true, OnFrame: v.onFrame})
	if err != nil {
		close(v.in)
		<-v.done
		return nil, fmt.Errorf("whep %s: %w", url, err)
	}
	return v, nil
}

func (v *decodingViewer) onFrame(f whepclient.Frame) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return
	}
	select {
	case v.in <- f:
	default:
		v.dropped++
	}
}

func (v *decodingViewer) decode(dec *codec.Decoder) {
	defer close(v.done)
	defer dec.Close()
	var (
		out     []*codec.Frame
		arrived = map[uint32]whepclient.Frame{}
		first   = true
		rtp0    uint32
		base    int64 // unwrapped RTP of the first access unit
	)
	for f := range v.in {
		if first {
			rtp0, first = f.RTPTime, false
		}
		// Unwrapped PTS from the RTP clock (the decoder carries it through, with the RTP time).
		base = int64(int32(f.RTPTime - rtp0))
		arrived[f.RTPTime] = f
		if len(arrived) > 64 {
			for k := range arrived {
				if k != f.RTPTime {
					delete(arrived, k)
				}
			}
		}
		au := &media.AccessUnit{Codec: media.CodecH264, NALUs: f.NALUs, RTPTime: f.RTPTime, Keyframe: f.Keyframe,
			PTS: time.Duration(base) * time.Second / media.VideoClockRate}
		var err error
		out, err = dec.Decode(au, out[:0])
		if err != nil { // corrupt (the decoder restarts at the next keyframe) or worse: counted either way
			v.mu.Lock()
			v.decodeErrs++
			v.mu.Unlock()
		}
		for _, pic := range out {
			now := time.Now()
			d := decodedFrame{Pos: -1, RTP: pic.RTPTime, Keyframe: pic.Keyframe, Decoded: now}
			if v.visual != nil {
				if pos, err := v.visual.Read(pic.Planes[0], pic.Strides[0], pic.Width, pic.Height); err == nil {
					d.Pos = int64(pos)
				}
			}
			if v.saveJPEG != "" && len(v.frames) == 150 {
				saveJPEG(v.saveJPEG, pic)
			}
			pic.Release()
			if a, ok := arrived[d.RTP]; ok {
				d.Arrived = a.CompleteAt
				d.SEI, _, d.HasSEI = stamp.Find(a.NALUs)
			}
			v.mu.Lock()
			v.frames = append(v.frames, d)
			if v.firstAt.IsZero() {
				v.firstAt = now
				close(v.first)
			}
			v.mu.Unlock()
		}
	}
}

func saveJPEG(path string, pic *codec.Frame) {
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	_ = codec.EncodeJPEG(f, pic, 85)
}

// firstDecoded is closed when the first picture has been decoded.
func (v *decodingViewer) firstDecoded() <-chan struct{} { return v.first }

// firstDecodedAt is when the first picture came out of the decoder (zero before).
func (v *decodingViewer) firstDecodedAt() time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.firstAt
}

// snapshot returns the frames decoded so far.
func (v *decodingViewer) snapshot() (frames []decodedFrame, dropped, decodeErrs int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]decodedFrame(nil), v.frames...), v.dropped, v.decodeErrs
}

// stats returns the WHEP client's RTP counters.
func (v *decodingViewer) stats() whepclient.Stats { return v.wc.Stats() }

// close ends the session (WHEP DELETE) and waits for the decoder to finish what it holds.
func (v *decodingViewer) close() {
	_ = v.wc.Close()
	v.mu.Lock()
	v.closed = true
	v.mu.Unlock()
	close(v.in)
	<-v.done
}
