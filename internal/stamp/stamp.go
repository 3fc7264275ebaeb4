// Package stamp owns the per-frame stamps Sightline's benchmarks carry inside H.264 access units: an SEI
// user_data_unregistered message holding a frame index and a send wall-clock. It only adds or reads its own
// SEI NAL unit and must never alter any other NAL unit of an access unit.
package stamp

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// UUID identifies Sightline's stamp among user_data_unregistered SEI payloads (H.264 D.2.6). It is random
// and contains no zero byte, so the payload needs no emulation prevention in practice (it is still applied).
var UUID = [16]byte{
	0x53, 0x49, 0x47, 0x48, 0x54, 0x4c, 0x49, 0x4e, // "SIGHTLIN"
	0xe5, 0x7a, 0x9c, 0x41, 0xb2, 0x6d, 0x8f, 0x13,
}

// H.264 constants (H.264 Table 7-1, Annex D).
const (
	nalSEI                      = 6
	seiUserDataUnregistered     = 5
	maxStampPayload             = 16 + 64
	emulationPreventionByte     = 0x03
	rbspStopBitAndAlignment     = 0x80
	seiNALHeader                = nalSEI // forbidden_zero_bit 0, nal_ref_idc 0 (SEI must use 0), type 6
	vclFirst, vclLast       int = 1, 5   // coded slice types (non-IDR .. IDR)
)

// Build returns the SEI NAL unit (header included, no start code) that stamps frame index with t.
func Build(index uint64, t time.Time) []byte {
	payload := make([]byte, 0, maxStampPayload)
	payload = append(payload, UUID[:]...)
	payload = append(payload, "i="...)
	payload = strconv.AppendUint(payload, index, 10)
	payload = append(payload, ";t="...)
	payload = strconv.AppendInt(payload, t.UnixNano(), 10)

	rbsp := make([]byte, 0, len(payload)+8)
	rbsp = appendSEIValue(rbsp, seiUserDataUnregistered)
	rbsp = appendSEIValue(rbsp, len(payload))
	rbsp = append(rbsp, payload...)
	rbsp = append(rbsp, rbspStopBitAndAlignment)

	out := make([]byte, 0, len(rbsp)+8)
	out = append(out, seiNALHeader)
	return AppendEBSP(out, rbsp)
}

// appendSEIValue codes payloadType / payloadSize as in H.264 7.3.2.3.1: 0xFF per 255, then the rest.
func appendSEIValue(b []byte, v int) []byte {
	for v >= 255 {
		b = append(b, 0xff)
		v -= 255
	}
	return append(b, byte(v))
}

// Insert returns a new access unit with a stamp SEI for (index, t) placed after the leading AUD, SPS, PPS
// and other non-VCL NAL units and before the first slice (H.264 7.4.1.2.3). The input slice is not
// modified; its NAL units are shared, not copied.
func Insert(au [][]byte, index uint64, t time.Time) [][]byte {
	sei := Build(index, t)
	pos := len(au)
	for i, nalu := range au {
		if len(nalu) == 0 {
			continue
		}
		if typ := int(nalu[0] & 0x1f); typ >= vclFirst && typ <= vclLast {
			pos = i
			break
		}
	}
	out := make([][]byte, 0, len(au)+1)
	out = append(out, au[:pos]...)
	out = append(out, sei)
	return append(out, au[pos:]...)
}

// Find returns the stamp carried by the first stamp SEI among nalus.
func Find(nalus [][]byte) (index uint64, t time.Time, ok bool) {
	for _, nalu := range nalus {
		if len(nalu) < 2 || nalu[0]&0x1f != nalSEI {
			continue
		}
		if idx, ts, err := Parse(nalu); err == nil {
			return idx, ts, true
		}
	}
	return 0, time.Time{}, false
}

// ErrNoStamp is returned by Parse for a well-formed SEI NAL unit that carries no stamp of ours.
var ErrNoStamp = errors.New("stamp: no stamp in SEI")

// Parse reads the stamp from one SEI NAL unit (header included, emulation prevention present). It walks
// every sei_message of the NAL unit (H.264 7.3.2.3) and returns the first one that is ours.
func Parse(nalu []byte) (index uint64, t time.Time, err error) {
	if len(nalu) < 2 || nalu[0]&0x1f != nalSEI {
		return 0, time.Time{}, errors.New("stamp: not an SEI NAL unit")
	}
	rbsp := UnescapeRBSP(nalu[1:])
	for len(rbsp) > 0 {
		// more_rbsp_data(): stop at the trailing bits byte.
		if len(rbsp) == 1 && rbsp[0] == rbspStopBitAndAlignment {
			break
		}
		var typ, size int
		var ok bool
		if typ, rbsp, ok = readSEIValue(rbsp); !ok {
			return 0, time.Time{}, errors.New("stamp: truncated SEI payload type")
		}
		if size, rbsp, ok = readSEIValue(rbsp); !ok {
			return 0, time.Time{}, errors.New("stamp: truncated SEI payload size")
		}
		if size > len(rbsp) {
			return 0, time.Time{}, fmt.Errorf("stamp: SEI payload size %d exceeds remaining %d bytes", size, len(rbsp))
		}
		payload := rbsp[:size]
		rbsp = rbsp[size:]
		if typ != seiUserDataUnregistered || size < 16 || !bytes.Equal(payload[:16], UUID[:]) {
			continue
		}
		return parseData(payload[16:])
	}
	return 0, time.Time{}, ErrNoStamp
}

func readSEIValue(b []byte) (int, []byte, bool) {
	v := 0
	for len(b) > 0 && b[0] == 0xff {
		v += 255
		if v > 1<<20 {
			return 0, nil, false
		}
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, nil, false
	}
	return v + int(b[0]), b[1:], true
}

// parseData parses "i=<index>;t=<unix nanos>".
func parseData(d []byte) (uint64, time.Time, error) {
	var (
		index      uint64
		nanos      int64
		gotI, gotT bool
	)
	for _, field := range bytes.Split(d, []byte{';'}) {
		k, v, found := bytes.Cut(field, []byte{'='})
		if !found {
			return 0, time.Time{}, fmt.Errorf("stamp: malformed field %q", field)
		}
		switch string(k) {
		case "i":
			n, err := strconv.ParseUint(string(v), 10, 64)
			if err != nil {
				return 0, time.Time{}, fmt.Errorf("stamp: frame index: %w", err)
			}
			index, gotI = n, true
		case "t":
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return 0, time.Time{}, fmt.Errorf("stamp: time: %w", err)
			}
			nanos, gotT = n, true
		}
	}
	if !gotI || !gotT {
		return 0, time.Time{}, errors.New("stamp: missing i= or t=")
	}
	return index, time.Unix(0, nanos), nil
}

// AppendEBSP appends rbsp to dst with emulation prevention (H.264 7.4.1): an 0x03 byte is inserted after
// every two zero bytes that would otherwise be followed by a byte <= 0x03. A trailing 00 00 also gets
// one, so that the NAL unit never ends in a zero byte (cabac_zero_word rule, 7.4.1).
func AppendEBSP(dst, rbsp []byte) []byte {
	zeros := 0
	for _, b := range rbsp {
		if zeros >= 2 && b <= 0x03 {
			dst = append(dst, emulationPreventionByte)
			zeros = 0
		}
		dst = append(dst, b)
		if b == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	if zeros >= 2 {
		dst = append(dst, emulationPreventionByte)
	}
	return dst
}

// UnescapeRBSP removes emulation prevention bytes (00 00 03 → 00 00) from an EBSP, returning a new slice.
func UnescapeRBSP(ebsp []byte) []byte {
	out := make([]byte, 0, len(ebsp))
	zeros := 0
	for _, b := range ebsp {
		if zeros >= 2 && b == emulationPreventionByte {
			zeros = 0
			continue
		}
		out = append(out, b)
		if b == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return out
}
