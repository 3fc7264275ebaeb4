package gateway

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"sightline/rtsp"
)

// checkHostPattern accepts an IP, a CIDR, a host name or "*.domain".
func checkHostPattern(p string) error {
	if p == "" {
		return fmt.Errorf("empty host pattern")
	}
	if strings.Contains(p, "/") {
		if _, err := netip.ParsePrefix(p); err != nil {
			return fmt.Errorf("%q is not a CIDR like 10.0.0.0/8", p)
		}
		return nil
	}
	if _, err := netip.ParseAddr(p); err == nil {
		return nil
	}
	name := strings.TrimPrefix(p, "*.")
	if name == "" || strings.ContainsAny(name, " :/@*") {
		return fmt.Errorf("%q is not an IP, CIDR, host name or *.domain", p)
	}
	return nil
}

// hostMatches reports whether host (a name or an IP) or any of its addresses matches pattern.
func hostMatches(pattern, host string, addrs []netip.Addr) bool {
	if strings.Contains(pattern, "/") {
		pfx, err := netip.ParsePrefix(pattern)
		if err != nil {
			return false
		}
		for _, a := range addrs {
			if pfx.Contains(a.Unmap()) {
				return true
			}
		}
		return false
	}
	if ip, err := netip.ParseAddr(pattern); err == nil {
		for _, a := range addrs {
			if a.Unmap() == ip.Unmap() {
				return true
			}
		}
		return false
	}
	pattern = strings.ToLower(pattern)
	if suffix, ok := strings.CutPrefix(pattern, "*."); ok {
		return strings.HasSuffix(host, "."+suffix)
	}
	return host == pattern
}

// checkAPICamera applies the URL policy to a camera created or changed through the API: rtsp and rtsps
// to hosts the allow/deny lists permit, file: only inside api.mediaDir, whip: always. Errors never echo credentials.
func (cfg *Config) checkAPICamera(ctx context.Context, c CameraConfig) error {
	kind, err := cameraKind(c.URL)
	if err != nil {
		return keyErr("url", "%v", err)
	}
	if kind == kindWHIP {
		return nil // nothing is dialed: publishers come to Sightline
	}
	if kind == kindFile {
		if cfg.API.MediaDir == "" {
			return keyErr("url", "file: cameras cannot be created through the API unless api.mediaDir is configured")
		}
		p, err := cfg.filePath(c.URL)
		if err != nil {
			return keyErr("url", "%v", err)
		}
		dir := cfg.API.MediaDir
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(cfg.baseDir, dir)
		}
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			dir = real
		}
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
			return keyErr("url", "file: cameras must be inside the media folder (api.mediaDir)")
		}
		return nil
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return keyErr("url", "%q is not a URL", rtsp.Redact(c.URL))
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if len(cfg.API.AllowHosts) == 0 && len(cfg.API.DenyHosts) == 0 {
		return nil
	}
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else {
		// Check the addresses the name points to now as well, so a name cannot smuggle a denied IP.
		// (A name re-pointed later is not caught: list names, not only CIDRs, where that matters.)
		lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		ips, err := net.DefaultResolver.LookupNetIP(lctx, "ip", host)
		cancel()
		if err != nil {
			return keyErr("url", "host %q does not resolve: %v", host, err)
		}
		addrs = ips
	}
	for _, d := range cfg.API.DenyHosts {
		if hostMatches(d, host, addrs) {
			return keyErr("url", "host %q is not allowed (api.denyHosts)", host)
		}
	}
	if len(cfg.API.AllowHosts) > 0 {
		for _, a := range cfg.API.AllowHosts {
			if hostMatches(a, host, addrs) {
				return nil
			}
		}
		return keyErr("url", "host %q is not in api.allowHosts", host)
	}
	return nil
}
