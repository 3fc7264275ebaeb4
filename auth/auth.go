// Package auth owns who may call Sightline: roles, static bearer tokens, JWT verification (HS256,
// RS256, ES256) and reading a token from an HTTP request. It decides identity and role only; which
// route needs which role is the gateway's business. It must never log or return a token.
package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Role is what a caller may do; a higher role may do everything a lower one may.
type Role int

// Roles, lowest first. RoleNone is an anonymous caller.
const (
	RoleNone Role = iota
	RoleViewer
	RoleOperator
	RoleAdmin
)

func (r Role) String() string {
	switch r {
	case RoleViewer:
		return "viewer"
	case RoleOperator:
		return "operator"
	case RoleAdmin:
		return "admin"
	}
	return "none"
}

// ParseRole reads "viewer", "operator" or "admin".
func ParseRole(s string) (Role, error) {
	switch s {
	case "viewer":
		return RoleViewer, nil
	case "operator":
		return RoleOperator, nil
	case "admin":
		return RoleAdmin, nil
	}
	return RoleNone, fmt.Errorf("%q is not one of viewer, operator, admin", s)
}

// Errors Authenticate returns. Their text never contains the token.
var (
	ErrNoToken   = errors.New("no token (send Authorization: Bearer <token>; on WebSockets ?token= or the subprotocol sightline.token.<token>)")
	ErrBadToken  = errors.New("token not recognised")
	ErrExpired   = errors.New("token expired")
	ErrNotYet    = errors.New("token not valid yet")
	ErrSignature = errors.New("token signature does not verify")
)

// StaticToken is a configured bearer token and its role.
type StaticToken struct {
	Token string
	Role  Role
}

// Config configures an Authenticator.
type Config struct {
	Tokens []StaticToken
	// HS256Secret verifies HS256 JWTs when non-empty.
	HS256Secret []byte
	// PublicKeys verify RS256 (*rsa.PublicKey) and ES256 (*ecdsa.PublicKey on P-256) JWTs.
	PublicKeys []crypto.PublicKey
	// Leeway tolerates clock skew on exp and nbf (default 30 s; negative means none).
	Leeway time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Authenticator checks tokens. It is safe for concurrent use and immutable after New.
type Authenticator struct {
	tokens []hashedToken
	hs     []byte
	rsa    []*rsa.PublicKey
	ec     []*ecdsa.PublicKey
	leeway time.Duration
	now    func() time.Time
}

type hashedToken struct {
	sum  [32]byte
	role Role
}

// New builds an Authenticator. Static tokens are compared by SHA-256 in constant time, so neither a
// token's content nor its length leaks through timing.
func New(cfg Config) (*Authenticator, error) {
	a := &Authenticator{hs: cfg.HS256Secret, leeway: cfg.Leeway, now: cfg.Now}
	if a.leeway == 0 {
		a.leeway = 30 * time.Second
	} else if a.leeway < 0 {
		a.leeway = 0
	}
	if a.now == nil {
		a.now = time.Now
	}
	for i, t := range cfg.Tokens {
		if t.Token == "" {
			return nil, fmt.Errorf("token %d is empty", i)
		}
		if t.Role < RoleViewer || t.Role > RoleAdmin {
			return nil, fmt.Errorf("token %d has no role", i)
		}
		a.tokens = append(a.tokens, hashedToken{sum: sha256.Sum256([]byte(t.Token)), role: t.Role})
	}
	for i, k := range cfg.PublicKeys {
		switch k := k.(type) {
		case *rsa.PublicKey:
			if k.N.BitLen() < 2048 {
				return nil, fmt.Errorf("public key %d: RSA key of %d bits is too small (want 2048 or more)", i, k.N.BitLen())
			}
			a.rsa = append(a.rsa, k)
		case *ecdsa.PublicKey:
			if k.Curve != elliptic.P256() {
				return nil, fmt.Errorf("public key %d: ES256 needs a P-256 key, got %s", i, k.Curve.Params().Name)
			}
			a.ec = append(a.ec, k)
		default:
			return nil, fmt.Errorf("public key %d: unsupported type %T (want RSA or ECDSA P-256)", i, k)
		}
	}
	return a, nil
}

// Enabled reports whether any credential is configured (an Authenticator with none rejects everyone).
func (a *Authenticator) Enabled() bool {
	return len(a.tokens) > 0 || len(a.hs) > 0 || len(a.rsa) > 0 || len(a.ec) > 0
}

// Authenticate returns the role a token grants. A token with two dots is treated as a JWT; anything
// else must equal a static token.
func (a *Authenticator) Authenticate(token string) (Role, error) {
	if token == "" {
		return RoleNone, ErrNoToken
	}
	if strings.Count(token, ".") == 2 && (len(a.hs) > 0 || len(a.rsa) > 0 || len(a.ec) > 0) {
		if role, err := a.verifyJWT(token); err == nil || !errors.Is(err, ErrBadToken) || len(a.tokens) == 0 {
			return role, err
		}
	}
	sum := sha256.Sum256([]byte(token))
	role := RoleNone
	for _, t := range a.tokens {
		if subtle.ConstantTimeCompare(sum[:], t.sum[:]) == 1 {
			role = t.Role()
		}
	}
	if role == RoleNone {
		return RoleNone, ErrBadToken
	}
	return role, nil
}

// Role returns the token's role.
func (t hashedToken) Role() Role { return t.role }

// FromRequest returns the request's token: "Authorization: Bearer <token>" first, else the token query
// parameter (browsers cannot set headers on WebSockets). The second result says where it came from
// ("header", "query" or "").
func FromRequest(r *http.Request) (string, string) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok), "header"
		}
		return "", "header"
	}
	if tok := r.URL.Query().Get("token"); tok != "" {
		return tok, "query"
	}
	return "", ""
}

// WebSocket subprotocols that carry a token, for browsers (which cannot set headers on WebSockets) that
// would rather not put it in the URL: the client offers "sightline.token.<token>", ideally together
// with "sightline" so that the server can select that one and never echo the token back. The token
// must then be made of characters a subprotocol may hold (RFC 7230 token characters: JWTs and
// letters, digits, "-", "_", "." are fine); others must use ?token=.
const (
	Subprotocol            = "sightline"
	TokenSubprotocolPrefix = "sightline.token."
)

// FromSubprotocol returns the token a WebSocket request offers as "sightline.token.<token>" in
// Sec-WebSocket-Protocol (the first such), and the subprotocol the server must select in its upgrade
// answer: "sightline" when the client offered it too, else the token subprotocol itself (a browser
// fails a socket whose answer selects none of the offered subprotocols). Both are "" when no token
// subprotocol is offered.
func FromSubprotocol(r *http.Request) (token, selected string) {
	var tokenProto string
	offeredPlain := false
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			p = strings.TrimSpace(p)
			switch {
			case p == Subprotocol:
				offeredPlain = true
			case tokenProto == "" && len(p) > len(TokenSubprotocolPrefix) && strings.HasPrefix(p, TokenSubprotocolPrefix):
				tokenProto = p
			}
		}
	}
	if tokenProto == "" {
		return "", ""
	}
	if offeredPlain {
		return tokenProto[len(TokenSubprotocolPrefix):], Subprotocol
	}
	return tokenProto[len(TokenSubprotocolPrefix):], tokenProto
}

// ParsePublicKeys reads every PUBLIC KEY (PKIX) and RSA PUBLIC KEY (PKCS #1) block, and the keys of
// CERTIFICATE blocks, from PEM data.
func ParsePublicKeys(data []byte) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		switch block.Type {
		case "PUBLIC KEY":
			k, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("PEM block %d: %w", n, err)
			}
			keys = append(keys, k)
		case "RSA PUBLIC KEY":
			k, err := x509.ParsePKCS1PublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("PEM block %d: %w", n, err)
			}
			keys = append(keys, k)
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("PEM block %d: %w", n, err)
			}
			keys = append(keys, c.PublicKey)
		default:
			return nil, fmt.Errorf("PEM block %d is %q; want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE (never a private key)", n, block.Type)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM public key found")
	}
	return keys, nil
}
