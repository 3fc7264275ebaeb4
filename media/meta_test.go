package media

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestMetaJSONRoundTrip(t *testing.T) {
	m := Meta{
		Camera:     "street",
		RTPTime:    4294967295,
		PTS:        1234567 * time.Microsecond,
		CapturedAt: time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC),
		Inference:  21300 * time.Microsecond,
		Objects: []Object{
			{ID: 7, Class: 0, Label: "person", Score: 0.91, Box: [4]float32{0.1, 0.2, 0.05, 0.3}},
			{ID: 0, Class: 27, Label: "tie", Score: 0.49, Box: [4]float32{0.5, 0.5, 0.01, 0.1}},
		},
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{`"camera":"street"`, `"rtp":4294967295`, `"pts":1234.567`, `"capturedAt":"2025-01-02T03:04:05.000006Z"`,
		`"inferenceMs":21.3`, `"objects":[{"id":7,"cls":0,"label":"person","score":0.91,"box":[0.1,0.2,0.05,0.3]}`} {
		if !strings.Contains(s, want) {
			t.Errorf("JSON %s lacks %s", s, want)
		}
	}
	var back Meta
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, m) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", back, m)
	}
}

func TestMetaJSONEmptyObjects(t *testing.T) {
	b, err := json.Marshal(Meta{Camera: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"objects":[]`) {
		t.Fatalf("nil objects must marshal as []: %s", b)
	}
	var m Meta
	if err := json.Unmarshal([]byte(`{"camera":"c"}`), &m); err != nil {
		t.Fatal(err)
	}
	if m.Objects == nil || len(m.Objects) != 0 {
		t.Fatalf("objects = %#v, want empty non-nil", m.Objects)
	}
	if err := json.Unmarshal([]byte(`{"camera":1}`), &m); err == nil {
		t.Fatal("wrong type accepted")
	}
}
