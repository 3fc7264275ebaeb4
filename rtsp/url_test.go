package rtsp

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	cases := []struct{ in, want string }{
		{"rtsp://user:pass@h/p", "rtsp://***@h/p"},
		{"rtsp://user@h:554/p?x=1", "rtsp://***@h:554/p?x=1"},
		{"rtsps://a:b@10.0.0.1:322/live/ch0", "rtsps://***@10.0.0.1:322/live/ch0"},
		{"rtsp://h/p", "rtsp://h/p"},
		{"rtsp://u:p%40ss@[::1]:8554/x", "rtsp://***@[::1]:8554/x"},
		{"", "<invalid url>"},
		{"no scheme", "<invalid url>"},
		{"rtsp://us er:p@ss@h/p", "<invalid url>"},
		{"rtsp://user:pa/ss@host/p", "<invalid url>"}, // "user:pa" would be the host: port "pa" is invalid
	}
	for _, c := range cases {
		if got := Redact(c.in); got != c.want {
			t.Errorf("Redact(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	// A password that makes the URL's host unparsable must not come back in any form.
	if got := Redact("rtsp://user:pa/ss@host/p"); strings.Contains(got, "pa/ss") {
		t.Errorf("Redact leaked a password that broke the URL: %q", got)
	}
}

func TestValidateURL(t *testing.T) {
	cases := []struct {
		in      string
		wantErr string // "" = valid
	}{
		{"rtsp://cam.local/stream1", ""},
		{"rtsp://admin:pw@192.168.1.10:554/Streaming/Channels/101", ""},
		{"RTSPS://cam:322/x", ""},
		{"rtsp://[::1]:8554/cam1", ""},
		{"", "empty"},
		{"   ", "empty"},
		{"http://cam/x", `scheme "http" is not supported`},
		{"cam/x", "no scheme"},
		{"rtsp:///x", "no host"},
		{"rtsp:cam", "no host"},
		{"rtsp://cam:0/x", "out of range"},
		{"rtsp://cam:99999/x", "out of range"},
		{"rtsp://u:p w@cam/x", "does not parse"},
		{"rtsp://cam:12ab/x", "does not parse"},
	}
	for _, c := range cases {
		err := ValidateURL(c.in)
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("ValidateURL(%q) = %v, want nil", c.in, err)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("ValidateURL(%q) = %v, want error containing %q", c.in, err, c.wantErr)
		}
	}
	if err := ValidateURL("rtsp://user:Top5ecret@:0/x"); err == nil || strings.Contains(err.Error(), "Top5ecret") {
		t.Errorf("error leaks or misses: %v", err)
	}
}

func FuzzURL(f *testing.F) {
	for _, s := range []string{"rtsp://u:p@h/p", "rtsps://h:1/x?y#z", "rtsp://[::1]/", "rtsp://u:p/w@h/", "%zz", ""} {
		f.Add(s, "s3cret")
	}
	f.Fuzz(func(t *testing.T, raw, pass string) {
		_ = ValidateURL(raw)
		_ = Redact(raw)
		// Percent-escapes (%2F...) only hold digits and A-F: a password with a letter g-z cannot show
		// up by escaping accident.
		if len(pass) < 6 || strings.ContainsAny(pass, "@/?#%:[] \\") || !strings.ContainsAny(pass, "ghijklmnopqrstuvwxyz") {
			return
		}
		// With a password in the userinfo, neither function may return it.
		u := "rtsp://user:" + pass + "@" + raw
		if strings.Contains(Redact(u), pass) && !strings.Contains(strings.Replace(u, pass, "", 1), pass) {
			t.Fatalf("Redact(%q) = %q leaks the password", u, Redact(u))
		}
		if err := ValidateURL(u); err != nil && strings.Contains(err.Error(), pass) &&
			!strings.Contains(strings.Replace(u, pass, "", 1), pass) {
			t.Fatalf("ValidateURL(%q) = %v leaks the password", u, err)
		}
	})
}
