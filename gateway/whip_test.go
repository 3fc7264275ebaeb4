package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	pwebrtc "github.com/pion/webrtc/v4"

	"sightline/internal/rtsptest"
	"sightline/internal/testenv"
	"sightline/internal/whepclient"
	"sightline/internal/whipclient"
	"sightline/media"
)

// sentAU is what a test publisher sent with one RTP timestamp (without AUDs, which the payloader drops).
type sentAU struct {
	nalus    [][]byte
	keyframe bool
}

// testPublisher is a WHIP publisher streaming the street clip at 25 fps until the test ends or Close.
type testPublisher struct {
	*whipclient.Client
	mu     sync.Mutex
	sent   map[uint32]sentAU
	cancel context.CancelFunc
	done   chan struct{}
}

func (p *testPublisher) find(ts uint32) (sentAU, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	au, ok := p.sent[ts]
	return au, ok
}

// stop ends the sending loop and the session (DELETE).
func (p *testPublisher) stop(t *testing.T) {
	p.cancel()
	<-p.done
	if err := p.Close(); err != nil {
		t.Errorf("publisher close: %v", err)
	}
}

func publish(t *testing.T, g *Gateway, camera string, tsBase uint32) *testPublisher {
	t.Helper()
	raw, err := os.ReadFile(testenv.Asset(t, "camera/cam_street_1280x720_25fps.h264"))
	if err != nil {
		t.Fatal(err)
	}
	aus := rtsptest.SplitAUD(raw)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := whipclient.Dial(ctx, "http://"+g.HTTPAddr()+"/whip/"+camera, whipclient.Options{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitConnected(ctx); err != nil {
		_ = c.Close()
		t.Fatalf("publisher connect: %v", err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	p := &testPublisher{Client: c, sent: map[uint32]sentAU{}, cancel: stop, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(40 * time.Millisecond) // 25 fps
		defer tick.Stop()
		ts := tsBase
		for i := 0; ; i++ {
			au := aus[i%len(aus)]
			p.mu.Lock()
			p.sent[ts] = sentAU{nalus: withoutAUD(au), keyframe: media.IsKeyframe(media.CodecH264, au)}
			p.mu.Unlock()
			if err := c.WriteAccessUnit(au, ts); err != nil {
				return
			}
			ts += 3600 // 90 kHz / 25 fps
			select {
			case <-runCtx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() {
		stop()
		<-p.done
		_ = c.Close()
	})
	return p
}

// checkFrames reads n frames from a viewer, starting at its first keyframe, and checks each against what
// the publisher sent with its RTP timestamp: same NAL units, same keyframe flag, in order.
func checkFrames(t *testing.T, v *whepclient.Client, p *testPublisher, n int) {
	t.Helper()
	first := nextFrame(t, v, 5*time.Second)
	for !first.Keyframe {
		first = nextFrame(t, v, 3*time.Second)
	}
	frames := []whepclient.Frame{first}
	for len(frames) < n {
		frames = append(frames, nextFrame(t, v, 2*time.Second))
	}
	for i, f := range frames {
		sent, ok := p.find(f.RTPTime)
		if !ok {
			t.Fatalf("frame %d: RTP timestamp %d was never sent by the publisher", i, f.RTPTime)
		}
		if i > 0 && f.RTPTime-frames[i-1].RTPTime > 1<<31 {
			t.Fatalf("frame %d out of order", i)
		}
		if f.Keyframe != sent.keyframe {
			t.Fatalf("frame %d: keyframe %v, publisher sent %v", i, f.Keyframe, sent.keyframe)
		}
		if !rtsptest.SameNALUs(f.NALUs, sent.nalus) {
			t.Fatalf("frame %d (ts %d): payload differs from what the publisher sent", i, f.RTPTime)
		}
	}
}

func drain(v *whepclient.Client) {
	for {
		select {
		case <-v.Frames():
		case <-time.After(300 * time.Millisecond):
			return
		}
	}
}

// A WHIP publisher feeds a whip: camera; a WHEP viewer gets its access units byte-identical with the
// publisher's RTP timestamps and keyframe flags; a second publisher is refused; a viewer's keyframe
// request reaches the publisher as a PLI; after the publisher leaves the camera waits, and the viewer,
// still connected, gets the next publisher's frames.
func TestWHIPIngest(t *testing.T) {
	g, logs := startGateway(t, "cameras:\n  - {id: pub, url: 'whip:'}\n")
	if st := cameraStatus(t, g, "pub").Status; st.State != media.StateWaiting || st.Transport != "whip" {
		t.Fatalf("before any publisher: %+v", st)
	}
	p1 := publish(t, g, "pub", 0xfffff000) // the timestamp wraps early on
	if ans := p1.Answer(); !strings.Contains(ans, "a=recvonly") || strings.Count(ans, "a=rtpmap:") != 1 {
		t.Fatalf("answer should receive video with one codec:\n%s", ans)
	}
	waitFor(t, 10*time.Second, "streaming", func() bool {
		return cameraStatus(t, g, "pub").Status.State == media.StateStreaming
	})
	if st := cameraStatus(t, g, "pub").Status; !strings.HasPrefix(st.Publisher, "127.0.0.1:") || st.Codec != media.CodecH264 {
		t.Fatalf("while streaming: %+v", st)
	}

	v := dialViewer(t, g, "pub")
	checkFrames(t, v, p1, 60)

	// One publisher at a time.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var se *whipclient.StatusError
	if c, err := whipclient.Dial(ctx, "http://"+g.HTTPAddr()+"/whip/pub", whipclient.Options{LoopbackOnly: true}); err == nil {
		_ = c.Close()
		t.Fatal("a second publisher was accepted")
	} else if !errors.As(err, &se) || se.Code != 409 || !strings.Contains(se.Body, `"publisher_exists"`) {
		t.Fatalf("second publisher: %v", err)
	}

	// A viewer's PLI becomes a PLI to the publisher.
	before := p1.PLIs()
	v2, err := whepclient.Dial(ctx, "http://"+g.HTTPAddr()+"/whep/pub", whepclient.Options{LoopbackOnly: true, SendPLI: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	waitFor(t, 10*time.Second, "a PLI at the publisher", func() bool { return p1.PLIs() > before })

	// The publisher leaves: the camera waits, and the viewer stays.
	p1.stop(t)
	waitFor(t, 10*time.Second, "waiting again", func() bool {
		st := cameraStatus(t, g, "pub").Status
		return st.State == media.StateWaiting && st.Publisher == "" && strings.Contains(st.LastError, "DELETE")
	})
	drain(v)
	p2 := publish(t, g, "pub", 12345)
	checkFrames(t, v, p2, 30)
	st := cameraStatus(t, g, "pub")
	if st.Viewers < 1 || st.Status.RestartCount != 1 || st.Status.State != media.StateStreaming {
		t.Fatalf("after the second publisher: %+v", st)
	}
	if !strings.Contains(logs.String(), "publisher session started") {
		t.Fatal("publisher sessions are not logged")
	}
}

// WHIP's error table: every refusal is {"error","code"} with a precise status.
func TestWHIPErrors(t *testing.T) {
	g, _ := startGateway(t, "cameras:\n  - {id: pub, url: 'whip:'}\n  - {id: pull, url: 'rtsp://127.0.0.1:1/x'}\n")
	const head = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
	vp8 := head + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\n"
	recvonly := head + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;profile-level-id=42e01f\r\n"
	audio := head + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=rtpmap:111 opus/48000/2\r\n"
	for _, c := range []struct {
		name, path, ctype, body string
		status                  int
		code                    string
	}{
		{"unknown camera", "/whip/nope", "application/sdp", vp8, 404, "unknown_camera"},
		{"pulling camera", "/whip/pull", "application/sdp", vp8, 409, "not_whip_camera"},
		{"wrong content type", "/whip/pub", "text/plain", vp8, 415, "unsupported_media_type"},
		{"malformed SDP", "/whip/pub", "application/sdp", "hello", 400, "malformed_sdp"},
		{"empty SDP", "/whip/pub", "application/sdp", "", 400, "malformed_sdp"},
		{"no H.264", "/whip/pub", "application/sdp", vp8, 406, "unsupported_codec"},
		{"video not sent", "/whip/pub", "application/sdp", recvonly, 406, "no_video"},
		{"audio only", "/whip/pub", "application/sdp", audio, 406, "no_video"},
	} {
		code, m, _ := apiDo(t, g, "POST", c.path, "", c.ctype, c.body)
		if code != c.status || m["code"] != c.code || m["error"] == "" {
			t.Errorf("%s: %d %v, want %d %s", c.name, code, m, c.status, c.code)
		}
	}
	for _, method := range []string{"PATCH", "DELETE"} {
		code, m, _ := apiDo(t, g, method, "/whip/pub/sessions/nope", "", "application/trickle-ice-sdpfrag", "a=ice-ufrag:x\r\n")
		if code != 404 || m["code"] != "unknown_session" {
			t.Errorf("%s of an unknown session: %d %v", method, code, m)
		}
	}
	// A publisher offering audio and video (OBS does) gets the audio m-line rejected, not a refusal;
	// the answer names the one H.264 codec picked from the offer (packetization-mode 1, 42e01f first).
	// (pion's own client cannot apply such an answer to a sending audio track, so the offer is only
	// answered here and the session deleted.)
	offer := pionOffer(t)
	post := func() (int, string, http.Header) {
		resp, err := http.Post("http://"+g.HTTPAddr()+"/whip/pub", "application/sdp", strings.NewReader(offer))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	code, answer, h := post()
	if code != 201 || !strings.HasPrefix(h.Get("Location"), "/whip/pub/sessions/") || h.Get("ETag") == "" {
		t.Fatalf("audio+video offer: %d %s", code, answer)
	}
	if !strings.Contains(answer, "m=audio 0 ") || !strings.Contains(answer, "m=video 9 UDP/TLS/RTP/SAVPF 102\r\n") ||
		strings.Count(answer, "a=rtpmap:") != 1 || !strings.Contains(answer, "packetization-mode=1;profile-level-id=42e01f") ||
		!strings.Contains(answer, "a=recvonly") {
		t.Fatalf("answer:\n%s", answer)
	}
	if code, body, _ := post(); code != 409 || !strings.Contains(body, `"publisher_exists"`) {
		t.Fatalf("a second offer while one is set up: %d %s", code, body)
	}
	if st := cameraStatus(t, g, "pub").Status; st.State != media.StateConnecting || st.Publisher == "" {
		t.Fatalf("while a publisher connects: %+v", st)
	}
	// Trickle: the publisher's candidates PATCHed to its session (RFC 9725 §4.3.1).
	ufrag := regexp.MustCompile(`a=ice-ufrag:(\S+)`).FindStringSubmatch(offer)[1]
	frag := "a=ice-ufrag:" + ufrag + "\r\na=ice-pwd:whatever\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:1\r\n" +
		"a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n"
	patch := func(etag, body string) (int, map[string]any) {
		code, m, _ := apiDoHeaders(t, g, "PATCH", h.Get("Location"), "application/trickle-ice-sdpfrag", body, map[string]string{"If-Match": etag})
		return code, m
	}
	if code, m := patch(h.Get("ETag"), frag); code != 204 {
		t.Fatalf("trickle PATCH: %d %v", code, m)
	}
	if code, m := patch(`"stale"`, frag); code != 412 || m["code"] != "etag_mismatch" {
		t.Fatalf("PATCH with a stale ETag: %d %v", code, m)
	}
	if code, m := patch(h.Get("ETag"), strings.Replace(frag, ufrag, "restart", 1)); code != 501 || m["code"] != "ice_restart_unsupported" {
		t.Fatalf("ICE restart PATCH: %d %v", code, m)
	}
	if code, _, _ := apiDo(t, g, "DELETE", h.Get("Location"), "", "", ""); code != 204 {
		t.Fatalf("DELETE: %d", code)
	}
	code, _, h = apiDo(t, g, "OPTIONS", "/whip/pub", "", "", "")
	if code != 204 || h.Get("Accept-Post") != "application/sdp" {
		t.Errorf("OPTIONS: %d %v", code, h)
	}
	if st := cameraStatus(t, g, "pub").Status; st.State != media.StateWaiting {
		t.Fatalf("refused offers left the camera %+v", st)
	}
}

func TestWHIPCameraConfig(t *testing.T) {
	for _, c := range []struct{ yaml, key string }{
		{"cameras: [{id: a, url: 'whip:x'}]\n", "cameras[0].url"},
		{"cameras: [{id: a, url: 'whip://host/a'}]\n", "cameras[0].url"},
		{"cameras: [{id: a, url: 'whip:', username: u, password: p}]\n", "cameras[0].username"},
	} {
		_, err := ParseConfig([]byte(noAuth+c.yaml), t.TempDir())
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Key != c.key {
			t.Errorf("%q: %v, want an error naming %s", c.yaml, err, c.key)
		}
	}
	if _, err := ParseConfig([]byte(noAuth+"cameras: [{id: a, url: 'whip:'}, {id: b, url: 'WHIP:'}]\n"), t.TempDir()); err != nil {
		t.Fatal(err)
	}
}

// pionOffer is a publisher's offer as a browser would make it: sendonly audio (Opus) and video (H.264 in
// several profiles and both packetization modes).
func pionOffer(t *testing.T) string {
	t.Helper()
	me := &pwebrtc.MediaEngine{}
	for i, fmtp := range []string{
		"level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f",
		"level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f",
		"level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
	} {
		if err := me.RegisterCodec(pwebrtc.RTPCodecParameters{PayloadType: pwebrtc.PayloadType(100 + i),
			RTPCodecCapability: pwebrtc.RTPCodecCapability{MimeType: pwebrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: fmtp}},
			pwebrtc.RTPCodecTypeVideo); err != nil {
			t.Fatal(err)
		}
	}
	if err := me.RegisterCodec(pwebrtc.RTPCodecParameters{PayloadType: 111,
		RTPCodecCapability: pwebrtc.RTPCodecCapability{MimeType: pwebrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}},
		pwebrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	se := pwebrtc.SettingEngine{}
	se.SetNetworkTypes([]pwebrtc.NetworkType{pwebrtc.NetworkTypeUDP4})
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	pc, err := pwebrtc.NewAPI(pwebrtc.WithMediaEngine(me), pwebrtc.WithSettingEngine(se)).NewPeerConnection(pwebrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	sendonly := pwebrtc.RTPTransceiverInit{Direction: pwebrtc.RTPTransceiverDirectionSendonly}
	for _, kind := range []pwebrtc.RTPCodecType{pwebrtc.RTPCodecTypeAudio, pwebrtc.RTPCodecTypeVideo} {
		if _, err := pc.AddTransceiverFromKind(kind, sendonly); err != nil {
			t.Fatal(err)
		}
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return offer.SDP // without candidates: the answer is all this test checks
}
