package media

// SetReaderObserver installs fn, called after a reader joins the stream (joined true: NewReader) or leaves
// it (joined false: Reader.Close, or Stream.Close detaching every reader), with the number of readers
// after the change. A producer uses it to run only while watched and to send a joining reader a keyframe
// at once (overlay.Annotator). fn is called without the stream's locks held and must not block; calls
// may overlap when readers come and go from several goroutines, so treat readers as a hint and read
// Stats().Readers for the current count. nil removes the observer.
func (s *Stream) SetReaderObserver(fn func(readers int, joined bool)) {
	s.mu.Lock()
	s.observer = fn
	s.mu.Unlock()
}

// notifyReadersLocked returns the call to make, once the stream lock is released, to tell the observer
// that a reader joined or left (nil when there is no observer).
func (s *Stream) notifyReadersLocked(joined bool) func() {
	fn := s.observer
	if fn == nil {
		return nil
	}
	n := len(s.readers)
	return func() { fn(n, joined) }
}
