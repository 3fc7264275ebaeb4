package webrtc

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"

	"sightline/media"
)

// offerInfo is what the server needs from an offer before handing it to pion.
type offerInfo struct {
	parsed *sdp.SessionDescription
	ufrag  string // remote ICE ufrag (media-level of the first m-line, else session-level)
}

// apiError is an error with its HTTP status and machine-readable code.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func errf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

// parseSDPOffer parses an offer (WHEP or WHIP) that must have at least one media section.
func parseSDPOffer(body string) (*sdp.SessionDescription, *apiError) {
	if strings.TrimSpace(body) == "" {
		return nil, errf(400, "malformed_sdp", "empty SDP offer")
	}
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(body); err != nil {
		return nil, errf(400, "malformed_sdp", "parse SDP offer: %v", err)
	}
	if len(sd.MediaDescriptions) == 0 {
		return nil, errf(400, "malformed_sdp", "SDP offer has no media sections")
	}
	return &sd, nil
}

// iceUfrag is the offer's ICE ufrag: its first m-line's, else the session-level one.
func iceUfrag(sd *sdp.SessionDescription) string {
	if u, ok := sd.MediaDescriptions[0].Attribute("ice-ufrag"); ok {
		return u
	}
	u, _ := sd.Attribute("ice-ufrag")
	return u
}

// parseOffer parses and checks an SDP offer: it must parse, carry at least one video m-line that can
// receive, and offer codec (H.264 with packetization-mode=1, or H.265) on it.
func parseOffer(body string, codec media.Codec) (*offerInfo, *apiError) {
	sd, e := parseSDPOffer(body)
	if e != nil {
		return nil, e
	}
	info := &offerInfo{parsed: sd, ufrag: iceUfrag(sd)}
	videoSeen, receivable, codecOK := false, false, false
	var offered []string
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Media != "video" || md.MediaName.Port.Value == 0 {
			continue
		}
		videoSeen = true
		if _, ok := md.Attribute("sendonly"); ok {
			continue
		}
		if _, ok := md.Attribute("inactive"); ok {
			continue
		}
		receivable = true
		for _, c := range mediaCodecs(md) {
			offered = append(offered, c.Name)
			if codecMatches(codec, c) {
				codecOK = true
			}
		}
	}
	if !videoSeen {
		return nil, errf(406, "no_video", "SDP offer has no active video m-line; this endpoint only sends video")
	}
	if !receivable {
		return nil, errf(406, "no_video", "SDP offer's video m-lines are sendonly or inactive; the viewer must be able to receive")
	}
	if !codecOK {
		want := "H264 (packetization-mode=1)"
		if codec == media.CodecH265 {
			want = "H265"
		}
		return nil, errf(406, "unsupported_codec", "the camera sends %s but the offer's video codecs are [%s]",
			want, strings.Join(dedupe(offered), " "))
	}
	return info, nil
}

// mediaCodecs returns the codecs of one m-line from its a=rtpmap and a=fmtp lines (per m-line, since
// payload type numbers of different m-lines may collide).
func mediaCodecs(md *sdp.MediaDescription) []sdp.Codec {
	byPT := map[string]*sdp.Codec{}
	var order []string
	for _, f := range md.MediaName.Formats {
		if _, ok := byPT[f]; !ok {
			byPT[f] = &sdp.Codec{}
			order = append(order, f)
		}
	}
	for _, a := range md.Attributes {
		pt, rest, ok := strings.Cut(a.Value, " ")
		c := byPT[pt]
		if !ok || c == nil {
			continue
		}
		switch a.Key {
		case "rtpmap": // <encoding name>/<clock rate>[/<encoding parameters>]
			parts := strings.Split(strings.TrimSpace(rest), "/")
			c.Name = parts[0]
			if len(parts) > 1 {
				if n, err := strconv.ParseUint(parts[1], 10, 32); err == nil {
					c.ClockRate = uint32(n)
				}
			}
		case "fmtp":
			c.Fmtp = strings.TrimSpace(rest)
		}
	}
	out := make([]sdp.Codec, 0, len(order))
	for _, f := range order {
		if c := byPT[f]; c.Name != "" {
			out = append(out, *c)
		}
	}
	return out
}

func codecMatches(codec media.Codec, c sdp.Codec) bool {
	if c.ClockRate != media.VideoClockRate {
		return false
	}
	if codec == media.CodecH265 {
		return strings.EqualFold(c.Name, "H265")
	}
	if !strings.EqualFold(c.Name, "H264") {
		return false
	}
	return strings.Contains(strings.ReplaceAll(c.Fmtp, " ", ""), "packetization-mode=1")
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// stripNonLoopbackCandidates removes every a=candidate whose address is not 127/8 or ::1 (LoopbackOnly,
// BROWSER.md §3) and reports how many were removed.
func stripNonLoopbackCandidates(sd *sdp.SessionDescription) int {
	removed := 0
	filter := func(attrs []sdp.Attribute) []sdp.Attribute {
		out := attrs[:0]
		for _, a := range attrs {
			if a.Key == "candidate" && !candidateIsLoopback(a.Value) {
				removed++
				continue
			}
			out = append(out, a)
		}
		return out
	}
	sd.Attributes = filter(sd.Attributes)
	for _, md := range sd.MediaDescriptions {
		md.Attributes = filter(md.Attributes)
	}
	return removed
}

// candidatesOnBundleTag moves the ICE candidates of an answer whose first m-line is rejected (port 0:
// an audio m-line offered first, answered rejected) onto the first m-line that is not. pion writes its
// candidates under the first m-line only, and a rejected m-line is outside the BUNDLE group, so a browser
// drops candidates found there and can connect only through peer-reflexive discovery. Anything it cannot
// parse is returned as it is.
func candidatesOnBundleTag(answer string) string {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(answer); err != nil || len(sd.MediaDescriptions) < 2 {
		return answer
	}
	first := sd.MediaDescriptions[0]
	if first.MediaName.Port.Value != 0 {
		return answer
	}
	var tag *sdp.MediaDescription
	for _, md := range sd.MediaDescriptions[1:] {
		if md.MediaName.Port.Value != 0 {
			tag = md
			break
		}
	}
	if tag == nil {
		return answer
	}
	kept := first.Attributes[:0]
	moved := 0
	for _, a := range first.Attributes {
		if a.Key == "candidate" || a.Key == "end-of-candidates" {
			if a.Key == "candidate" || !hasAttr(tag, "end-of-candidates") {
				tag.Attributes = append(tag.Attributes, a)
			}
			moved++
			continue
		}
		kept = append(kept, a)
	}
	if moved == 0 {
		return answer
	}
	first.Attributes = kept
	out, err := sd.Marshal()
	if err != nil {
		return answer
	}
	return string(out)
}

func hasAttr(md *sdp.MediaDescription, key string) bool {
	_, ok := md.Attribute(key)
	return ok
}

// candidateIsLoopback reports whether an ICE candidate attribute value ("candidate:" prefix optional)
// names a loopback address (RFC 8839 §5.1: foundation component transport priority address port ...).
func candidateIsLoopback(cand string) bool {
	fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(cand), "candidate:"))
	if len(fields) < 5 {
		return false
	}
	ip := net.ParseIP(fields[4])
	return ip != nil && ip.IsLoopback()
}

// sdpUfrag returns the ICE ufrag of a (local) SDP.
func sdpUfrag(s string) string {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(s); err != nil {
		return ""
	}
	for _, md := range sd.MediaDescriptions {
		if u, ok := md.Attribute("ice-ufrag"); ok {
			return u
		}
	}
	u, _ := sd.Attribute("ice-ufrag")
	return u
}
