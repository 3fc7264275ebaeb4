package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"

	"sightline/internal/stamp"
	"sightline/media"
)

// publisher is an in-process gortsplib RTSP server on 127.0.0.1 (TCP, plus UDP on loopback ports) that
// loops an Annex-B clip in real time and puts a stamp SEI (frame index, send wall-clock) in every access
// unit. It keeps a log of when each index was stamped so that delivery can be compared to publication.
type publisher struct {
	URL string

	aus    [][][]byte
	fps    float64
	srv    *gortsplib.Server
	stream *gortsplib.ServerStream
	medi   *description.Media
	forma  *format.H264

	mu     sync.Mutex
	stamps []int64 // stamps[i] = unix nanos of frame i

	done chan struct{}
	wg   sync.WaitGroup
}

// newPublisher loads clipPath and starts serving rtsp://127.0.0.1:PORT/cam1 at fps.
func newPublisher(clipPath string, fps float64) (*publisher, error) {
	buf, err := os.ReadFile(clipPath)
	if err != nil {
		return nil, fmt.Errorf("read clip: %w", err)
	}
	aus := splitAUs(buf)
	if len(aus) == 0 {
		return nil, fmt.Errorf("clip %s holds no access unit", clipPath)
	}
	forma := &format.H264{PayloadTyp: 96, PacketizationMode: 1}
	for _, au := range aus {
		for _, n := range au {
			switch media.NALUType(media.CodecH264, n) {
			case 7:
				if forma.SPS == nil {
					forma.SPS = n
				}
			case 8:
				if forma.PPS == nil {
					forma.PPS = n
				}
			}
		}
	}
	p := &publisher{aus: aus, fps: fps, forma: forma, done: make(chan struct{})}
	p.medi = &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{forma}}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		host, rtpPort, err := freeLoopbackPorts()
		if err != nil {
			return nil, err
		}
		p.srv = &gortsplib.Server{
			Handler:        p,
			RTSPAddress:    host,
			UDPRTPAddress:  fmt.Sprintf("127.0.0.1:%d", rtpPort),
			UDPRTCPAddress: fmt.Sprintf("127.0.0.1:%d", rtpPort+1),
		}
		if lastErr = p.srv.Start(); lastErr == nil {
			p.URL = "rtsp://" + host + "/cam1"
			break
		}
	}
	if lastErr != nil {
		return nil, fmt.Errorf("start rtsp server: %w", lastErr)
	}
	p.stream = &gortsplib.ServerStream{Server: p.srv, Desc: &description.Session{Medias: []*description.Media{p.medi}}}
	if err := p.stream.Initialize(); err != nil {
		p.srv.Close()
		return nil, fmt.Errorf("init rtsp stream: %w", err)
	}
	enc, err := forma.CreateEncoder()
	if err != nil {
		p.stream.Close()
		p.srv.Close()
		return nil, fmt.Errorf("rtp encoder: %w", err)
	}
	p.wg.Add(1)
	go p.pace(enc)
	return p, nil
}

// splitAUs splits an Annex-B stream into access units at each access unit delimiter.
func splitAUs(annexB []byte) [][][]byte {
	var aus [][][]byte
	for _, nalu := range media.SplitAnnexB(annexB) {
		if media.NALUType(media.CodecH264, nalu) == 9 || len(aus) == 0 {
			aus = append(aus, nil)
		}
		aus[len(aus)-1] = append(aus[len(aus)-1], nalu)
	}
	return aus
}

func freeLoopbackPorts() (host string, rtpPort int, err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", 0, fmt.Errorf("pick rtsp port: %w", err)
	}
	host = l.Addr().String()
	l.Close()
	for i := 0; i < 50; i++ {
		c1, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", 0, fmt.Errorf("pick rtp port: %w", err)
		}
		port := c1.LocalAddr().(*net.UDPAddr).Port
		c1.Close()
		if port%2 != 0 || port >= 65535 {
			continue
		}
		c2, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port+1))
		if err != nil {
			continue
		}
		c2.Close()
		return host, port, nil
	}
	return "", 0, errors.New("no free UDP port pair on loopback")
}

func (p *publisher) pace(enc *rtph264.Encoder) {
	defer p.wg.Done()
	const tsBase = 1_000_000
	period := time.Duration(float64(time.Second) / p.fps)
	start := time.Now()
	t := time.NewTimer(0)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-p.done:
			return
		case <-t.C:
		}
		au := p.aus[i%len(p.aus)]
		now := time.Now()
		pkts, err := enc.Encode(stamp.Insert(au, uint64(i), now))
		if err == nil {
			ts := uint32(tsBase + int64(float64(i)*media.VideoClockRate/p.fps))
			for _, pkt := range pkts {
				pkt.Timestamp = ts
				_ = p.stream.WritePacketRTPWithNTP(p.medi, pkt, now)
			}
		}
		p.mu.Lock()
		p.stamps = append(p.stamps, now.UnixNano())
		p.mu.Unlock()
		t.Reset(time.Until(start.Add(time.Duration(i+1) * period)))
	}
}

// published returns how many frames were stamped in [from, to).
func (p *publisher) published(from, to time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	lo := sort.Search(len(p.stamps), func(i int) bool { return p.stamps[i] >= from.UnixNano() })
	hi := sort.Search(len(p.stamps), func(i int) bool { return p.stamps[i] >= to.UnixNano() })
	return hi - lo
}

// indexRange returns the indices of the frames stamped in [from, to): [lo, hi).
func (p *publisher) indexRange(from, to time.Time) (lo, hi uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := sort.Search(len(p.stamps), func(i int) bool { return p.stamps[i] >= from.UnixNano() })
	h := sort.Search(len(p.stamps), func(i int) bool { return p.stamps[i] >= to.UnixNano() })
	return uint64(l), uint64(h)
}

func (p *publisher) close() {
	close(p.done)
	p.wg.Wait()
	p.stream.Close()
	p.srv.Close()
}

// OnDescribe implements gortsplib.ServerHandlerOnDescribe.
func (p *publisher) OnDescribe(*gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return &base.Response{StatusCode: base.StatusOK}, p.stream, nil
}

// OnSetup implements gortsplib.ServerHandlerOnSetup.
func (p *publisher) OnSetup(*gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return &base.Response{StatusCode: base.StatusOK}, p.stream, nil
}

// OnPlay implements gortsplib.ServerHandlerOnPlay.
func (p *publisher) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}
