package media

import (
	"encoding/json"
	"time"
)

// Meta describes what analytics found in one frame of a camera. It is a plain value: it crosses process
// boundaries (data channel, WebSocket, a broker between ingest and inference workers) as JSON:
//
//	{"camera":"street","rtp":123,"pts":40.0,"capturedAt":"2006-01-02T15:04:05.000Z","inferenceMs":21.3,
//	 "objects":[{"id":7,"cls":0,"label":"person","score":0.91,"box":[0.1,0.2,0.05,0.3]}]}
//
// pts is in milliseconds; box is [x, y, w, h] normalized to the frame (0..1, top-left origin).
type Meta struct {
	// Camera is the id of the camera the frame came from.
	Camera string
	// RTPTime is the 90 kHz RTP timestamp of the frame (AccessUnit.RTPTime).
	RTPTime uint32
	// PTS is the presentation time of the frame (AccessUnit.PTS).
	PTS time.Duration
	// CapturedAt is the capture wall-clock of the frame (AccessUnit.NTP, else AccessUnit.Received).
	CapturedAt time.Time
	// Inference is how long the detector took on this frame.
	Inference time.Duration
	// Objects found in the frame; never nil after UnmarshalJSON.
	Objects []Object
}

// Object is one detected (and, when tracked, identified) object.
type Object struct {
	// ID is the track id, stable per camera; 0 when the object is not tracked.
	ID int64 `json:"id"`
	// Class is the class index in the model's class list.
	Class int `json:"cls"`
	// Label is the class name ("person").
	Label string `json:"label"`
	// Score is the detection confidence, 0..1.
	Score float32 `json:"score"`
	// Box is [x, y, w, h] normalized to the frame: x, y of the top-left corner, all in 0..1.
	Box [4]float32 `json:"box"`
}

type metaJSON struct {
	Camera      string    `json:"camera"`
	RTP         uint32    `json:"rtp"`
	PTS         float64   `json:"pts"`
	CapturedAt  time.Time `json:"capturedAt"`
	InferenceMs float64   `json:"inferenceMs"`
	Objects     []Object  `json:"objects"`
}

// MarshalJSON writes the camelCase wire form (pts and inferenceMs in milliseconds, objects never null).
func (m Meta) MarshalJSON() ([]byte, error) {
	objs := m.Objects
	if objs == nil {
		objs = []Object{}
	}
	return json.Marshal(metaJSON{
		Camera:      m.Camera,
		RTP:         m.RTPTime,
		PTS:         durationMs(m.PTS),
		CapturedAt:  m.CapturedAt,
		InferenceMs: durationMs(m.Inference),
		Objects:     objs,
	})
}

// UnmarshalJSON reads the wire form MarshalJSON writes (durations rounded to the microsecond).
func (m *Meta) UnmarshalJSON(b []byte) error {
	var j metaJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	if j.Objects == nil {
		j.Objects = []Object{}
	}
	*m = Meta{
		Camera:     j.Camera,
		RTPTime:    j.RTP,
		PTS:        msDuration(j.PTS),
		CapturedAt: j.CapturedAt,
		Inference:  msDuration(j.InferenceMs),
		Objects:    j.Objects,
	}
	return nil
}

func durationMs(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func msDuration(ms float64) time.Duration {
	us := ms * 1000
	if us >= 0 {
		us += 0.5
	} else {
		us -= 0.5
	}
	return time.Duration(int64(us)) * time.Microsecond
}
