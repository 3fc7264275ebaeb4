package media

// NAL unit helpers shared by every package that touches H.264/H.265 bitstreams. They read only NAL
// headers (H.264 7.3.1, H.265 7.3.1.2); they never parse slice data.

type paramSet int

const (
	paramNone paramSet = iota
	paramVPS
	paramSPS
	paramPPS
)

// H.264 NAL unit types used here (H.264 Table 7-1).
const (
	h264NALSlice = 1
	h264NALIDR   = 5
	h264NALSEI   = 6
	h264NALSPS   = 7
	h264NALPPS   = 8
	h264NALAUD   = 9
)

// H.265 NAL unit types used here (H.265 Table 7-1).
const (
	h265NALBLAWLP   = 16
	h265NALRSVIRAP  = 23
	h265NALVPS      = 32
	h265NALSPS      = 33
	h265NALPPS      = 34
	h265NALAUD      = 35
	h265NALPrefixSE = 39
)

// NALUType returns the NAL unit type of nalu for codec, or -1 for an empty NAL unit (or an H.265 one
// shorter than its two-byte header).
func NALUType(codec Codec, nalu []byte) int {
	if codec == CodecH265 {
		if len(nalu) < 2 {
			return -1
		}
		return int(nalu[0]>>1) & 0x3f
	}
	if len(nalu) < 1 {
		return -1
	}
	return int(nalu[0] & 0x1f)
}

func paramSetKind(codec Codec, nalu []byte) paramSet {
	t := NALUType(codec, nalu)
	if codec == CodecH265 {
		switch t {
		case h265NALVPS:
			return paramVPS
		case h265NALSPS:
			return paramSPS
		case h265NALPPS:
			return paramPPS
		}
		return paramNone
	}
	switch t {
	case h264NALSPS:
		return paramSPS
	case h264NALPPS:
		return paramPPS
	}
	return paramNone
}

func isAUD(codec Codec, nalu []byte) bool {
	if codec == CodecH265 {
		return NALUType(codec, nalu) == h265NALAUD
	}
	return NALUType(codec, nalu) == h264NALAUD
}

// IsKeyframe reports whether the NAL units of one access unit form a random access point: an IDR slice
// for H.264, an IRAP picture (BLA/IDR/CRA) for H.265.
func IsKeyframe(codec Codec, nalus [][]byte) bool {
	for _, nalu := range nalus {
		t := NALUType(codec, nalu)
		if codec == CodecH265 {
			if t >= h265NALBLAWLP && t <= h265NALRSVIRAP {
				return true
			}
			continue
		}
		if t == h264NALIDR {
			return true
		}
	}
	return false
}

// SplitAnnexB splits an Annex-B byte stream (NAL units separated by 00 00 01 or 00 00 00 01 start
// codes) into NAL units, without start codes. Bytes before the first start code are ignored. The returned
// slices alias buf. Trailing zero bytes of a NAL unit (trailing_zero_8bits) are removed.
func SplitAnnexB(buf []byte) [][]byte {
	var nalus [][]byte
	start := -1 // index of the first byte of the current NAL unit
	zeros := 0
	for i := 0; i < len(buf); i++ {
		b := buf[i]
		if b == 0 {
			zeros++
			continue
		}
		if b == 1 && zeros >= 2 {
			if start >= 0 {
				if nalu := trimTrailingZeros(buf[start : i-zeros]); len(nalu) > 0 {
					nalus = append(nalus, nalu)
				}
			}
			start = i + 1
		}
		zeros = 0
	}
	if start >= 0 && start < len(buf) {
		if nalu := trimTrailingZeros(buf[start:]); len(nalu) > 0 {
			nalus = append(nalus, nalu)
		}
	}
	return nalus
}

func trimTrailingZeros(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}

// JoinAnnexB writes nalus as an Annex-B byte stream with four-byte start codes.
func JoinAnnexB(nalus [][]byte) []byte {
	n := 0
	for _, nalu := range nalus {
		n += 4 + len(nalu)
	}
	out := make([]byte, 0, n)
	for _, nalu := range nalus {
		out = append(out, 0, 0, 0, 1)
		out = append(out, nalu...)
	}
	return out
}
