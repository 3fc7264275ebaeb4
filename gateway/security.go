package gateway

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"sightline/auth"
)

// limitClass names which per-client rate limit a route counts against.
type limitClass int

const (
	limitNone limitClass = iota
	limitAPI             // REST API and /metrics
	limitWHEP            // new WHEP sessions and signaling sockets
)

// policy is what a route needs: a role (RoleNone = public), a rate limit, and whether it upgrades to a
// WebSocket (no per-request deadlines, an Origin check instead of CORS).
type policy struct {
	role  auth.Role
	limit limitClass
	ws    bool
}

// limiters keeps one token bucket per client IP and class, forgetting clients idle for limiterIdle.
type limiters struct {
	api, whep limitSpec

	mu      sync.Mutex
	clients map[limiterKey]*clientLimiter
	sweepAt time.Time
}

type limitSpec struct {
	rate  rate.Limit
	burst int
}

type limiterKey struct {
	ip    string
	class limitClass
}

type clientLimiter struct {
	lim  *rate.Limiter
	seen time.Time
}

const limiterIdle = 10 * time.Minute

func newLimiters(l LimitsConfig) *limiters {
	return &limiters{
		api:     limitSpec{rate.Limit(l.APIRate), l.APIBurst},
		whep:    limitSpec{rate.Limit(l.WHEPRate), l.WHEPBurst},
		clients: map[limiterKey]*clientLimiter{},
	}
}

// allow takes a token from ip's bucket for class.
func (l *limiters) allow(ip string, class limitClass, now time.Time) bool {
	spec := l.api
	if class == limitWHEP {
		spec = l.whep
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.After(l.sweepAt) {
		for k, c := range l.clients {
			if now.Sub(c.seen) > limiterIdle {
				delete(l.clients, k)
			}
		}
		l.sweepAt = now.Add(time.Minute)
	}
	k := limiterKey{ip, class}
	c := l.clients[k]
	if c == nil {
		c = &clientLimiter{lim: rate.NewLimiter(spec.rate, spec.burst)}
		l.clients[k] = c
	}
	c.seen = now
	return c.lim.AllowN(now, 1)
}

// proxies are the trusted reverse proxies (http.trustedProxies).
type proxies []netip.Prefix

// parseProxy parses an IP or CIDR.
func parseProxy(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func newProxies(list []string) proxies {
	var ps proxies
	for _, s := range list {
		if p, err := parseProxy(s); err == nil { // validated
			ps = append(ps, p)
		}
	}
	return ps
}

func (ps proxies) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientIP is the address a request counts as coming from: the peer, or, when the peer is a trusted
// proxy, the nearest X-Forwarded-For address that is not a trusted proxy itself (addresses further
// left were written by the client and prove nothing). Without trusted proxies the header is ignored:
// behind an untrusted proxy every client shares the proxy's bucket, which fails safe.
func (ps proxies) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if len(ps) == 0 || err != nil || !ps.trusted(peer) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return host // a malformed hop: do not guess past it
		}
		if !ps.trusted(a) {
			return a.Unmap().String()
		}
	}
	return host
}

// statusRecorder remembers the status a handler wrote, for logs and metrics. On a WebSocket upgrade
// it also selects the subprotocol the guard chose (the handlers' websocket.Accept offers none).
type statusRecorder struct {
	http.ResponseWriter
	status      int
	subprotocol string
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	if code == http.StatusSwitchingProtocols && s.subprotocol != "" {
		s.Header().Set("Sec-WebSocket-Protocol", s.subprotocol)
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (deadlines, WebSocket hijack).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// guard applies every route's policy before the mux runs it: rate limit, authentication and role,
// WebSocket Origin, request deadlines; then logs and counts the request. The log line names the route
// pattern and never the query string (which may carry ?token=) nor Sec-WebSocket-Protocol (which may
// carry sightline.token.<token>). WebSocket routes take the token from the Authorization header,
// ?token=, or the subprotocol sightline.token.<token> (auth.FromSubprotocol), in that order.
func (g *Gateway) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		_, pattern := g.mux.Handler(r)
		pol, known := g.policies[pattern]
		if !known && pattern != "" {
			pol = policy{role: auth.RoleAdmin} // fail closed on a route without a policy
		}
		rec := &statusRecorder{ResponseWriter: w}
		var subTok string
		if pol.ws {
			// Selected whether or not auth is on: a browser fails a socket whose answer selects none of
			// the subprotocols it offered.
			subTok, rec.subprotocol = auth.FromSubprotocol(r)
		}
		defer func() {
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			route := pattern
			if route == "" {
				route = "unmatched"
			}
			g.metrics.ObserveRequest(route, status, time.Since(start), pol.ws)
			g.log.Debug("http request", "method", r.Method, "route", route, "status", status,
				"remote", g.proxies.clientIP(r), "ms", time.Since(start).Milliseconds())
		}()
		if r.Method == http.MethodOptions {
			next.ServeHTTP(rec, r) // preflights carry no credentials and change nothing
			return
		}
		ip := g.proxies.clientIP(r)
		if pol.limit != limitNone && !g.limits.allow(ip, pol.limit, start) {
			name := map[limitClass]string{limitAPI: "api", limitWHEP: "whep"}[pol.limit]
			g.metrics.RateLimited(name)
			rec.Header().Set("Retry-After", "1")
			writeError(rec, http.StatusTooManyRequests, "rate_limited", "too many requests from this client; slow down ("+name+" limit)")
			return
		}
		if pol.role > auth.RoleNone && g.auth != nil {
			tok, src := auth.FromRequest(r)
			if src == "" && pol.ws {
				tok = subTok
			}
			role, err := g.auth.Authenticate(tok)
			if err != nil {
				g.metrics.AuthFailure("unauthorized")
				g.log.Info("request refused: not authenticated", "method", r.Method, "route", pattern, "remote", ip, "reason", err.Error())
				rec.Header().Set("WWW-Authenticate", `Bearer realm="sightline"`)
				msg := "authentication required: " + err.Error()
				if !errors.Is(err, auth.ErrNoToken) {
					msg = "invalid token: " + err.Error()
				}
				writeError(rec, http.StatusUnauthorized, "unauthorized", msg)
				return
			}
			if role < pol.role {
				g.metrics.AuthFailure("forbidden")
				g.log.Info("request refused: role too low", "method", r.Method, "route", pattern, "remote", ip, "role", role.String(), "needs", pol.role.String())
				writeError(rec, http.StatusForbidden, "forbidden", "this needs the "+pol.role.String()+" role; the token grants "+role.String())
				return
			}
		}
		if pol.ws {
			if origin := r.Header.Get("Origin"); origin != "" && !g.originAllowed(origin, r.Host) {
				writeError(rec, http.StatusForbidden, "origin_not_allowed", "WebSocket from origin "+quote(origin)+" is not in http.allowOrigins")
				return
			}
		} else {
			rc := http.NewResponseController(rec)
			deadline := start.Add(time.Duration(g.cfg.Limits.RequestTimeout))
			_ = rc.SetReadDeadline(deadline)
			_ = rc.SetWriteDeadline(deadline)
		}
		// limits.maxSessionsPerCamera is enforced by webrtc (Config.MaxSessionsPerCamera), atomically with
		// session setup.
		next.ServeHTTP(rec, r)
	})
}

// originAllowed reports whether a browser page from origin may open a WebSocket: the same host, or an
// origin in http.allowOrigins.
func (g *Gateway) originAllowed(origin, host string) bool {
	if slices.Contains(g.cfg.HTTP.AllowOrigins, "*") || slices.Contains(g.cfg.HTTP.AllowOrigins, origin) {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, host)
}
