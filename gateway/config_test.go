package gateway

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// noAuth turns authentication off explicitly, for tests about something else.
const noAuth = "auth: {enabled: false}\n"

func TestParseConfigDefaults(t *testing.T) {
	cfg, err := ParseConfig([]byte(noAuth+"cameras:\n  - {id: demo, url: file:media/demo.h264}\n"), "/etc/sightline")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Listen != ":8080" || cfg.WebRTC.UDPPort != 8189 || cfg.Log.Level != "info" {
		t.Fatalf("defaults not applied: %+v", cfg)
	}
	c := cfg.Cameras[0]
	if c.Transport != "auto" || !c.IsEnabled() || time.Duration(c.ReadTimeout) != 5*time.Second {
		t.Fatalf("camera defaults: %+v", c)
	}
	p, err := cfg.filePath(c.URL)
	if err != nil || p != "/etc/sightline/media/demo.h264" {
		t.Fatalf("relative file URL resolved to %q, %v", p, err)
	}
	abs, err := cfg.filePath("file:///srv/clip.h264")
	if err != nil || abs != "/srv/clip.h264" {
		t.Fatalf("absolute file URL resolved to %q, %v", abs, err)
	}
}

func TestUDPPortZeroMeansFreePort(t *testing.T) {
	cfg, err := ParseConfig([]byte(noAuth+"webrtc: {udpPort: 0}\n"), "/")
	if err != nil || cfg.WebRTC.UDPPort != 0 {
		t.Fatalf("udpPort 0 became %d (%v)", cfg.WebRTC.UDPPort, err)
	}
}

func TestParseConfigEmptyFile(t *testing.T) {
	_, err := ParseConfig(nil, "/")
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Key != "auth" || !strings.Contains(err.Error(), "auth.enabled: false") {
		t.Fatalf("empty config must ask for credentials or an explicit auth.enabled: false: %v", err)
	}
	cfg, err := ParseConfig([]byte(noAuth), "/")
	if err != nil || cfg.HTTP.Listen != ":8080" || len(cfg.HTTP.AllowOrigins) != 0 {
		t.Fatalf("defaults: %+v, %v", cfg, err)
	}
}

// Every bad config names the key and says what was wrong.
func TestParseConfigErrors(t *testing.T) {
	cases := []struct {
		name, yaml, key, msg string
	}{
		{"unknown top key", "htttp: {}\n", "htttp", "unknown key"},
		{"unknown nested key", "webrtc: {udpport: 1}\n", "webrtc.udpport", "known keys here: additionalHosts"},
		{"unknown camera key", "cameras: [{id: a, url: 'file:/x', urll: x}]\n", "cameras[0].urll", "unknown key"},
		{"bad listen", "http: {listen: '8080'}\n", "http.listen", "not host:port"},
		{"bad origin", "http: {allowOrigins: ['example.com']}\n", "http.allowOrigins[0]", "not an origin"},
		{"bad proxy", "http: {trustedProxies: [10.0.0.0/8, proxy.lan]}\n", "http.trustedProxies[1]", "not an IP address or CIDR"},
		{"bad level", "log: {level: loud}\n", "log.level", "not one of"},
		{"bad format", "log: {format: xml}\n", "log.format", "not one of"},
		{"bad port", "webrtc: {udpPort: 70000}\n", "webrtc.udpPort", "not a port"},
		{"bad nat ip", "webrtc: {nat1to1IPs: [nope]}\n", "webrtc.nat1to1IPs[0]", "not an IP"},
		{"bad ice url", "webrtc: {iceServers: [{urls: ['http://x']}]}\n", "webrtc.iceServers[0].urls", "must start with"},
		{"missing id", "cameras: [{url: 'file:/x'}]\n", "cameras[0].id", "is required"},
		{"bad id", "cameras: [{id: 'a b', url: 'file:/x'}]\n", "cameras[0].id", "letters, digits"},
		{"duplicate id", "cameras: [{id: a, url: 'file:/x'}, {id: a, url: 'file:/y'}]\n", "cameras[1].id", "already used"},
		{"missing url", "cameras: [{id: a}]\n", "cameras[0].url", "is required"},
		{"bad scheme", "cameras: [{id: a, url: 'http://cam/x'}]\n", "cameras[0].url", "unsupported scheme"},
		{"no scheme", "cameras: [{id: a, url: 'cam.local/x'}]\n", "cameras[0].url", "no scheme"},
		{"rtsp without host", "cameras: [{id: a, url: 'rtsp:///x'}]\n", "cameras[0].url", ""},
		{"file with host", "cameras: [{id: a, url: 'file://cam/x.h264'}]\n", "cameras[0].url", "local path"},
		{"bad transport", "cameras: [{id: a, url: 'rtsp://h/x', transport: quic}]\n", "cameras[0].transport", "not one of"},
		{"bad duration", "cameras: [{id: a, url: 'rtsp://h/x', readTimeout: soon}]\n", "cameras[0].readTimeout", "invalid duration"},
		{"short timeout", "cameras: [{id: a, url: 'rtsp://h/x', readTimeout: 1ms}]\n", "cameras[0].readTimeout", "too short"},
		{"credentials on file", "cameras: [{id: a, url: 'file:/x', username: u}]\n", "cameras[0].username", "rtsp"},
		{"tls on plain rtsp", "cameras: [{id: a, url: 'rtsp://h/x', tlsInsecure: true}]\n", "cameras[0].tlsInsecure", "rtsps"},
		{"wrong shape", "cameras: {id: a}\n", "cameras", "want a list"},
		{"bad yaml", "cameras: [\n", "", "parse YAML"},
		{"auth without role", "auth: {tokens: [{token: x}]}\n", "auth.tokens[0].role", "not one of"},
		{"auth bad role", "auth: {tokens: [{token: x, role: root}]}\n", "auth.tokens[0].role", "not one of"},
		{"auth empty token", "auth: {tokens: [{role: admin}]}\n", "auth.tokens[0].token", "required"},
		{"auth short secret", "auth: {jwt: {hs256Secret: short}}\n", "auth.jwt.hs256Secret", "32"},
		{"auth missing key file", "auth: {jwt: {publicKeyFile: /nonexistent.pem}}\n", "auth.jwt.publicKeyFile", "no such file"},
		{"auth no credentials", "auth: {enabled: true}\n", "auth", "no auth.tokens"},
		{"auth unknown key", "auth: {token: x}\n", "auth.token", "unknown key"},
		{"limits bad burst", "limits: {apiBurst: -1}\n", "limits.apiBurst", "1 or more"},
		{"limits small body", "limits: {maxBodyBytes: 10}\n", "limits.maxBodyBytes", "too small"},
		{"api bad host", "api: {denyHosts: ['a b']}\n", "api.denyHosts[0]", "not an IP"},
		{"api bad cidr", "api: {allowHosts: ['10.0.0.0/99']}\n", "api.allowHosts[0]", "CIDR"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			y := c.yaml
			if !strings.HasPrefix(y, "auth") {
				y = noAuth + y
			}
			_, err := ParseConfig([]byte(y), "/")
			if err == nil {
				t.Fatal("accepted")
			}
			if c.key != "" {
				var ce *ConfigError
				if !errors.As(err, &ce) || ce.Key != c.key {
					t.Fatalf("error %q does not name key %q", err, c.key)
				}
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error %q does not say %q", err, c.msg)
			}
		})
	}
}

func TestConfigErrorsNeverEchoCredentials(t *testing.T) {
	for _, y := range []string{
		"cameras: [{id: a, url: 'http://admin:hunter2@cam/x'}]\n",
		"cameras: [{id: a, url: 'admin:hunter2@cam/x'}]\n",
		"cameras: [{id: a, url: 'rtsp://admin:hunter2@/x'}]\n",
	} {
		_, err := ParseConfig([]byte(y), "/")
		if err == nil {
			t.Fatalf("accepted %s", y)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Fatalf("error leaks the password: %v", err)
		}
	}
}

func TestEnvOverrides(t *testing.T) {
	cfg, err := ParseConfig([]byte(noAuth+"http: {listen: ':8080'}\n"), "/")
	if err != nil {
		t.Fatal(err)
	}
	err = applyEnv(cfg, []string{
		"SIGHTLINE_HTTP_LISTEN=127.0.0.1:9000", "SIGHTLINE_WEBRTC_UDPPORT=0",
		"SIGHTLINE_WEBRTC_LOOPBACKONLY=true", "SIGHTLINE_WEBRTC_NAT1TO1IPS=203.0.113.7, 203.0.113.8",
		"SIGHTLINE_ASSETS=/ignored", "PATH=/bin", "SIGHTLINE_AUTH_ENABLED=true",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Listen != "127.0.0.1:9000" || cfg.WebRTC.UDPPort != 0 || !cfg.WebRTC.LoopbackOnly ||
		len(cfg.WebRTC.NAT1To1IPs) != 2 || !cfg.Auth.IsEnabled() {
		t.Fatalf("overrides not applied: %+v", cfg)
	}
	if err := applyEnv(cfg, []string{"SIGHTLINE_WEBRTC_UDPPORT=abc"}); err == nil ||
		!strings.Contains(err.Error(), "SIGHTLINE_WEBRTC_UDPPORT") {
		t.Fatalf("bad number: %v", err)
	}
	if err := applyEnv(cfg, []string{"SIGHTLINE_WEBRTC_UDP_PORT=1"}); err == nil ||
		!strings.Contains(err.Error(), "unknown setting") {
		t.Fatalf("typo accepted: %v", err)
	}
}

func TestLoadConfigFileAndEnv(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "s.yaml")
	if err := os.WriteFile(p, []byte(noAuth+"cameras: [{id: demo, url: 'file:clip.h264'}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SIGHTLINE_LOG_LEVEL", "debug")
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Log.Level != "debug" {
		t.Fatalf("env not applied: %+v", cfg.Log)
	}
	if got, _ := cfg.filePath(cfg.Cameras[0].URL); got != filepath.Join(dir, "clip.h264") {
		t.Fatalf("relative path not resolved against the config folder: %s", got)
	}
	t.Setenv("SIGHTLINE_LOG_LEVEL", "loud")
	if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), "log.level") {
		t.Fatalf("invalid env value not rejected by validation: %v", err)
	}
	if _, err := LoadConfig(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("missing file accepted")
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("http: {listen: ':8080'}\ncameras: [{id: a, url: 'rtsp://u:p@h:554/x', transport: tcp}]\n"))
	f.Add([]byte("webrtc: {udpPort: 1, iceServers: [{urls: ['stun:x']}]}\n"))
	f.Add([]byte("cameras: [{id: a, url: 'file:x', readTimeout: 2s}]\n"))
	f.Add([]byte("- a\n- b\n"))
	f.Add([]byte("&a [*a]"))
	f.Add([]byte("analytics: {fps: 2, classes: [car]}\ncameras: [{id: a, url: 'file:x', analytics: {fps: 1, motionGate: true, classes: [car], scoreThreshold: 0.5}}]\n"))
	f.Add([]byte("analytics: {fps: 2}\nalerts: {publicURL: 'https://n', snapshots: -1, webhooks: [{url: 'http://h/x', retries: 2, headers: {a: b}, backoff: 1s}]}\n"))
	f.Add([]byte("analytics: {}\nalerts: {kafka: [{brokers: ['h:9092', '[::1]:9093'], topic: t.e, acks: leader, sasl: {mechanism: plain, username: u, password: p}, tls: true, timeout: 2s}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data, "/")
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if cfg.HTTP.Listen == "" || cfg.Log.Level == "" {
			t.Fatalf("accepted config without defaults: %+v", cfg)
		}
	})
}

// The configurations the project ships (make run, the compose harness) load and validate.
func TestShippedConfigsAreValid(t *testing.T) {
	for _, p := range []string{"../configs/sightline.yaml", "../configs/compose/sightline.yaml"} {
		if _, err := LoadConfig(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}
