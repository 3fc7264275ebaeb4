package filesource

import "sightline/media"

// SplitAccessUnits groups the NAL units of an Annex-B elementary stream (in decoding order) into access
// units, following H.264 7.4.1.2.3 and H.265 7.4.2.4.4: an access unit delimiter always opens a unit; a
// parameter set, SEI or other prefix NAL unit opens one when the current unit already holds a picture
// slice; and a slice opens one when it is the first of its picture (H.264 first_mb_in_slice == 0, H.265
// first_slice_segment_in_pic_flag). Units holding no slice (stray parameter sets at the end of a file)
// are dropped. The returned slices alias nalus.
func SplitAccessUnits(codec media.Codec, nalus [][]byte) [][][]byte {
	var aus [][][]byte
	var cur [][]byte
	hasVCL := false
	flush := func() {
		if hasVCL {
			aus = append(aus, cur)
		}
		cur, hasVCL = nil, false
	}
	for _, nalu := range nalus {
		kind := classify(codec, nalu)
		switch kind {
		case nalAUD:
			flush()
		case nalPrefix:
			if hasVCL {
				flush()
			}
		case nalFirstSlice:
			if hasVCL {
				flush()
			}
		case nalInvalid:
			continue
		}
		cur = append(cur, nalu)
		if kind == nalFirstSlice || kind == nalSlice {
			hasVCL = true
		}
	}
	flush()
	return aus
}

type nalKind int

const (
	nalInvalid    nalKind = iota
	nalAUD                // access unit delimiter
	nalPrefix             // parameter sets, prefix SEI and other NAL units that precede a picture's slices
	nalFirstSlice         // the first slice of a picture
	nalSlice              // a further slice of the same picture
	nalSuffix             // belongs to the current unit (suffix SEI, end of sequence/stream, filler...)
)

func classify(codec media.Codec, nalu []byte) nalKind {
	if codec == media.CodecH265 {
		if len(nalu) < 2 || nalu[0]&0x80 != 0 { // forbidden_zero_bit
			return nalInvalid
		}
		t := media.NALUType(codec, nalu)
		switch {
		case t <= 31: // VCL (H.265 Table 7-1)
			if len(nalu) < 3 {
				return nalInvalid
			}
			if nalu[2]&0x80 != 0 { // first_slice_segment_in_pic_flag
				return nalFirstSlice
			}
			return nalSlice
		case t == 35:
			return nalAUD
		case t >= 32 && t <= 34, t == 39, t >= 41 && t <= 44, t >= 48 && t <= 55:
			return nalPrefix
		default: // 36 EOS, 37 EOB, 38 FD, 40 suffix SEI, 45-47, 56-63
			return nalSuffix
		}
	}
	if len(nalu) < 1 || nalu[0]&0x80 != 0 {
		return nalInvalid
	}
	t := media.NALUType(codec, nalu)
	switch {
	case t >= 1 && t <= 5: // coded slices (H.264 Table 7-1)
		if len(nalu) < 2 {
			return nalInvalid
		}
		// first_mb_in_slice is ue(v), the first syntax element after the header: it is 0 exactly
		// when its first bit is 1.
		if nalu[1]&0x80 != 0 {
			return nalFirstSlice
		}
		return nalSlice
	case t == 9:
		return nalAUD
	case t == 6, t == 7, t == 8, t == 13, t == 14, t == 15, t >= 16 && t <= 18:
		return nalPrefix
	default: // 10 end of sequence, 11 end of stream, 12 filler, 19 auxiliary slice, 0/20+ others
		return nalSuffix
	}
}
