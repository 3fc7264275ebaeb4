package main

import (
	"fmt"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"

	"sightline/internal/stamp"
)

// baselineReader reads the publisher directly with gortsplib: the latency floor Sightline adds to.
type baselineReader struct {
	c *gortsplib.Client
}

// startBaseline connects to rawURL over transport ("tcp" or "udp") and calls onFrame(index, stampTime,
// arrival) for every stamped access unit, on gortsplib's goroutine.
func startBaseline(rawURL, transport string, onFrame func(index uint64, stamped, arrived time.Time)) (*baselineReader, error) {
	u, err := base.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", rawURL, err)
	}
	var tr gortsplib.Transport
	switch transport {
	case "tcp":
		tr = gortsplib.TransportTCP
	case "udp":
		tr = gortsplib.TransportUDP
	default:
		return nil, fmt.Errorf("baseline transport %q is not tcp or udp", transport)
	}
	c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tr}
	if err := c.Start2(); err != nil {
		return nil, fmt.Errorf("start baseline client: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	desc, _, err := c.Describe(u)
	if err != nil {
		return nil, fmt.Errorf("describe %s: %w", rawURL, err)
	}
	var forma *format.H264
	medi := desc.FindFormat(&forma)
	if medi == nil {
		return nil, fmt.Errorf("no H.264 track at %s", rawURL)
	}
	dec, err := forma.CreateDecoder()
	if err != nil {
		return nil, fmt.Errorf("h264 decoder: %w", err)
	}
	if _, err := c.Setup(desc.BaseURL, medi, 0, 0); err != nil {
		return nil, fmt.Errorf("setup %s: %w", rawURL, err)
	}
	c.OnPacketRTP(medi, forma, func(pkt *rtp.Packet) {
		au, err := dec.Decode(pkt)
		if err != nil { // ErrMorePacketsNeeded (normal) or a damaged access unit: nothing to time
			return
		}
		now := time.Now()
		if idx, t, ok := stamp.Find(au); ok {
			onFrame(idx, t, now)
		}
	})
	if _, err := c.Play(nil); err != nil {
		return nil, fmt.Errorf("play %s: %w", rawURL, err)
	}
	ok = true
	return &baselineReader{c: c}, nil
}

func (b *baselineReader) close() { b.c.Close() }
