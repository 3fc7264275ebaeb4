// Package media owns the shared vocabulary of Sightline (access units, codec parameters, source status)
// and the in-process bus (Stream) that joins sources to sinks; it imports no other Sightline package and
// must never block a writer on a reader.
package media

import (
	"time"
)

// Codec names a video codec carried by a Stream.
type Codec string

// Codecs Sightline carries.
const (
	CodecH264 Codec = "H264"
	CodecH265 Codec = "H265"
)

// VideoClockRate is the RTP clock rate of every video codec Sightline carries (RFC 6184, RFC 7798).
const VideoClockRate = 90000

// AccessUnit is one coded video frame: every NAL unit of one picture, without start codes or length
// prefixes. An AccessUnit written to a Stream is shared by all of its readers and must not be modified
// after Write.
type AccessUnit struct {
	Codec Codec
	// NALUs of the picture in decoding order, without Annex-B start codes.
	NALUs [][]byte
	// PTS is the presentation time relative to the start of the source.
	PTS time.Duration
	// RTPTime is the 90 kHz RTP timestamp of the frame as the source sent it (synthesized from PTS by
	// sources that are not RTP). Viewers of the passthrough track receive this exact value.
	RTPTime uint32
	// NTP is the capture wall-clock derived from RTCP sender reports; zero when the source sent none.
	NTP time.Time
	// Received is the wall-clock at which Sightline finished assembling the access unit.
	Received time.Time
	// Keyframe is true for random access points (H.264 IDR, H.265 IRAP).
	Keyframe bool
}

// Size returns the payload size of the access unit in bytes (NAL units only).
func (au *AccessUnit) Size() int {
	n := 0
	for _, nalu := range au.NALUs {
		n += len(nalu)
	}
	return n
}

// Params are the out-of-band codec parameters of a stream (SPS/PPS, plus VPS for H.265), without start
// codes. They let a reader that joins late, or a decoder, start without waiting for in-band copies.
type Params struct {
	Codec Codec
	VPS   []byte
	SPS   []byte
	PPS   []byte
}

// Empty reports whether no parameter set is known yet.
func (p Params) Empty() bool {
	return len(p.SPS) == 0 && len(p.PPS) == 0 && len(p.VPS) == 0
}

// SourceState is the lifecycle state of a source.
type SourceState string

// Source states.
const (
	StateStarting     SourceState = "starting"
	StateConnecting   SourceState = "connecting"
	StateStreaming    SourceState = "streaming"
	StateReconnecting SourceState = "reconnecting"
	StateStopped      SourceState = "stopped"
	StateDisabled     SourceState = "disabled"
	// StateWaiting is a push source (WHIP) that has no publisher.
	StateWaiting SourceState = "waiting"
)

// SourceStatus is a snapshot of a source's health, as reported by the API. LastError never contains
// credentials.
type SourceStatus struct {
	State        SourceState `json:"state"`
	LastError    string      `json:"last_error,omitempty"`
	RestartCount int         `json:"restart_count"`
	Frames       uint64      `json:"frames"`
	Bytes        uint64      `json:"bytes"`
	FPS          float64     `json:"fps"`
	BitrateBps   float64     `json:"bitrate_bps"`
	Codec        Codec       `json:"codec,omitempty"`
	Transport    string      `json:"transport,omitempty"`
	// Publisher is the remote address of a push source's publisher (WHIP), while one is connected.
	Publisher string    `json:"publisher,omitempty"`
	Since     time.Time `json:"since"`
}
