package webrtc

import (
	"errors"
	"fmt"
	"strings"
)

// trickleFrag is a parsed RFC 8840 SDP fragment (application/trickle-ice-sdpfrag), as WHEP players send
// in PATCH (RFC 9725 §4.3.1).
type trickleFrag struct {
	Ufrag, Pwd      string
	Candidates      []fragCandidate
	EndOfCandidates bool
}

type fragCandidate struct {
	Mid        string
	MLineIndex uint16
	Candidate  string // the attribute value, "candidate:..."
}

const maxFragCandidates = 256

// parseTrickleFrag parses an SDP fragment (RFC 8840 §9): optional a=ice-ufrag/ice-pwd/ice-options and
// a=group lines, then m= sections with a=mid, a=candidate and a=end-of-candidates. Other a= lines are
// ignored; a line that is not "<letter>=<value>" is an error.
func parseTrickleFrag(body string) (*trickleFrag, error) {
	f := &trickleFrag{}
	mline := -1
	mid := ""
	for n, line := range strings.Split(body, "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" {
			continue
		}
		if len(line) < 2 || line[1] != '=' || line[0] < 'a' || line[0] > 'z' {
			return nil, fmt.Errorf("line %d: not an SDP line: %.40q", n+1, line)
		}
		switch line[0] {
		case 'm':
			mline++
			mid = ""
			continue
		case 'a':
		default:
			continue // c=, o=, ... carry nothing for trickle
		}
		key, value, _ := strings.Cut(line[2:], ":")
		switch key {
		case "ice-ufrag":
			if value == "" {
				return nil, fmt.Errorf("line %d: empty ice-ufrag", n+1)
			}
			if f.Ufrag != "" && f.Ufrag != value {
				return nil, fmt.Errorf("line %d: conflicting ice-ufrag", n+1)
			}
			f.Ufrag = value
		case "ice-pwd":
			f.Pwd = value
		case "mid":
			mid = value
		case "candidate":
			if strings.TrimSpace(value) == "" {
				return nil, fmt.Errorf("line %d: empty candidate", n+1)
			}
			if len(strings.Fields(value)) < 8 {
				return nil, fmt.Errorf("line %d: candidate has too few fields (RFC 8839 §5.1)", n+1)
			}
			if len(f.Candidates) >= maxFragCandidates {
				return nil, fmt.Errorf("more than %d candidates", maxFragCandidates)
			}
			idx := mline
			if idx < 0 {
				idx = 0
			}
			if idx > 0xffff {
				return nil, errors.New("too many m= sections")
			}
			f.Candidates = append(f.Candidates, fragCandidate{Mid: mid, MLineIndex: uint16(idx), Candidate: "candidate:" + value})
		case "end-of-candidates":
			f.EndOfCandidates = true
		}
	}
	return f, nil
}
