package media

// GOP cache: a stream can keep the access units since its last keyframe, so that a reader that must show
// a picture at once (an annotated track's first frame, a snapshot) starts decoding at that keyframe
// instead of waiting up to a whole GOP for the next one. Live viewers do not use it: they would have to
// play the backlog late.

// GOP cache bounds: past them (a camera with very long GOPs or huge frames) the cache empties until the
// next keyframe, and a GOP reader starts at the next keyframe like any other.
const (
	maxGOPFrames = 600
	maxGOPBytes  = 32 << 20
)

type gopCache struct {
	on    bool
	valid bool // aus hold a whole chain from a keyframe
	aus   []*AccessUnit
	bytes int
}

// add remembers au (already given its in-band parameters) when the cache is on. Called with the stream
// lock held.
func (g *gopCache) add(au *AccessUnit) {
	if !g.on {
		return
	}
	if au.Keyframe {
		g.reset()
		g.valid = true
	}
	if !g.valid {
		return
	}
	g.aus = append(g.aus, au)
	g.bytes += au.Size()
	if len(g.aus) > maxGOPFrames || g.bytes > maxGOPBytes {
		g.reset()
	}
}

func (g *gopCache) reset() {
	clear(g.aus)
	g.aus, g.bytes, g.valid = g.aus[:0], 0, false
}

// KeepGOP makes the stream remember the access units since its last keyframe (shared, not copied) for
// NewReaderFromGOP. It costs one GOP of memory per stream.
func (s *Stream) KeepGOP() {
	s.mu.Lock()
	s.gop.on = true
	s.mu.Unlock()
}

// NewReaderFromGOP is NewReader, except that the reader first gets the access units since the stream's
// last keyframe (when KeepGOP is on and a GOP is held), followed by the live ones: it can decode a
// current picture at once. Its queue holds queueLen access units beyond that backlog.
func (s *Stream) NewReaderFromGOP(queueLen int) *Reader {
	return s.newReader(queueLen, true)
}
