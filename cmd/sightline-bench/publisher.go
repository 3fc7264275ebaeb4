package main

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"sightline/internal/rtsptest"
	"sightline/internal/stamp"
)

// publisher is the camera of the benchmarks: the in-process RTSP server of internal/rtsptest on
// 127.0.0.1 (TCP, plus UDP on loopback ports) looping an Annex-B clip in real time, with a stamp SEI
// (frame index, send wall-clock) put in every access unit just before its packets are written. It keeps
// when each index was stamped so that delivery can be compared to publication.
type publisher struct {
	URL string

	srv *rtsptest.Server
	stampLog
}

// stampLog is when each frame index of a stamped publisher was stamped, in index order.
type stampLog struct {
	mu     sync.Mutex
	stamps []int64 // stamps[i] = unix nanos of frame i
}

// record logs the stamp of the next frame index.
func (p *stampLog) record(t time.Time) {
	p.mu.Lock()
	p.stamps = append(p.stamps, t.UnixNano())
	p.mu.Unlock()
}

// newPublisher loads clipPath and starts serving rtsp://127.0.0.1:PORT/cam1 at fps.
func newPublisher(clipPath string, fps float64) (*publisher, error) {
	p := &publisher{}
	srv, err := rtsptest.NewServer(rtsptest.ServerConfig{
		AnnexBPath: clipPath,
		FPS:        fps,
		UDP:        true,
		BeforeWrite: func(index uint64, nalus [][]byte, now time.Time) [][]byte {
			p.record(now)
			return stamp.Insert(nalus, index, now)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("start rtsp publisher for %s: %w", clipPath, err)
	}
	p.srv, p.URL = srv, srv.URL
	return p, nil
}

// published returns how many frames were stamped in [from, to).
func (p *stampLog) published(from, to time.Time) int {
	lo, hi := p.indexRange(from, to)
	return int(hi - lo)
}

// indexRange returns the indices of the frames stamped in [from, to): [lo, hi).
func (p *stampLog) indexRange(from, to time.Time) (lo, hi uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := sort.Search(len(p.stamps), func(i int) bool { return p.stamps[i] >= from.UnixNano() })
	h := sort.Search(len(p.stamps), func(i int) bool { return p.stamps[i] >= to.UnixNano() })
	return uint64(l), uint64(h)
}

func (p *publisher) close() { p.srv.Close() }

// publishedAt returns the publish wall-clock of frame index i.
func (p *stampLog) publishedAt(i uint64) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i >= uint64(len(p.stamps)) {
		return time.Time{}, false
	}
	return time.Unix(0, p.stamps[i]), true
}

// latestWithPos returns the last frame index i published at or before t with i % loop == pos: the frame a
// visual stamp pos (position in a loop of loop frames) seen at t stands for.
func (p *stampLog) latestWithPos(pos int64, loop int, t time.Time) (uint64, time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pos < 0 || loop <= 0 {
		return 0, time.Time{}, false
	}
	tn := t.UnixNano()
	// The last index ≡ pos (mod loop), then one loop back at a time (at most a few steps).
	i := len(p.stamps) - 1
	if i < 0 {
		return 0, time.Time{}, false
	}
	i -= ((i-int(pos))%loop + loop) % loop
	for ; i >= 0; i -= loop {
		if p.stamps[i] <= tn {
			return uint64(i), time.Unix(0, p.stamps[i]), true
		}
	}
	return 0, time.Time{}, false
}

// publishedByRTP returns the index and publish wall-clock of the frame sent with RTP timestamp ts (from
// its stamp SEI in the server's log of sent access units).
func (p *publisher) publishedByRTP(ts uint32) (uint64, time.Time, bool) {
	au, ok := p.srv.FindSent(ts)
	if !ok {
		return 0, time.Time{}, false
	}
	return stamp.Find(au.NALUs)
}
