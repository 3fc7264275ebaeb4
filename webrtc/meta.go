package webrtc

import (
	"context"

	pwebrtc "github.com/pion/webrtc/v4"
)

// MetaChannel is the label of the data channel a viewer opens (in its offer) to receive the camera's
// analytics metadata and rule events with its video, raw or annotated.
const MetaChannel = "meta"

// metaMaxBuffered is how much may wait in a meta channel's send buffer; beyond it messages are dropped
// (a slow viewer never holds up the feed, and the next message is as good as the dropped one).
const metaMaxBuffered = 1 << 20

// MetaSubscriber is implemented by a StreamResolver whose cameras publish metadata. SubscribeMeta sends
// the camera's messages (one JSON text each) with send until ctx ends or the camera goes away; send's
// error ends it too. It must not block on anything but ctx.
type MetaSubscriber interface {
	SubscribeMeta(ctx context.Context, camera string, send func(msg []byte) error)
}

// serveMeta answers a viewer's "meta" data channel with the camera's feed for the session's lifetime.
func (s *Server) serveMeta(sess *session, pc *pwebrtc.PeerConnection) {
	ms, ok := s.streams.(MetaSubscriber)
	if !ok {
		return
	}
	pc.OnDataChannel(func(dc *pwebrtc.DataChannel) {
		if dc.Label() != MetaChannel {
			sess.log.Debug("ignoring data channel", "label", dc.Label())
			return
		}
		dc.OnOpen(func() {
			s.goTracked(func() {
				sess.log.Debug("meta data channel open")
				ms.SubscribeMeta(sess.ctx, sess.camera, func(b []byte) error {
					if dc.BufferedAmount() > metaMaxBuffered {
						return nil // dropped
					}
					return dc.SendText(string(b))
				})
			})
		})
	})
}
