package media

import (
	"testing"
	"time"
)

func TestStatusTracker(t *testing.T) {
	tr := NewStatusTracker(SourceStatus{Transport: "file"})
	st := tr.Status()
	if st.State != StateStarting || st.Transport != "file" || st.Since.IsZero() {
		t.Fatalf("initial %+v", st)
	}
	tr.SetState(StateStreaming)
	since := tr.Status().Since
	tr.SetState(StateStreaming) // no change: Since stays
	if tr.Status().Since != since {
		t.Fatal("Since moved without a state change")
	}
	now := time.Now()
	for i := 0; i < 26; i++ {
		tr.Wrote(1000, now.Add(time.Duration(i)*40*time.Millisecond))
	}
	st = tr.Status()
	if st.Frames != 26 || st.Bytes != 26000 || st.FPS < 24 || st.FPS > 26 {
		t.Fatalf("streaming %+v", st)
	}
	tr.ResetRates()
	tr.Update(func(s *SourceStatus) { s.LastError, s.RestartCount = "boom", 1 })
	tr.SetState(StateReconnecting)
	st = tr.Status()
	if st.Frames != 26 || st.FPS != 0 || st.LastError != "boom" || st.RestartCount != 1 || st.State != StateReconnecting {
		t.Fatalf("after reconnect %+v", st)
	}
}
