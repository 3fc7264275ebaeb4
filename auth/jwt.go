package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// maxJWTBytes bounds what is decoded from a token.
const maxJWTBytes = 8 << 10

type jwtHeader struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
}

// Claims are the JWT claims Sightline reads (RFC 7519 §4.1). exp and nbf are NumericDate seconds.
type Claims struct {
	Role string   `json:"role"`
	Sub  string   `json:"sub"`
	Exp  *float64 `json:"exp"`
	Nbf  *float64 `json:"nbf"`
}

// verifyJWT checks a compact JWS (RFC 7515 §7.1) signed with HS256, RS256 or ES256 against the
// configured keys, then exp/nbf, and returns the role claim. The algorithm must match a configured key
// type: "none" and HS256-with-a-public-key confusion are refused.
func (a *Authenticator) verifyJWT(token string) (Role, error) {
	claims, err := a.ParseJWT(token)
	if err != nil {
		return RoleNone, err
	}
	now := a.now()
	if claims.Exp != nil && now.After(numericDate(*claims.Exp).Add(a.leeway)) {
		return RoleNone, ErrExpired
	}
	if claims.Nbf != nil && now.Add(a.leeway).Before(numericDate(*claims.Nbf)) {
		return RoleNone, ErrNotYet
	}
	role, err := ParseRole(claims.Role)
	if err != nil {
		return RoleNone, fmt.Errorf("%w: role claim: %v", ErrBadToken, err)
	}
	return role, nil
}

func numericDate(v float64) time.Time {
	sec := int64(v)
	return time.Unix(sec, int64((v-float64(sec))*1e9))
}

// ParseJWT verifies the signature of a compact JWT and returns its claims, without checking exp/nbf.
func (a *Authenticator) ParseJWT(token string) (*Claims, error) {
	if len(token) > maxJWTBytes {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrBadToken, maxJWTBytes)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: not a JWT", ErrBadToken)
	}
	var hdr jwtHeader
	if err := decodePart(parts[0], &hdr); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrBadToken, err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, fmt.Errorf("%w: signature encoding", ErrBadToken)
	}
	signed := token[:len(parts[0])+1+len(parts[1])]
	digest := sha256.Sum256([]byte(signed))
	ok := false
	switch hdr.Alg {
	case "HS256":
		if len(a.hs) == 0 {
			return nil, fmt.Errorf("%w: HS256 is not configured", ErrBadToken)
		}
		mac := hmac.New(sha256.New, a.hs)
		mac.Write([]byte(signed))
		ok = hmac.Equal(sig, mac.Sum(nil))
	case "RS256":
		if len(a.rsa) == 0 {
			return nil, fmt.Errorf("%w: RS256 is not configured", ErrBadToken)
		}
		for _, k := range a.rsa {
			if rsa.VerifyPKCS1v15(k, crypto.SHA256, digest[:], sig) == nil {
				ok = true
				break
			}
		}
	case "ES256":
		if len(a.ec) == 0 {
			return nil, fmt.Errorf("%w: ES256 is not configured", ErrBadToken)
		}
		if len(sig) != 64 { // RFC 7518 §3.4: R || S, 32 bytes each
			return nil, fmt.Errorf("%w: ES256 signature must be 64 bytes", ErrSignature)
		}
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		for _, k := range a.ec {
			if ecdsa.Verify(k, digest[:], r, s) {
				ok = true
				break
			}
		}
	default:
		return nil, fmt.Errorf("%w: algorithm %q is not accepted (HS256, RS256, ES256)", ErrBadToken, truncate(hdr.Alg))
	}
	if !ok {
		return nil, ErrSignature
	}
	var claims Claims
	if err := decodePart(parts[1], &claims); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrBadToken, err)
	}
	return &claims, nil
}

func decodePart(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("base64url: %v", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("json: %v", err)
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 16 {
		return s[:16] + "..."
	}
	return s
}

// Sign makes a compact JWT of claims with alg HS256 (key []byte), RS256 (key *rsa.PrivateKey) or ES256
// (key *ecdsa.PrivateKey on P-256). Sightline only verifies; Sign serves tests and token tooling.
func Sign(claims any, alg string, key any) (string, error) {
	hdr, err := json.Marshal(jwtHeader{Alg: alg, Typ: "JWT"})
	if err != nil {
		return "", err
	}
	body, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encode claims: %w", err)
	}
	signed := base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(body)
	digest := sha256.Sum256([]byte(signed))
	var sig []byte
	switch k := key.(type) {
	case []byte:
		if alg != "HS256" {
			return "", fmt.Errorf("a secret signs HS256, not %s", alg)
		}
		mac := hmac.New(sha256.New, k)
		mac.Write([]byte(signed))
		sig = mac.Sum(nil)
	case *rsa.PrivateKey:
		if alg != "RS256" {
			return "", fmt.Errorf("an RSA key signs RS256, not %s", alg)
		}
		if sig, err = rsa.SignPKCS1v15(nil, k, crypto.SHA256, digest[:]); err != nil {
			return "", err
		}
	case *ecdsa.PrivateKey:
		if alg != "ES256" {
			return "", fmt.Errorf("an ECDSA key signs ES256, not %s", alg)
		}
		r, s, err := ecdsa.Sign(rand.Reader, k, digest[:])
		if err != nil {
			return "", err
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
	default:
		return "", fmt.Errorf("unsupported key type %T", key)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}
