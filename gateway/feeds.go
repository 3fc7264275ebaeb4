package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"sightline/alerts"
	"sightline/webrtc"
)

// feedQueue is how many messages may wait for a slow feed subscriber before the oldest are dropped
// (the pipeline never waits for a subscriber).
const feedQueue = 64

// feedWriteTimeout bounds one message's write: a subscriber that stops reading is disconnected.
const feedWriteTimeout = 5 * time.Second

// acceptFeed upgrades a feed request. The guard has already authenticated it (?token=) and checked its
// Origin against http.allowOrigins, so the library's own same-origin check is not repeated here.
func acceptFeed(w http.ResponseWriter, r *http.Request) (*websocket.Conn, context.Context, bool) {
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return nil, nil, false // Accept wrote the HTTP error (426 for a plain GET)
	}
	// Clients only listen; CloseRead answers pings and ends ctx when the client goes away.
	return conn, conn.CloseRead(r.Context()), true
}

// feedWrite sends one JSON message; false when the subscriber is gone or too slow.
func feedWrite(ctx context.Context, conn *websocket.Conn, v any) bool {
	b, err := json.Marshal(v)
	if err != nil {
		return false
	}
	wctx, cancel := context.WithTimeout(ctx, feedWriteTimeout)
	defer cancel()
	return conn.Write(wctx, websocket.MessageText, b) == nil
}

// wsMeta serves GET /ws/meta?camera=: one JSON message per analysed frame of the camera (media.Meta:
// {camera, rtp, pts, capturedAt, inferenceMs, objects}) and {"type":"event",...} for its rule events.
func (g *Gateway) wsMeta(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("camera")
	if id == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "camera query parameter required (/ws/meta?camera=ID)")
		return
	}
	cam, ok := g.cameras.get(id)
	if !ok {
		writeError(w, http.StatusNotFound, "unknown_camera", "no camera with id "+quote(id))
		return
	}
	conn, ctx, ok := acceptFeed(w, r)
	if !ok {
		return
	}
	defer conn.CloseNow()
	g.metaFeed(ctx, id, cam, func(b []byte) error {
		wctx, cancel := context.WithTimeout(ctx, feedWriteTimeout)
		defer cancel()
		return conn.Write(wctx, websocket.MessageText, b)
	})
	if ctx.Err() == nil { // the camera was deleted or the gateway is closing
		_ = conn.Close(websocket.StatusGoingAway, "camera closed")
	}
}

// SubscribeMeta implements webrtc.MetaSubscriber: a WebRTC session's "meta" data channel carries the
// same messages as /ws/meta.
func (g *Gateway) SubscribeMeta(ctx context.Context, camera string, send func([]byte) error) {
	if cam, ok := g.cameras.get(camera); ok {
		g.metaFeed(ctx, camera, cam, send)
	}
}

// metaFeed sends cam's Meta per analysed frame and its rule events ({"type":"event",...}) until ctx
// ends, the camera goes away or send fails. Messages wait in drop-oldest queues, never in the pipeline.
func (g *Gateway) metaFeed(ctx context.Context, id string, cam *camera, send func([]byte) error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex // one send at a time
	write := func(v any) bool {
		b, err := json.Marshal(v)
		if err != nil {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		return send(b) == nil
	}
	done := make(chan struct{})
	if g.analytics != nil {
		events := g.analytics.hub.Subscribe(feedQueue)
		go func() {
			defer close(done)
			defer events.Close()
			for {
				ev, err := events.Read(ctx)
				if err != nil {
					return
				}
				if ev.Camera == id && !write(ev) {
					cancel()
					return
				}
			}
		}()
	} else {
		close(done)
	}
	defer func() { <-done }()
	defer cancel()
	metas := cam.meta.NewReader(feedQueue)
	defer metas.Close()
	for {
		m, err := metas.Read(ctx)
		if err != nil || !write(m) {
			return
		}
	}
}

// wsAlerts serves GET /ws/alerts?camera=&rule=&class=: every rule event that matches the filters (each
// optional; class is a label such as person or a class number), as {"type":"event",...}.
func (g *Gateway) wsAlerts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	camera, rule, class := q.Get("camera"), q.Get("rule"), q.Get("class")
	if camera != "" {
		if _, ok := g.cameras.get(camera); !ok {
			writeError(w, http.StatusNotFound, "unknown_camera", "no camera with id "+quote(camera))
			return
		}
	}
	if g.analytics == nil {
		writeError(w, http.StatusConflict, "analytics_off", "analytics is off (no analytics section): there are no events")
		return
	}
	conn, ctx, ok := acceptFeed(w, r)
	if !ok {
		return
	}
	defer conn.CloseNow()
	filter := queryFilter(camera, rule, class)
	events := g.analytics.hub.Subscribe(feedQueue)
	defer events.Close()
	for {
		ev, err := events.Read(ctx)
		if err != nil {
			if ctx.Err() == nil {
				_ = conn.Close(websocket.StatusGoingAway, "server closing")
			}
			return
		}
		if !filter.Match(ev) {
			continue
		}
		if !feedWrite(ctx, conn, ev) {
			return
		}
	}
}

// queryFilter is the filter of ?camera=&rule=&class= (each optional).
func queryFilter(camera, rule, class string) alerts.Filter {
	var f alerts.Filter
	if camera != "" {
		f.Cameras = []string{camera}
	}
	if rule != "" {
		f.Rules = []string{rule}
	}
	if class != "" {
		f.Classes = []string{class}
	}
	return f
}

// The gateway feeds every WebRTC session's "meta" data channel.
var _ webrtc.MetaSubscriber = (*Gateway)(nil)
