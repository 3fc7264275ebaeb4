package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func claims(role string, exp, nbf time.Time) map[string]any {
	c := map[string]any{"role": role, "sub": "tester"}
	if !exp.IsZero() {
		c["exp"] = exp.Unix()
	}
	if !nbf.IsZero() {
		c["nbf"] = nbf.Unix()
	}
	return c
}

func mustSign(t *testing.T, c any, alg string, key any) string {
	t.Helper()
	tok, err := Sign(c, alg, key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func pemOf(t *testing.T, pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestAuthenticate(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	otherEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keys, err := ParsePublicKeys(append(pemOf(t, &rsaKey.PublicKey), pemOf(t, &ecKey.PublicKey)...))
	if err != nil || len(keys) != 2 {
		t.Fatalf("parse keys: %d %v", len(keys), err)
	}
	a, err := New(Config{
		Tokens:      []StaticToken{{"view-token", RoleViewer}, {"op-token", RoleOperator}, {"admin.token.x", RoleAdmin}},
		HS256Secret: secret, PublicKeys: keys, Now: func() time.Time { return t0 },
	})
	if err != nil {
		t.Fatal(err)
	}
	hour := time.Hour
	cases := []struct {
		name  string
		token string
		role  Role
		err   error
	}{
		{"static viewer", "view-token", RoleViewer, nil},
		{"static operator", "op-token", RoleOperator, nil},
		{"static with dots", "admin.token.x", RoleAdmin, nil},
		{"empty", "", RoleNone, ErrNoToken},
		{"unknown", "nope", RoleNone, ErrBadToken},
		{"prefix of a token", "view-toke", RoleNone, ErrBadToken},
		{"hs256", mustSign(t, claims("admin", t0.Add(hour), time.Time{}), "HS256", secret), RoleAdmin, nil},
		{"hs256 no exp", mustSign(t, claims("viewer", time.Time{}, time.Time{}), "HS256", secret), RoleViewer, nil},
		{"rs256", mustSign(t, claims("operator", t0.Add(hour), t0.Add(-hour)), "RS256", rsaKey), RoleOperator, nil},
		{"es256", mustSign(t, claims("viewer", t0.Add(hour), time.Time{}), "ES256", ecKey), RoleViewer, nil},
		{"expired", mustSign(t, claims("admin", t0.Add(-hour), time.Time{}), "HS256", secret), RoleNone, ErrExpired},
		{"expired within leeway", mustSign(t, claims("admin", t0.Add(-10*time.Second), time.Time{}), "HS256", secret), RoleAdmin, nil},
		{"not yet", mustSign(t, claims("admin", t0.Add(2*hour), t0.Add(hour)), "HS256", secret), RoleNone, ErrNotYet},
		{"wrong secret", mustSign(t, claims("admin", t0.Add(hour), time.Time{}), "HS256", []byte("another secret, long enough....")), RoleNone, ErrSignature},
		{"wrong rsa key", mustSign(t, claims("admin", t0.Add(hour), time.Time{}), "RS256", otherRSA), RoleNone, ErrSignature},
		{"wrong ec key", mustSign(t, claims("admin", t0.Add(hour), time.Time{}), "ES256", otherEC), RoleNone, ErrSignature},
		{"no role", mustSign(t, map[string]any{"sub": "x"}, "HS256", secret), RoleNone, ErrBadToken},
		{"bad role", mustSign(t, claims("root", time.Time{}, time.Time{}), "HS256", secret), RoleNone, ErrBadToken},
		{"alg none", "eyJhbGciOiJub25lIn0.eyJyb2xlIjoiYWRtaW4ifQ.", RoleNone, ErrBadToken},
		{"garbage jwt", "a.b.c", RoleNone, ErrBadToken},
	}
	// HS256 signed with the RSA public key's PEM as the secret (the classic algorithm confusion).
	pubPEM := pemOf(t, &rsaKey.PublicKey)
	onlyRSA, _ := New(Config{PublicKeys: []crypto.PublicKey{&rsaKey.PublicKey}, Now: func() time.Time { return t0 }})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			role, err := a.Authenticate(c.token)
			if role != c.role || !errors.Is(err, c.err) {
				t.Fatalf("got %v, %v; want %v, %v", role, err, c.role, c.err)
			}
			if err != nil && c.token != "" && strings.Contains(err.Error(), c.token) {
				t.Fatalf("error echoes the token: %v", err)
			}
		})
	}
	confused := mustSign(t, claims("admin", t0.Add(hour), time.Time{}), "HS256", pubPEM)
	if role, err := onlyRSA.Authenticate(confused); err == nil || role != RoleNone {
		t.Fatalf("HS256 with the public key as secret accepted: %v %v", role, err)
	}
}

func TestNewRejectsWeakConfig(t *testing.T) {
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	for name, cfg := range map[string]Config{
		"empty token":  {Tokens: []StaticToken{{"", RoleAdmin}}},
		"no role":      {Tokens: []StaticToken{{"x", RoleNone}}},
		"small rsa":    {PublicKeys: []crypto.PublicKey{&small.PublicKey}},
		"wrong curve":  {PublicKeys: []crypto.PublicKey{&p384.PublicKey}},
		"unknown type": {PublicKeys: []crypto.PublicKey{"key"}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ParsePublicKeys([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")); err == nil {
		t.Error("private key PEM accepted")
	}
	if _, err := ParsePublicKeys([]byte("nothing")); err == nil {
		t.Error("no PEM accepted")
	}
}

func TestFromRequest(t *testing.T) {
	r := httptest.NewRequest("GET", "/ws/signal?token=q", nil)
	if tok, src := FromRequest(r); tok != "q" || src != "query" {
		t.Fatalf("query: %q %q", tok, src)
	}
	r.Header.Set("Authorization", "Bearer h")
	if tok, src := FromRequest(r); tok != "h" || src != "header" {
		t.Fatalf("header wins: %q %q", tok, src)
	}
	r.Header.Set("Authorization", "Basic abc")
	if tok, _ := FromRequest(r); tok != "" {
		t.Fatalf("basic accepted as bearer: %q", tok)
	}
	for _, s := range []string{"viewer", "operator", "admin"} {
		if r, err := ParseRole(s); err != nil || r.String() != s {
			t.Fatalf("role %s: %v %v", s, r, err)
		}
	}
	if RoleViewer >= RoleOperator || RoleOperator >= RoleAdmin {
		t.Fatal("role order")
	}
}

func FuzzAuthenticate(f *testing.F) {
	secret := []byte("fuzz-secret-fuzz-secret-fuzz-sec")
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	a, err := New(Config{Tokens: []StaticToken{{"tok", RoleViewer}}, HS256Secret: secret,
		PublicKeys: []crypto.PublicKey{&ecKey.PublicKey}, Now: func() time.Time { return t0 }})
	if err != nil {
		f.Fatal(err)
	}
	good, _ := Sign(map[string]any{"role": "admin"}, "HS256", secret)
	f.Add(good)
	f.Add("tok")
	f.Add("eyJhbGciOiJFUzI1NiJ9.e30.AAAA")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, token string) {
		role, err := a.Authenticate(token)
		if err == nil && role == RoleNone {
			t.Fatal("no error but no role")
		}
		if err != nil && role != RoleNone {
			t.Fatal("error with a role")
		}
		if err == nil && token != "tok" && token != good {
			// Any other accepted token must carry a valid HS256/ES256 signature: practically impossible.
			if _, perr := a.ParseJWT(token); perr != nil {
				t.Fatalf("accepted %q without a valid signature", token)
			}
		}
	})
}

// The token subprotocol: found among other offered subprotocols, in one header or several; "sightline"
// is selected when offered, else the token subprotocol itself; nothing without the prefix.
func TestFromSubprotocol(t *testing.T) {
	for _, c := range []struct {
		headers        []string
		token, selects string
	}{
		{nil, "", ""},
		{[]string{"sightline"}, "", ""},
		{[]string{"sightline.token."}, "", ""},
		{[]string{"sightline, sightline.token.abc-123"}, "abc-123", "sightline"},
		{[]string{"sightline.token.abc-123,sightline"}, "abc-123", "sightline"},
		{[]string{"sightline.token.a.b.c"}, "a.b.c", "sightline.token.a.b.c"},
		{[]string{"chat", "sightline.token.x1 , sightline.token.x2"}, "x1", "sightline.token.x1"},
		{[]string{"bearer, abc-123"}, "", ""},
	} {
		r := httptest.NewRequest("GET", "/ws/signal", nil)
		for _, h := range c.headers {
			r.Header.Add("Sec-WebSocket-Protocol", h)
		}
		tok, sel := FromSubprotocol(r)
		if tok != c.token || sel != c.selects {
			t.Errorf("%q: token %q selects %q, want %q %q", c.headers, tok, sel, c.token, c.selects)
		}
	}
}

func FuzzFromSubprotocol(f *testing.F) {
	f.Add("sightline, sightline.token.abc")
	f.Add("sightline.token.")
	f.Fuzz(func(t *testing.T, h string) {
		r := httptest.NewRequest("GET", "/ws/signal", nil)
		r.Header.Set("Sec-WebSocket-Protocol", h)
		tok, sel := FromSubprotocol(r)
		if (tok == "") != (sel == "") || (sel != "" && sel != Subprotocol && sel != TokenSubprotocolPrefix+tok) {
			t.Fatalf("%q: token %q selects %q", h, tok, sel)
		}
		if tok != "" && !strings.Contains(h, TokenSubprotocolPrefix+tok) {
			t.Fatalf("%q: token %q was not offered", h, tok)
		}
	})
}
