package track

// kalman is a constant-velocity Kalman filter over a box's centre and size (cx, cy, w, h), in frame-
// normalized units and seconds. Its matrices are block-diagonal (each coordinate with its own velocity),
// as in ByteTrack/SORT, so it is kept as four independent 2-state filters: the same estimate as the 8x8
// form, without 8x8 algebra.
type kalman struct {
	x [4][2]float64 // per coordinate: position, velocity
	p [4][3]float64 // per coordinate: covariance [pp, pv, vv]
}

// Noise, relative to the box height (as ByteTrack weights its noise by height).
const (
	measStd  = 0.05 // measurement: 5% of the height
	accelStd = 1.0  // process: white acceleration of one height per s², per second
	velStd0  = 1.0  // initial velocity uncertainty: one height per second
)

func newKalman(z [4]float64) kalman {
	var k kalman
	h := max(z[3], 1e-3)
	for i := range z {
		k.x[i] = [2]float64{z[i], 0}
		k.p[i] = [3]float64{sq(2 * measStd * h), 0, sq(velStd0 * h)}
	}
	return k
}

func sq(v float64) float64 { return v * v }

// predict advances the state by dt seconds.
func (k *kalman) predict(dt float64) {
	if dt <= 0 {
		return
	}
	qa := sq(accelStd * max(k.x[3][0], 1e-3))
	for i := range k.x {
		x, p := &k.x[i], &k.p[i]
		x[0] += x[1] * dt
		a, b, c := p[0], p[1], p[2]
		p[0] = a + 2*dt*b + dt*dt*c + qa*dt*dt*dt/3
		p[1] = b + dt*c + qa*dt*dt/2
		p[2] = c + qa*dt
	}
	if k.x[2][0] < 1e-4 { // a shrinking box never turns inside out
		k.x[2][0], k.x[2][1] = 1e-4, 0
	}
	if k.x[3][0] < 1e-4 {
		k.x[3][0], k.x[3][1] = 1e-4, 0
	}
}

// update corrects the state with a measured box.
func (k *kalman) update(z [4]float64) {
	r := sq(measStd * max(z[3], 1e-3))
	for i := range k.x {
		x, p := &k.x[i], &k.p[i]
		a, b, c := p[0], p[1], p[2]
		s := a + r
		k0, k1 := a/s, b/s
		y := z[i] - x[0]
		x[0] += k0 * y
		x[1] += k1 * y
		p[0] = (1 - k0) * a
		p[1] = (1 - k0) * b
		p[2] = c - k1*b
	}
}

// at returns the state predicted dt seconds ahead without changing it.
func (k *kalman) at(dt float64) [4]float64 {
	var z [4]float64
	for i := range z {
		z[i] = k.x[i][0] + k.x[i][1]*max(dt, 0)
	}
	z[2], z[3] = max(z[2], 1e-4), max(z[3], 1e-4)
	return z
}
