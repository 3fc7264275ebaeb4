// Package gateway is Sightline's composition root: it loads and validates the configuration, owns the
// camera registry (each camera's source and stream), and serves the HTTP surface (UI, REST API, WHEP,
// WebSocket signaling, health). It wires the other packages together and must hold no media logic itself.
package gateway

import (
	"bytes"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"sightline/analytics/rules"
	"sightline/auth"
	"sightline/rtsp"
	"sightline/webrtc"
)

// Config is the whole configuration file. Keys are camelCase in YAML; unknown keys are errors.
type Config struct {
	HTTP    HTTPConfig     `yaml:"http"`
	Auth    AuthConfig     `yaml:"auth"`
	Limits  LimitsConfig   `yaml:"limits"`
	API     APIConfig      `yaml:"api"`
	Log     LogConfig      `yaml:"log"`
	WebRTC  WebRTCConfig   `yaml:"webrtc"`
	Cameras []CameraConfig `yaml:"cameras"`
	// Analytics is nil (off) unless the analytics section or a SIGHTLINE_ANALYTICS_* variable is set.
	Analytics *AnalyticsConfig `yaml:"analytics"`
	// Alerts configures event snapshots and sinks (webhooks).
	Alerts AlertsConfig `yaml:"alerts"`

	// baseDir resolves relative file: camera URLs (the config file's folder).
	baseDir string
	// configName is the config file's base name without extension ("" for ParseConfig).
	configName string
}

// AuthConfig configures who may call the HTTP surface. Auth is on unless enabled is false.
type AuthConfig struct {
	Enabled *bool         `yaml:"enabled"`
	Tokens  []TokenConfig `yaml:"tokens"`
	JWT     JWTConfig     `yaml:"jwt"`
}

// IsEnabled reports whether auth is on (true unless explicitly disabled).
func (a AuthConfig) IsEnabled() bool { return a.Enabled == nil || *a.Enabled }

// TokenConfig is a static bearer token and its role (viewer, operator, admin).
type TokenConfig struct {
	Token string `yaml:"token"`
	Role  string `yaml:"role"`
}

// JWTConfig verifies JWTs: HS256 with a shared secret, RS256/ES256 with PEM public keys from a file.
type JWTConfig struct {
	HS256Secret   string `yaml:"hs256Secret"`
	PublicKeyFile string `yaml:"publicKeyFile"`
}

// LimitsConfig bounds what one client, one request and all viewers may use.
type LimitsConfig struct {
	// APIRate and APIBurst limit requests per client IP per second on /api/ and /metrics.
	APIRate  float64 `yaml:"apiRate"`
	APIBurst int     `yaml:"apiBurst"`
	// WHEPRate and WHEPBurst limit new WHEP sessions and signaling sockets per client IP per second.
	WHEPRate  float64 `yaml:"whepRate"`
	WHEPBurst int     `yaml:"whepBurst"`
	// MaxBodyBytes caps JSON request bodies.
	MaxBodyBytes int64 `yaml:"maxBodyBytes"`
	// MaxSessionsPerCamera caps viewers of one camera (0 = unlimited); webrtc.maxSessions caps all.
	MaxSessionsPerCamera int `yaml:"maxSessionsPerCamera"`
	// RequestTimeout bounds reading and answering one non-WebSocket request.
	RequestTimeout Duration `yaml:"requestTimeout"`
}

// APIConfig configures the REST API's runtime camera management.
type APIConfig struct {
	// StateFile keeps cameras created, changed, deleted, started or stopped through the API; it is read
	// at start. Default: <config name>.state.json beside the config file.
	StateFile string `yaml:"stateFile"`
	// MediaDir is the only folder file: cameras created through the API may read ("" = none may).
	MediaDir string `yaml:"mediaDir"`
	// AllowHosts, when not empty, is the only hosts (names, IPs or CIDRs) API cameras may reach.
	AllowHosts []string `yaml:"allowHosts"`
	// DenyHosts are hosts API cameras may never reach (checked first).
	DenyHosts []string `yaml:"denyHosts"`
}

// HTTPConfig configures the single HTTP listener.
type HTTPConfig struct {
	Listen string `yaml:"listen"`
	// AllowOrigins lists the other origins browsers may call from (CORS and WebSocket Origin checks).
	// Default: none (same origin only); "*" allows any.
	AllowOrigins []string `yaml:"allowOrigins"`
	// TrustedProxies are the reverse proxies (IPs or CIDRs) whose X-Forwarded-For is believed: a request
	// from one of them counts (rate limits, logs) as coming from the nearest address in that header that
	// is not itself a trusted proxy. Default: none (every peer is the client).
	TrustedProxies []string `yaml:"trustedProxies"`
}

// LogConfig configures structured logging.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// WebRTCConfig configures the WebRTC server (see webrtc.Config).
type WebRTCConfig struct {
	UDPPort         int                `yaml:"udpPort"`
	LoopbackOnly    bool               `yaml:"loopbackOnly"`
	NAT1To1IPs      []string           `yaml:"nat1to1IPs"`
	AdditionalHosts []string           `yaml:"additionalHosts"`
	ICEServers      []webrtc.ICEServer `yaml:"iceServers"`
	MaxSessions     int                `yaml:"maxSessions"`
}

// CameraConfig is one camera.
type CameraConfig struct {
	ID          string   `yaml:"id" json:"id"`
	URL         string   `yaml:"url" json:"url"`
	Transport   string   `yaml:"transport" json:"transport,omitempty"` // auto | tcp | udp (RTSP only)
	Enabled     *bool    `yaml:"enabled" json:"enabled,omitempty"`     // default true
	Username    string   `yaml:"username" json:"username,omitempty"`   // alternative to user:pass@ in the URL
	Password    string   `yaml:"password" json:"password,omitempty"`
	ReadTimeout Duration `yaml:"readTimeout" json:"readTimeout,omitempty"` // no frames for this long = failure (default 5s)
	TLSInsecure bool     `yaml:"tlsInsecure" json:"tlsInsecure,omitempty"` // rtsps: accept a self-signed camera certificate
	// Rules raise events from the camera's tracked objects (zones, lines, dwell, counts); they need the
	// analytics section.
	Rules []rules.Config `yaml:"rules" json:"rules,omitempty"`
	// AnnotatedWarm keeps decoding the camera while nobody watches its annotated track, so that a new
	// annotated viewer's first frame is the camera's next frame (tens of ms) instead of the frame after
	// the camera's next keyframe (up to one GOP). Costs one decoder's CPU per camera; the encoder still
	// runs only while watched.
	AnnotatedWarm bool `yaml:"annotatedWarm" json:"annotatedWarm,omitempty"`
	// Analytics overrides the analytics section for this camera (rate, gate, classes; or off).
	Analytics *CameraAnalytics `yaml:"analytics" json:"analytics,omitempty"`
}

// IsEnabled reports whether the camera should run (enabled is true unless set to false).
func (c CameraConfig) IsEnabled() bool { return c.Enabled == nil || *c.Enabled }

// Duration is a time.Duration written as "5s", "250ms" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("invalid duration %q (want e.g. 5s, 250ms)", n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a Go duration string ("5s").
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration string like \"5s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q (want e.g. 5s, 250ms)", s)
	}
	*d = Duration(v)
	return nil
}

// ConfigError is a configuration problem tied to one key.
type ConfigError struct {
	Key string // dotted path, e.g. cameras[0].url
	Msg string
}

func (e *ConfigError) Error() string { return e.Key + ": " + e.Msg }

func keyErr(key, format string, args ...any) error {
	return &ConfigError{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// Defaults.
const (
	defaultListen      = ":8080"
	defaultUDPPort     = 8189
	defaultReadTimeout = 5 * time.Second
	maxConfigSize      = 1 << 20
)

// LoadConfig reads a YAML file, applies SIGHTLINE_* environment overrides and validates the result.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("resolve config path %s: %w", path, err)
	}
	cfg, err := decodeConfig(data, filepath.Dir(abs))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	cfg.configName = strings.TrimSuffix(filepath.Base(abs), filepath.Ext(abs))
	if err := applyEnv(cfg, os.Environ()); err != nil {
		return nil, fmt.Errorf("environment: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig decodes and validates YAML without environment overrides; relative file: URLs resolve
// against baseDir.
func ParseConfig(data []byte, baseDir string) (*Config, error) {
	cfg, err := decodeConfig(data, baseDir)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func decodeConfig(data []byte, baseDir string) (*Config, error) {
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("config is %d bytes, larger than the %d byte limit", len(data), maxConfigSize)
	}
	// Defaults where zero is a meaningful value (udpPort 0 picks a free port) are set before decoding,
	// so that only an absent key gets them.
	cfg := &Config{baseDir: baseDir, WebRTC: WebRTCConfig{UDPPort: defaultUDPPort}}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return applyDefaults(cfg), nil // empty file: all defaults
		}
		return nil, fmt.Errorf("parse YAML: %w", err)
	}
	if len(root.Content) == 0 {
		return applyDefaults(cfg), nil
	}
	if err := checkKeys(root.Content[0], reflect.TypeOf(*cfg), ""); err != nil {
		return nil, err
	}
	if err := root.Decode(cfg); err != nil {
		return nil, fmt.Errorf("decode config: %s", cleanYAMLError(err))
	}
	return applyDefaults(cfg), nil
}

func cleanYAMLError(err error) string {
	return strings.ReplaceAll(strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n  "), "\n  ", "; ")
}

// checkKeys walks the YAML tree against the Go type and rejects keys the type does not have, naming the
// full key path, so that a typo never silently falls back to a default.
func checkKeys(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeOf(Duration(0)) {
		if _, err := time.ParseDuration(n.Value); err != nil {
			return keyErr(orRoot(path), "line %d: invalid duration %q (want e.g. 5s, 250ms)", n.Line, n.Value)
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
				return nil
			}
			return keyErr(orRoot(path), "line %d: want a mapping of keys, got %s", n.Line, nodeKind(n))
		}
		fields := map[string]reflect.StructField{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if name != "" && name != "-" {
				fields[name] = f
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := joinKey(path, k.Value)
			f, ok := fields[k.Value]
			if !ok {
				return keyErr(key, "line %d: unknown key (known keys here: %s)", k.Line, strings.Join(slices.Sorted(maps.Keys(fields)), ", "))
			}
			if err := checkKeys(v, f.Type, key); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return nil
		}
		if n.Kind != yaml.SequenceNode {
			return keyErr(orRoot(path), "line %d: want a list, got %s", n.Line, nodeKind(n))
		}
		for i, item := range n.Content {
			if err := checkKeys(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

func orRoot(path string) string {
	if path == "" {
		return "(top level)"
	}
	return path
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func applyDefaults(cfg *Config) *Config {
	if cfg.HTTP.Listen == "" {
		cfg.HTTP.Listen = defaultListen
	}
	l := &cfg.Limits
	if l.APIRate == 0 {
		l.APIRate = 20
	}
	if l.APIBurst == 0 {
		l.APIBurst = 40
	}
	if l.WHEPRate == 0 {
		l.WHEPRate = 2
	}
	if l.WHEPBurst == 0 {
		l.WHEPBurst = 10
	}
	if l.MaxBodyBytes == 0 {
		l.MaxBodyBytes = 64 << 10
	}
	if l.RequestTimeout == 0 {
		l.RequestTimeout = Duration(30 * time.Second)
	}
	if cfg.Log.Level == "" {
		cfg.Log.Level = "info"
	}
	if cfg.Log.Format == "" {
		cfg.Log.Format = "text"
	}
	for i := range cfg.Cameras {
		c := &cfg.Cameras[i]
		if c.Transport == "" {
			c.Transport = "auto"
		}
		if c.ReadTimeout == 0 {
			c.ReadTimeout = Duration(defaultReadTimeout)
		}
	}
	return cfg
}

// envKeys lists the SIGHTLINE_* overrides applyEnv knows. Cameras are configured in the file only.
var envKeys = []string{
	"SIGHTLINE_HTTP_LISTEN", "SIGHTLINE_HTTP_ALLOWORIGINS", "SIGHTLINE_HTTP_TRUSTEDPROXIES", "SIGHTLINE_AUTH_ENABLED",
	"SIGHTLINE_LOG_LEVEL", "SIGHTLINE_LOG_FORMAT",
	"SIGHTLINE_WEBRTC_UDPPORT", "SIGHTLINE_WEBRTC_LOOPBACKONLY", "SIGHTLINE_WEBRTC_NAT1TO1IPS",
	"SIGHTLINE_WEBRTC_ADDITIONALHOSTS", "SIGHTLINE_WEBRTC_MAXSESSIONS",
}

// applyEnv applies SIGHTLINE_* overrides from environ ("KEY=value" entries). Unknown SIGHTLINE_ keys
// that look like config keys are rejected so a typo is never silently ignored; SIGHTLINE_ASSETS and
// other non-config settings are left alone.
func applyEnv(cfg *Config, environ []string) error {
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, "SIGHTLINE_") {
			continue
		}
		var err error
		switch k {
		case "SIGHTLINE_HTTP_LISTEN":
			cfg.HTTP.Listen = v
		case "SIGHTLINE_HTTP_ALLOWORIGINS":
			cfg.HTTP.AllowOrigins = splitList(v)
		case "SIGHTLINE_HTTP_TRUSTEDPROXIES":
			cfg.HTTP.TrustedProxies = splitList(v)
		case "SIGHTLINE_AUTH_ENABLED":
			var b bool
			if b, err = strconv.ParseBool(v); err == nil {
				cfg.Auth.Enabled = &b
			}
		case "SIGHTLINE_LOG_LEVEL":
			cfg.Log.Level = v
		case "SIGHTLINE_LOG_FORMAT":
			cfg.Log.Format = v
		case "SIGHTLINE_WEBRTC_UDPPORT":
			cfg.WebRTC.UDPPort, err = strconv.Atoi(v)
		case "SIGHTLINE_WEBRTC_LOOPBACKONLY":
			cfg.WebRTC.LoopbackOnly, err = strconv.ParseBool(v)
		case "SIGHTLINE_WEBRTC_NAT1TO1IPS":
			cfg.WebRTC.NAT1To1IPs = splitList(v)
		case "SIGHTLINE_WEBRTC_ADDITIONALHOSTS":
			cfg.WebRTC.AdditionalHosts = splitList(v)
		case "SIGHTLINE_WEBRTC_MAXSESSIONS":
			cfg.WebRTC.MaxSessions, err = strconv.Atoi(v)
		default:
			if strings.HasPrefix(k, "SIGHTLINE_ANALYTICS_") {
				err = applyAnalyticsEnv(cfg, k, v)
				break
			}
			if strings.HasPrefix(k, "SIGHTLINE_HTTP_") || strings.HasPrefix(k, "SIGHTLINE_LOG_") || strings.HasPrefix(k, "SIGHTLINE_AUTH_") ||
				strings.HasPrefix(k, "SIGHTLINE_WEBRTC_") {
				return fmt.Errorf("%s: unknown setting (known: %s)", k, strings.Join(envKeys, ", "))
			}
		}
		if err != nil {
			return fmt.Errorf("%s=%q: %w", k, v, err)
		}
	}
	return nil
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

var cameraIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// Validate checks every value and names the offending key.
func (cfg *Config) Validate() error {
	if _, _, err := net.SplitHostPort(cfg.HTTP.Listen); err != nil {
		return keyErr("http.listen", "%q is not host:port (e.g. \":8080\" or \"127.0.0.1:8080\")", cfg.HTTP.Listen)
	}
	for i, o := range cfg.HTTP.AllowOrigins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
			return keyErr(fmt.Sprintf("http.allowOrigins[%d]", i), "%q is not an origin like https://example.com or \"*\"", o)
		}
	}
	for i, p := range cfg.HTTP.TrustedProxies {
		if _, err := parseProxy(p); err != nil {
			return keyErr(fmt.Sprintf("http.trustedProxies[%d]", i), "%q is not an IP address or CIDR (e.g. 10.0.0.0/8)", p)
		}
	}
	switch cfg.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return keyErr("log.level", "%q is not one of debug, info, warn, error", cfg.Log.Level)
	}
	switch cfg.Log.Format {
	case "text", "json":
	default:
		return keyErr("log.format", "%q is not one of text, json", cfg.Log.Format)
	}
	if p := cfg.WebRTC.UDPPort; p < 0 || p > 65535 {
		return keyErr("webrtc.udpPort", "%d is not a port (0-65535; 0 picks a free one)", p)
	}
	if cfg.WebRTC.MaxSessions < 0 {
		return keyErr("webrtc.maxSessions", "%d must be 0 (unlimited) or more", cfg.WebRTC.MaxSessions)
	}
	for i, ip := range cfg.WebRTC.NAT1To1IPs {
		if net.ParseIP(ip) == nil {
			return keyErr(fmt.Sprintf("webrtc.nat1to1IPs[%d]", i), "%q is not an IP address", ip)
		}
	}
	for i, ip := range cfg.WebRTC.AdditionalHosts {
		if net.ParseIP(ip) == nil {
			return keyErr(fmt.Sprintf("webrtc.additionalHosts[%d]", i), "%q is not an IP address", ip)
		}
	}
	for i, s := range cfg.WebRTC.ICEServers {
		key := fmt.Sprintf("webrtc.iceServers[%d].urls", i)
		if len(s.URLs) == 0 {
			return keyErr(key, "at least one stun:/turn:/turns: URL is required")
		}
		for _, u := range s.URLs {
			if !strings.HasPrefix(u, "stun:") && !strings.HasPrefix(u, "stuns:") &&
				!strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") {
				return keyErr(key, "%q must start with stun:, stuns:, turn: or turns:", u)
			}
		}
	}
	if err := cfg.validateLimits(); err != nil {
		return err
	}
	if err := cfg.validateAPI(); err != nil {
		return err
	}
	if err := cfg.validateAnalytics(); err != nil {
		return err
	}
	if err := cfg.validateAlerts(); err != nil {
		return err
	}
	seen := map[string]int{}
	for i := range cfg.Cameras {
		c := &cfg.Cameras[i]
		key := fmt.Sprintf("cameras[%d]", i)
		if err := cfg.validateCamera(c, key+"."); err != nil {
			return err
		}
		if j, dup := seen[c.ID]; dup {
			return keyErr(key+".id", "%q is already used by cameras[%d]", c.ID, j)
		}
		seen[c.ID] = i
	}
	return cfg.validateAuth()
}

// validateCamera checks one camera; prefix ("cameras[0]." or "" for the API) starts every key named.
func (cfg *Config) validateCamera(c *CameraConfig, prefix string) error {
	if c.ID == "" {
		return keyErr(prefix+"id", "is required")
	}
	if !cameraIDPattern.MatchString(c.ID) {
		return keyErr(prefix+"id", "%q must be 1-64 letters, digits, '-' or '_', starting with a letter or digit", c.ID)
	}
	if c.URL == "" {
		return keyErr(prefix+"url", "is required (rtsp://, rtsps://, file: or whip:)")
	}
	switch c.Transport {
	case "auto", "tcp", "udp":
	default:
		return keyErr(prefix+"transport", "%q is not one of auto, tcp, udp", c.Transport)
	}
	if c.ReadTimeout < Duration(500*time.Millisecond) {
		return keyErr(prefix+"readTimeout", "%s is too short (at least 500ms)", time.Duration(c.ReadTimeout))
	}
	kind, err := cameraKind(c.URL)
	if err != nil {
		return keyErr(prefix+"url", "%v", err)
	}
	if c.TLSInsecure && !strings.HasPrefix(strings.ToLower(c.URL), "rtsps:") {
		return keyErr(prefix+"tlsInsecure", "applies to rtsps:// cameras only")
	}
	switch kind {
	case kindWHIP:
		if c.Username != "" || c.Password != "" {
			return keyErr(prefix+"username", "credentials apply to rtsp:// and rtsps:// cameras only (a WHIP publisher authenticates with an operator token)")
		}
	case kindFile:
		if c.Username != "" || c.Password != "" {
			return keyErr(prefix+"username", "credentials apply to rtsp:// and rtsps:// cameras only")
		}
		if _, err := cfg.filePath(c.URL); err != nil {
			return keyErr(prefix+"url", "%v", err)
		}
	case kindRTSP:
		if err := rtsp.ValidateURL(c.URL); err != nil {
			return keyErr(prefix+"url", "%v", err)
		}
	}
	if err := cfg.validateCameraAnalytics(c, prefix); err != nil {
		return err
	}
	return validateRules(c, prefix)
}

func (cfg *Config) validateAuth() error {
	a := cfg.Auth
	for i, t := range a.Tokens {
		key := fmt.Sprintf("auth.tokens[%d]", i)
		if t.Token == "" {
			return keyErr(key+".token", "is required")
		}
		if strings.ContainsAny(t.Token, " \t\r\n") {
			return keyErr(key+".token", "must not contain spaces or line breaks")
		}
		if _, err := auth.ParseRole(t.Role); err != nil {
			return keyErr(key+".role", "%v", err)
		}
	}
	if f := a.JWT.PublicKeyFile; f != "" {
		if _, err := cfg.publicKeys(); err != nil {
			return keyErr("auth.jwt.publicKeyFile", "%v", err)
		}
	}
	if a.IsEnabled() && len(a.Tokens) == 0 && a.JWT.HS256Secret == "" && a.JWT.PublicKeyFile == "" {
		return keyErr("auth", "auth is on (the default) but no auth.tokens or auth.jwt key is configured; "+
			"add one, or set auth.enabled: false to serve without authentication")
	}
	if s := a.JWT.HS256Secret; s != "" && len(s) < 32 {
		return keyErr("auth.jwt.hs256Secret", "is %d bytes; use at least 32 random bytes", len(s))
	}
	return nil
}

// publicKeys reads auth.jwt.publicKeyFile (relative paths against the config's folder).
func (cfg *Config) publicKeys() ([]crypto.PublicKey, error) {
	f := cfg.Auth.JWT.PublicKeyFile
	if f == "" {
		return nil, nil
	}
	if !filepath.IsAbs(f) {
		f = filepath.Join(cfg.baseDir, f)
	}
	data, err := os.ReadFile(f)
	if err != nil {
		return nil, err
	}
	return auth.ParsePublicKeys(data)
}

func (cfg *Config) validateLimits() error {
	l := cfg.Limits
	switch {
	case l.APIRate < 0:
		return keyErr("limits.apiRate", "%g must be positive (requests per second per client)", l.APIRate)
	case l.APIBurst < 1:
		return keyErr("limits.apiBurst", "%d must be 1 or more", l.APIBurst)
	case l.WHEPRate < 0:
		return keyErr("limits.whepRate", "%g must be positive (sessions per second per client)", l.WHEPRate)
	case l.WHEPBurst < 1:
		return keyErr("limits.whepBurst", "%d must be 1 or more", l.WHEPBurst)
	case l.MaxBodyBytes < 1024:
		return keyErr("limits.maxBodyBytes", "%d is too small (at least 1024)", l.MaxBodyBytes)
	case l.MaxSessionsPerCamera < 0:
		return keyErr("limits.maxSessionsPerCamera", "%d must be 0 (unlimited) or more", l.MaxSessionsPerCamera)
	case l.RequestTimeout < Duration(time.Second):
		return keyErr("limits.requestTimeout", "%s is too short (at least 1s)", time.Duration(l.RequestTimeout))
	}
	return nil
}

func (cfg *Config) validateAPI() error {
	for i, h := range cfg.API.AllowHosts {
		if err := checkHostPattern(h); err != nil {
			return keyErr(fmt.Sprintf("api.allowHosts[%d]", i), "%v", err)
		}
	}
	for i, h := range cfg.API.DenyHosts {
		if err := checkHostPattern(h); err != nil {
			return keyErr(fmt.Sprintf("api.denyHosts[%d]", i), "%v", err)
		}
	}
	return nil
}

// statePath is where runtime camera changes are kept.
func (cfg *Config) statePath() string {
	p := cfg.API.StateFile
	if p == "" {
		name := cfg.configName
		if name == "" {
			name = "sightline"
		}
		p = name + ".state.json"
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(cfg.baseDir, p)
	}
	return p
}

type sourceKind int

const (
	kindRTSP sourceKind = iota
	kindFile
	kindWHIP // fed by a WHIP publisher (url "whip:")
)

// cameraKind tells RTSP, file and WHIP URLs apart without echoing credentials in errors.
func cameraKind(raw string) (sourceKind, error) {
	scheme, rest, ok := strings.Cut(raw, ":")
	if !ok {
		return 0, fmt.Errorf("%q has no scheme (want rtsp://, rtsps://, file: or whip:)", rtsp.Redact(raw))
	}
	switch strings.ToLower(scheme) {
	case "rtsp", "rtsps":
		return kindRTSP, nil
	case "file":
		return kindFile, nil
	case "whip":
		if rest != "" {
			return 0, fmt.Errorf("a WHIP camera's url is exactly \"whip:\" (publishers POST to /whip/<id>), not %q", rtsp.Redact(raw))
		}
		return kindWHIP, nil
	default:
		return 0, fmt.Errorf("unsupported scheme %q (want rtsp, rtsps, file or whip)", scheme)
	}
}

// filePath returns the absolute path of a file: URL: file:///abs/path, or file:rel/path resolved
// against the config file's folder.
func (cfg *Config) filePath(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("parse %q: %v", raw, err)
	}
	var p string
	switch {
	case u.Opaque != "":
		p = u.Opaque
	case u.Host != "" && u.Host != "localhost":
		return "", fmt.Errorf("%q: file URLs name a local path (file:///abs/path or file:relative/path), not host %q", raw, u.Host)
	default:
		p = u.Path
	}
	if p == "" {
		return "", fmt.Errorf("%q has no path", raw)
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(cfg.baseDir, p)
	}
	return filepath.Clean(p), nil
}
