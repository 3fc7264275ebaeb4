package rtsp

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Redact returns rawURL with any user:pass@ replaced by ***@, so that it can be logged or shown in a
// status. A URL that does not parse is returned as "<invalid url>", never echoed (it may hold a password).
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" {
		return "<invalid url>"
	}
	if u.User == nil {
		return u.String()
	}
	u.User = nil
	s := u.String()
	// u.String() now reads scheme://host/...; put the mask where the credentials were.
	prefix := u.Scheme + "://"
	if strings.HasPrefix(s, prefix) {
		return prefix + "***@" + s[len(prefix):]
	}
	return s
}

// ValidateURL checks that rawURL is an rtsp:// or rtsps:// URL with a host. Its error messages are
// precise enough for a config file's validation report and never contain the URL's credentials.
func ValidateURL(rawURL string) error {
	if strings.TrimSpace(rawURL) == "" {
		return errors.New("url is empty")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error's text quotes parts of the input, which may be a password: never pass it on.
		return errors.New("url does not parse: check for spaces or unescaped characters (/ ? # @ %) in the user, password or host")
	}
	switch strings.ToLower(u.Scheme) {
	case "rtsp", "rtsps":
	case "":
		return errors.New("url has no scheme: want rtsp:// or rtsps://")
	default:
		return fmt.Errorf("url scheme %q is not supported: want rtsp or rtsps", u.Scheme)
	}
	if u.Opaque != "" {
		return fmt.Errorf("url %s has no host: want %s://host[:port]/path", Redact(rawURL), u.Scheme)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("url %s has no host", Redact(rawURL))
	}
	if p := u.Port(); p != "" {
		n := 0
		for _, c := range p {
			n = n*10 + int(c-'0')
			if n > 65535 {
				break
			}
		}
		if n == 0 || n > 65535 {
			return fmt.Errorf("url %s has port %s out of range 1-65535", Redact(rawURL), p)
		}
	}
	return nil
}
