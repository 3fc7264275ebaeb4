package webrtc

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	pwebrtc "github.com/pion/webrtc/v4"
)

// metaResolver is a fakeResolver whose cameras publish a message every 20 ms on the meta channel.
type metaResolver struct {
	*fakeResolver
	active atomic.Int32
}

func (r *metaResolver) SubscribeMeta(ctx context.Context, camera string, send func([]byte) error) {
	r.active.Add(1)
	defer r.active.Add(-1)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := send([]byte(fmt.Sprintf(`{"camera":%q,"n":%d}`, camera, n))); err != nil {
				return
			}
		}
	}
}

// A viewer that opens a "meta" data channel in its WHEP offer receives the camera's feed on it while the
// session lasts; the feed ends with the session. Other labels get nothing.
func TestMetaDataChannel(t *testing.T) {
	checkGoroutines(t)
	env := newTestEnv(t, Config{}, "cam")
	res := &metaResolver{fakeResolver: env.resolver}
	env.srv.streams = res

	v := newViewer(t, false)
	defer v.close()
	dc, err := v.pc.CreateDataChannel(MetaChannel, nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := v.pc.CreateDataChannel("other", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 100)
	dc.OnMessage(func(m pwebrtc.DataChannelMessage) {
		select {
		case got <- string(m.Data):
		default:
		}
	})
	var otherMsgs atomic.Int32
	other.OnMessage(func(pwebrtc.DataChannelMessage) { otherMsgs.Add(1) })
	v.whepConnect(t, env, "cam")
	for i := 0; i < 3; i++ {
		select {
		case m := <-got:
			if !strings.HasPrefix(m, `{"camera":"cam"`) {
				t.Fatalf("meta message %q", m)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no message on the meta data channel")
		}
	}
	if otherMsgs.Load() != 0 {
		t.Fatal("a channel with another label got messages")
	}
	if code := v.delete(t, env); code != 204 {
		t.Fatalf("DELETE: %d", code)
	}
	waitFor(t, 5*time.Second, "the feed to end with the session", func() bool { return res.active.Load() == 0 })
}
