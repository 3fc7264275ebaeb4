// Package alerts owns rule events once they leave the analytics pipeline: their wire form, the hub that
// keeps the recent ones and fans them out (WebSocket subscribers, /api/v1/events), and the sinks that
// deliver them elsewhere (webhooks, MQTT, Kafka). Nothing here may ever block the pipeline that publishes
// an event.
package alerts

import (
	"slices"
	"strconv"
	"time"

	"sightline/analytics/rules"
)

// Event is one rule event as every consumer sees it (feeds, webhooks, the events API):
//
//	{"type":"event","id":"mh3k2x-17","camera":"street","rule":"walkway","kind":"enter","objectId":7,
//	 "cls":0,"label":"person","pts":40120.0,"rtp":3610800,"capturedAt":"2026-11-22T03:15:04.120Z",
//	 "count":2,"snapshot":"/api/v1/events/mh3k2x-17/snapshot.jpg"}
//
// pts is in milliseconds like media.Meta's, and rtp is the RTP timestamp of the frame that raised it, so
// an event can be placed on the video as the viewer receives it.
type Event struct {
	// Type is always "event" (feeds mix events with other messages).
	Type string `json:"type"`
	// ID is unique in this server's run (a run prefix and a sequence number).
	ID     string `json:"id"`
	Camera string `json:"camera"`
	Rule   string `json:"rule"`
	// Kind is enter, exit, cross, dwell or count; Direction (a_to_b, b_to_a) is set for cross.
	Kind      string `json:"kind"`
	Direction string `json:"direction,omitempty"`
	// ObjectID is the track id (absent for count events); Class/Label its class.
	ObjectID int64  `json:"objectId,omitempty"`
	Class    int    `json:"cls"`
	Label    string `json:"label,omitempty"`
	// PTS (ms) and RTP identify the frame; CapturedAt is its capture wall-clock (camera NTP when the
	// camera sends RTCP sender reports, else when Sightline received it).
	PTS        float64   `json:"pts"`
	RTP        uint32    `json:"rtp"`
	CapturedAt time.Time `json:"capturedAt"`
	// Count is the zone's occupancy after an enter/exit, or the count of a count event.
	Count int `json:"count,omitempty"`
	// Snapshot is the URL of the annotated JPEG of the event's frame; empty when no snapshot is kept.
	Snapshot string `json:"snapshot,omitempty"`
}

// FromRule converts a rule event of the frame with RTP timestamp rtp.
func FromRule(e rules.Event, rtp uint32) Event {
	return Event{Type: "event", Camera: e.Camera, Rule: e.Rule, Kind: e.Kind, Direction: e.Direction,
		ObjectID: e.ObjectID, Class: e.Class, Label: e.Label, PTS: float64(e.PTS.Microseconds()) / 1000,
		RTP: rtp, CapturedAt: e.At, Count: e.Count}
}

// Filter selects events; an empty list matches everything. Classes match a label (person) or a class
// number (0).
type Filter struct {
	Cameras []string `yaml:"cameras" json:"cameras,omitempty"`
	Rules   []string `yaml:"rules" json:"rules,omitempty"`
	Classes []string `yaml:"classes" json:"classes,omitempty"`
}

// Match reports whether e passes the filter.
func (f Filter) Match(e Event) bool {
	if len(f.Cameras) > 0 && !slices.Contains(f.Cameras, e.Camera) {
		return false
	}
	if len(f.Rules) > 0 && !slices.Contains(f.Rules, e.Rule) {
		return false
	}
	if len(f.Classes) > 0 && !slices.Contains(f.Classes, e.Label) && !slices.Contains(f.Classes, strconv.Itoa(e.Class)) {
		return false
	}
	return true
}
