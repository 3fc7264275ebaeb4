package webrtc

import (
	"github.com/pion/sdp/v3"

	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

func fixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type handlerEnv struct {
	srv *Server
	mux *http.ServeMux
}

func newHandlerEnv(t *testing.T, cfg Config) *handlerEnv {
	t.Helper()
	return newHandlerEnvTB(t, cfg)
}

func newHandlerEnvTB(t testing.TB, cfg Config) *handlerEnv {
	t.Helper()
	cfg.LoopbackOnly = true
	cfg.Logger = testLogger(t)
	srv, err := NewServer(cfg, newFakeResolver("cam1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	mux := http.NewServeMux()
	srv.Register(mux)
	return &handlerEnv{srv: srv, mux: mux}
}

func (h *handlerEnv) do(method, path, ctype, body string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.mux.ServeHTTP(rec, req)
	return rec
}

func requireJSONError(t *testing.T, rec *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d (body %s)", rec.Code, status, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error Content-Type %q", ct)
	}
	var e struct{ Error, Code string }
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, rec.Body.String())
	}
	if e.Code != code || e.Error == "" {
		t.Fatalf("error %+v, want code %q and a message", e, code)
	}
}

func TestWHEPErrors(t *testing.T) {
	checkGoroutines(t)
	h := newHandlerEnv(t, Config{})
	chromium := fixture(t, "chromium_offer_audio_video.sdp")
	cases := []struct {
		name, path, ctype, body string
		status                  int
		code                    string
	}{
		{"wrong content type", "/whep/cam1", "text/plain", chromium, 415, "unsupported_media_type"},
		{"no content type", "/whep/cam1", "", chromium, 415, "unsupported_media_type"},
		{"too large", "/whep/cam1", "application/sdp", strings.Repeat("a=x\r\n", 20000), 413, "body_too_large"},
		{"malformed", "/whep/cam1", "application/sdp", "this is not SDP", 400, "malformed_sdp"},
		{"empty", "/whep/cam1", "application/sdp", "", 400, "malformed_sdp"},
		{"unknown camera", "/whep/nope", "application/sdp", chromium, 404, "unknown_camera"},
		{"vp8 only", "/whep/cam1", "application/sdp", fixture(t, "vp8_only_offer.sdp"), 406, "unsupported_codec"},
		{"annotated not yet", "/whep/cam1/annotated", "application/sdp", chromium, 503, "stream_unavailable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			requireJSONError(t, h.do("POST", tc.path, tc.ctype, tc.body, nil), tc.status, tc.code)
		})
	}
	if n := h.srv.Viewers("cam1"); n != 0 {
		t.Fatalf("Viewers after refused offers = %d", n)
	}
}

// TestWHEPSessionLifecycle: browser offers (audio + video) are answered with the audio m-line rejected,
// and the session answers PATCH and DELETE on its Location.
func TestWHEPSessionLifecycle(t *testing.T) {
	checkGoroutines(t)
	for _, fx := range []string{"chromium_offer_audio_video.sdp", "firefox_offer_audio_video.sdp"} {
		t.Run(fx, func(t *testing.T) {
			h := newHandlerEnv(t, Config{ICEServers: []ICEServer{{URLs: []string{"stun:stun.example.net:3478"}}}})
			rec := h.do("POST", "/whep/cam1", "application/sdp; charset=utf-8", fixture(t, fx), nil)
			if rec.Code != 201 {
				t.Fatalf("POST: %d %s", rec.Code, rec.Body.String())
			}
			loc, etag := rec.Header().Get("Location"), rec.Header().Get("ETag")
			if !strings.HasPrefix(loc, "/whep/cam1/sessions/") || etag == "" {
				t.Fatalf("Location %q ETag %q", loc, etag)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/sdp" {
				t.Fatalf("Content-Type %q", ct)
			}
			if l := rec.Header().Get("Link"); !strings.Contains(l, `<stun:stun.example.net:3478>; rel="ice-server"`) {
				t.Fatalf("Link %q", l)
			}
			answer := rec.Body.String()
			if !strings.Contains(answer, "m=audio 0 ") {
				t.Fatalf("audio m-line not rejected in answer:\n%s", answer)
			}
			if !strings.Contains(answer, "H264/90000") || !strings.Contains(answer, "a=sendonly") {
				t.Fatalf("video not answered sendonly H264:\n%s", answer)
			}
			if !strings.Contains(answer, "a=candidate:") || !strings.Contains(answer, "127.0.0.1") {
				t.Fatalf("answer lacks the loopback candidate:\n%s", answer)
			}
			checkCandidatesOnBundleTag(t, answer)
			if strings.Contains(answer, "192.168.") {
				t.Fatalf("answer leaks a non-loopback address")
			}
			if h.srv.Viewers("cam1") != 1 {
				t.Fatalf("Viewers = %d", h.srv.Viewers("cam1"))
			}

			frag := "a=ice-ufrag:" + offerUfrag(t, fixture(t, fx)) + "\r\na=ice-pwd:whatever\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:1\r\n" +
				"a=candidate:1 1 udp 2122260223 127.0.0.1 40000 typ host\r\n" +
				"a=candidate:2 1 udp 2122260223 192.168.1.23 40001 typ host\r\na=end-of-candidates\r\n"
			if rec := h.do("PATCH", loc, "application/trickle-ice-sdpfrag", frag, map[string]string{"If-Match": etag}); rec.Code != 204 {
				t.Fatalf("PATCH: %d %s", rec.Code, rec.Body.String())
			}
			requireJSONError(t, h.do("PATCH", loc, "application/sdp", frag, nil), 415, "unsupported_media_type")
			requireJSONError(t, h.do("PATCH", loc, "application/trickle-ice-sdpfrag", frag, map[string]string{"If-Match": `"other"`}), 412, "etag_mismatch")
			restart := strings.Replace(frag, offerUfrag(t, fixture(t, fx)), "newufrag", 1)
			requireJSONError(t, h.do("PATCH", loc, "application/trickle-ice-sdpfrag", restart, nil), 501, "ice_restart_unsupported")
			requireJSONError(t, h.do("PATCH", loc, "application/trickle-ice-sdpfrag", "garbage line", nil), 400, "malformed_sdpfrag")
			requireJSONError(t, h.do("PATCH", "/whep/cam1/sessions/nope", "application/trickle-ice-sdpfrag", frag, nil), 404, "unknown_session")

			if rec := h.do("OPTIONS", loc, "", "", nil); rec.Code != 204 || !strings.Contains(rec.Header().Get("Allow"), "DELETE") {
				t.Fatalf("OPTIONS session: %d %v", rec.Code, rec.Header())
			}
			if rec := h.do("DELETE", loc, "", "", nil); rec.Code != 204 {
				t.Fatalf("DELETE: %d %s", rec.Code, rec.Body.String())
			}
			if h.srv.Viewers("cam1") != 0 {
				t.Fatalf("Viewers after DELETE = %d", h.srv.Viewers("cam1"))
			}
			if n := h.srv.streams.(*fakeResolver).streams["cam1"].Stats().Readers; n != 0 {
				t.Fatalf("stream readers after DELETE = %d", n)
			}
			requireJSONError(t, h.do("DELETE", loc, "", "", nil), 404, "unknown_session")
		})
	}
}

func offerUfrag(t *testing.T, offer string) string {
	t.Helper()
	info, e := parseOffer(offer, "H264")
	if e != nil {
		t.Fatal(e)
	}
	return info.ufrag
}

func TestWHEPOptions(t *testing.T) {
	h := newHandlerEnv(t, Config{ICEServers: []ICEServer{
		{URLs: []string{"stun:stun.example.net"}},
		{URLs: []string{"turn:turn.example.net:3478?transport=udp"}, Username: "user", Credential: "secret"},
	}})
	rec := h.do("OPTIONS", "/whep/cam1", "", "", nil)
	if rec.Code != 204 || rec.Header().Get("Accept-Post") != "application/sdp" {
		t.Fatalf("OPTIONS: %d %v", rec.Code, rec.Header())
	}
	links := rec.Header().Values("Link")
	want := []string{
		`<stun:stun.example.net>; rel="ice-server"`,
		`<turn:turn.example.net:3478?transport=udp>; rel="ice-server"; username="user"; credential="secret"; credential-type="password"`,
	}
	if strings.Join(links, "\n") != strings.Join(want, "\n") {
		t.Fatalf("Link headers:\n%s\nwant\n%s", strings.Join(links, "\n"), strings.Join(want, "\n"))
	}
}

func TestMaxSessions(t *testing.T) {
	checkGoroutines(t)
	h := newHandlerEnv(t, Config{MaxSessions: 1})
	offer := fixture(t, "chromium_offer_audio_video.sdp")
	if rec := h.do("POST", "/whep/cam1", "application/sdp", offer, nil); rec.Code != 201 {
		t.Fatalf("first POST: %d", rec.Code)
	}
	requireJSONError(t, h.do("POST", "/whep/cam1", "application/sdp", offer, nil), 503, "too_many_sessions")
}

func TestParseTrickleFrag(t *testing.T) {
	f, err := parseTrickleFrag("a=ice-ufrag:abc\r\na=ice-pwd:p\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\na=candidate:1 1 udp 1 127.0.0.1 5000 typ host\r\nm=video 9 RTP/AVP 0\r\na=mid:1\r\na=candidate:2 1 udp 1 127.0.0.1 5001 typ host\r\na=end-of-candidates\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if f.Ufrag != "abc" || f.Pwd != "p" || !f.EndOfCandidates || len(f.Candidates) != 2 ||
		f.Candidates[1].Mid != "1" || f.Candidates[1].MLineIndex != 1 || f.Candidates[0].Candidate != "candidate:1 1 udp 1 127.0.0.1 5000 typ host" {
		t.Fatalf("%+v", f)
	}
	for _, bad := range []string{"nonsense", "a=candidate:", "a=candidate:1 1 udp", "a=ice-ufrag:a\na=ice-ufrag:b"} {
		if _, err := parseTrickleFrag(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestStripNonLoopbackCandidates(t *testing.T) {
	info, e := parseOffer(fixture(t, "chromium_offer_audio_video.sdp"), "H264")
	if e != nil {
		t.Fatal(e)
	}
	if n := stripNonLoopbackCandidates(info.parsed); n != 4 {
		t.Fatalf("removed %d candidates, want 4", n)
	}
	b, _ := info.parsed.Marshal()
	if strings.Contains(string(b), "192.168.") || !strings.Contains(string(b), "127.0.0.1 53912") {
		t.Fatalf("strip result:\n%s", b)
	}
}

func TestRewriteRules(t *testing.T) {
	r := rewriteRules(Config{NAT1To1IPs: []string{"203.0.113.7"}, AdditionalHosts: []string{"198.51.100.2", "2001:db8::1"}})
	if len(r) != 2 || r[0].Mode != 1 || len(r[0].External) != 2 || r[1].External[0] != "2001:db8::1" {
		t.Fatalf("%+v", r)
	}
}

// checkCandidatesOnBundleTag fails unless the answer's candidates sit under its first m-line that is not
// rejected (the BUNDLE tag), none under a rejected one: browsers drop candidates of a rejected m-line.
func checkCandidatesOnBundleTag(t *testing.T, answer string) {
	t.Helper()
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(answer); err != nil {
		t.Fatalf("answer does not parse: %v", err)
	}
	tagged := false
	for _, md := range sd.MediaDescriptions {
		_, has := md.Attribute("candidate")
		switch {
		case md.MediaName.Port.Value == 0 && has:
			t.Fatalf("candidates under the rejected %s m-line:\n%s", md.MediaName.Media, answer)
		case md.MediaName.Port.Value != 0 && !tagged:
			if !has {
				t.Fatalf("no candidates under the first accepted m-line (%s):\n%s", md.MediaName.Media, answer)
			}
			tagged = true
		}
	}
}

func TestCandidatesOnBundleTag(t *testing.T) {
	const head = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 1\r\n"
	const cands = "a=candidate:1 1 udp 2130706431 127.0.0.1 8189 typ host\r\na=end-of-candidates\r\n"
	audio := "m=audio 0 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n"
	video := "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=rtpmap:96 H264/90000\r\n"

	moved := candidatesOnBundleTag(head + audio + cands + video)
	checkCandidatesOnBundleTag(t, moved)
	if strings.Count(moved, "a=end-of-candidates") != 1 || !strings.HasSuffix(moved, "typ host\r\na=end-of-candidates\r\n") {
		t.Fatalf("candidates not moved whole under the video m-line:\n%s", moved)
	}
	// An accepted first m-line keeps them; an unparsable or all-rejected answer is left as it is.
	for _, in := range []string{head + video + cands + audio, "not sdp", head + audio + cands + strings.Replace(video, "m=video 9", "m=video 0", 1)} {
		if got := candidatesOnBundleTag(in); got != in {
			t.Fatalf("changed:\n%s\ninto:\n%s", in, got)
		}
	}
}
