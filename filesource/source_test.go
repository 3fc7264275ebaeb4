package filesource

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"sightline/internal/testenv"
	"sightline/media"
)

const streetH264 = "camera/cam_street_1280x720_25fps.h264"

func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			t.Errorf("goroutine leak: %d before, %d after", before, n)
		}
	})
}

// TestSplitMatchesFFprobe: the street asset splits into 250 access units with 10 keyframes, and each
// unit's size equals the size ffprobe's H.264 parser gives its packet (NAL bytes plus start codes).
func TestSplitMatchesFFprobe(t *testing.T) {
	path := testenv.Asset(t, streetH264)
	c, err := load(path)
	if err != nil {
		t.Fatal(err)
	}
	keys := 0
	for _, k := range c.keys {
		if k {
			keys++
		}
	}
	if len(c.aus) != 250 || keys != 10 {
		t.Fatalf("%d access units, %d keyframes; want 250 and 10", len(c.aus), keys)
	}
	if c.fps != 0 && c.fps != 25 {
		t.Fatalf("SPS fps %v", c.fps)
	}
	ffprobe := testenv.LookPath(t, "ffprobe", "ffmpeg")
	out, err := exec.Command(ffprobe, "-v", "error", "-show_entries", "packet=size,flags", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(strings.TrimSpace(string(out)))
	if len(lines) != len(c.aus) {
		t.Fatalf("ffprobe: %d packets, we: %d access units", len(lines), len(c.aus))
	}
	// Recover each unit's byte span in the file: from its first NAL unit's start code to the next
	// unit's, which is what ffprobe's parser reports.
	buf, _ := os.ReadFile(path)
	offset := func(n []byte) int {
		return int(uintptrDiff(buf, n))
	}
	for i, line := range lines {
		f := strings.Split(line, ",")
		size, _ := strconv.Atoi(f[0])
		begin := startCodeAt(buf, offset(c.aus[i][0]))
		end := len(buf)
		if i+1 < len(c.aus) {
			end = startCodeAt(buf, offset(c.aus[i+1][0]))
		}
		if end-begin != size {
			t.Fatalf("AU %d: %d bytes in the file, ffprobe packet %d bytes", i, end-begin, size)
		}
		if (f[1][0] == 'K') != c.keys[i] {
			t.Fatalf("AU %d: keyframe %v, ffprobe flags %q", i, c.keys[i], f[1])
		}
	}
}

// startCodeAt returns where the start code (00 00 01 with any leading zeros) before offset off begins.
func startCodeAt(buf []byte, off int) int {
	off-- // the 0x01
	for off > 0 && buf[off-1] == 0 {
		off--
	}
	return off
}

// uintptrDiff returns the offset of sub within buf (sub must alias buf).
func uintptrDiff(buf, sub []byte) int {
	return cap(buf) - cap(sub)
}

func writeClip(t *testing.T, aus [][][]byte) string {
	var all [][]byte
	for _, au := range aus {
		all = append(all, au...)
	}
	p := filepath.Join(t.TempDir(), "clip.h264")
	if err := os.WriteFile(p, media.JoinAnnexB(all), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPacingAcrossLoop plays a 30-frame clip at 25 fps for more than a loop: RTP timestamps step by
// 3600 and PTS by 40 ms throughout, across the loop point, and the payloads follow the file.
func TestPacingAcrossLoop(t *testing.T) {
	checkGoroutines(t)
	c, err := load(testenv.Asset(t, streetH264))
	if err != nil {
		t.Fatal(err)
	}
	clipAUs := c.aus[:30]
	path := writeClip(t, clipAUs)
	out := media.NewStream("file")
	rd := out.NewReader(256)
	defer rd.Close()
	src := New(Config{Path: path, FPS: 25, Loop: true}, out)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()

	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	var first, prev *media.AccessUnit
	for i := 0; i < 40; i++ {
		au, err := rd.Read(rctx)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = au
		}
		if prev != nil {
			if d := au.RTPTime - prev.RTPTime; d != 3600 {
				t.Fatalf("frame %d: RTP step %d", i, d)
			}
			if d := au.PTS - prev.PTS; d != 40*time.Millisecond {
				t.Fatalf("frame %d: PTS step %s", i, d)
			}
		}
		want := clipAUs[i%30]
		if len(au.NALUs) != len(want) || !bytes.Equal(au.NALUs[len(want)-1], want[len(want)-1]) {
			t.Fatalf("frame %d is not the clip's unit %d", i, i%30)
		}
		prev = au
	}
	if prev.RTPTime-first.RTPTime != 39*3600 {
		t.Fatalf("RTP span %d", prev.RTPTime-first.RTPTime)
	}
	st := src.Status()
	if st.State != media.StateStreaming || st.FPS <= 0 || st.Codec != media.CodecH264 || st.Frames < 40 {
		t.Fatalf("status %+v", st)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not stop within 2s of cancel")
	}
	if st := src.Status(); st.State != media.StateStopped {
		t.Fatalf("state %s after cancel", st.State)
	}
	if p := out.Params(); len(p.SPS) == 0 || len(p.PPS) == 0 {
		t.Fatalf("params %+v", p)
	}
}

// TestNoLoopEnds: without Loop, Run plays each unit once (fast here) and returns nil.
func TestNoLoopEnds(t *testing.T) {
	c, err := load(testenv.Asset(t, streetH264))
	if err != nil {
		t.Fatal(err)
	}
	path := writeClip(t, c.aus[:10])
	out := media.NewStream("file")
	rd := out.NewReader(64)
	defer rd.Close()
	src := New(Config{Path: path, FPS: 200}, out)
	if err := src.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := src.Status(); st.Frames != 10 || st.State != media.StateStopped {
		t.Fatalf("status %+v", st)
	}
}

func TestBadFiles(t *testing.T) {
	checkGoroutines(t)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.h264")
	garbage := filepath.Join(dir, "garbage.h264")
	onlySPS := filepath.Join(dir, "sps.h264")
	_ = os.WriteFile(empty, nil, 0o644)
	_ = os.WriteFile(garbage, bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 1000), 0o644)
	_ = os.WriteFile(onlySPS, media.JoinAnnexB([][]byte{{0x67, 0x42, 0xc0, 0x1f}, {0x68, 0xce}}), 0o644)
	for _, p := range []string{filepath.Join(dir, "missing.h264"), empty, garbage, onlySPS, filepath.Join(dir, "x.avi")} {
		src := New(Config{Path: p, Loop: true}, media.NewStream("t"))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		start := time.Now()
		err := src.Run(ctx)
		cancel()
		if err == nil || time.Since(start) > time.Second {
			t.Fatalf("%s: err %v after %s", p, err, time.Since(start))
		}
		if strings.HasSuffix(p, "missing.h264") && !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("missing file: %v is not ErrNotExist", err)
		}
		if st := src.Status(); st.LastError == "" || st.State != media.StateStopped {
			t.Fatalf("%s: status %+v", p, st)
		}
	}
}

// TestH265 encodes a 2 s H.265 clip with ffmpeg and plays it: 50 units, keyframe first, the VPS/SPS/PPS
// handed to the stream and the frame rate read from the SPS.
func TestH265(t *testing.T) {
	ffmpeg := testenv.LookPath(t, "ffmpeg", "ffmpeg")
	if out, _ := exec.Command(ffmpeg, "-hide_banner", "-encoders").Output(); !bytes.Contains(out, []byte("libx265")) {
		testenv.Unavailable(t, "ffmpeg lacks the libx265 encoder")
	}
	path := filepath.Join(t.TempDir(), "clip.h265")
	cmd := exec.Command(ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "2",
		"-c:v", "libx265", "-x265-params", "log-level=error:keyint=25:bframes=0", "-f", "hevc", path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	c, err := load(path)
	if err != nil {
		t.Fatal(err)
	}
	keys := 0
	for _, k := range c.keys {
		if k {
			keys++
		}
	}
	if len(c.aus) != 50 || keys != 2 || !c.keys[0] || c.fps != 25 {
		t.Fatalf("%d units, %d keyframes, fps %v", len(c.aus), keys, c.fps)
	}
	out := media.NewStream("h265")
	rd := out.NewReader(64)
	defer rd.Close()
	src := New(Config{Path: path, FPS: 250}, out) // fast: 0.2 s
	if err := src.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	au, err := rd.Read(context.Background())
	if err != nil || !au.Keyframe || au.Codec != media.CodecH265 {
		t.Fatalf("first unit %+v, %v", au, err)
	}
	if p := out.Params(); len(p.VPS) == 0 || len(p.SPS) == 0 || len(p.PPS) == 0 {
		t.Fatalf("params %+v", p)
	}
}

func TestSplitRules(t *testing.T) {
	// H.264: two slices of one picture (the second with first_mb_in_slice != 0), then a new picture
	// without AUD (first_mb == 0), then SEI after a slice opens a new unit.
	aus := SplitAccessUnits(media.CodecH264, [][]byte{
		{0x67, 1}, {0x68, 1}, {0x65, 0x88}, {0x65, 0x10}, // SPS PPS IDR(first) IDR(cont)
		{0x41, 0x9a},            // P first
		{0x06, 5}, {0x41, 0x9b}, // SEI then P
		{0x0a}, // end of sequence stays in the unit
	})
	if len(aus) != 3 || len(aus[0]) != 4 || len(aus[1]) != 1 || len(aus[2]) != 3 {
		t.Fatalf("H.264 split: %x", aus)
	}
	// H.265: AUD opens units; a slice segment with first_slice_segment_in_pic_flag = 0 stays.
	aus = SplitAccessUnits(media.CodecH265, [][]byte{
		{35 << 1, 1, 0x50}, {32 << 1, 1}, {33 << 1, 1}, {34 << 1, 1}, {19 << 1, 1, 0x80}, {19 << 1, 1, 0x20},
		{1 << 1, 1, 0x80}, {40 << 1, 1, 9}, // TRAIL first, suffix SEI stays
		{1 << 1, 1, 0x80},
	})
	if len(aus) != 3 || len(aus[0]) != 6 || len(aus[1]) != 2 || len(aus[2]) != 1 {
		t.Fatalf("H.265 split: %d units %x", len(aus), aus)
	}
}

func FuzzSplitAccessUnits(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x65, 0x88, 0, 0, 1, 0x41, 0x9a}, false)
	f.Add([]byte{0, 0, 1, 0x40, 1, 0, 0, 1, 0x26, 1, 0x80, 0, 0, 1, 0x02, 1, 0x80}, true)
	f.Fuzz(func(t *testing.T, data []byte, hevc bool) {
		codec := media.CodecH264
		if hevc {
			codec = media.CodecH265
		}
		nalus := media.SplitAnnexB(data)
		aus := SplitAccessUnits(codec, nalus)
		n := 0
		for _, au := range aus {
			if len(au) == 0 {
				t.Fatal("empty access unit")
			}
			vcl := false
			for _, nalu := range au {
				k := classify(codec, nalu)
				if k == nalInvalid {
					t.Fatal("invalid NAL unit kept")
				}
				vcl = vcl || k == nalSlice || k == nalFirstSlice
			}
			if !vcl {
				t.Fatal("access unit without a slice")
			}
			n += len(au)
		}
		if n > len(nalus) {
			t.Fatalf("%d NAL units out of %d in", n, len(nalus))
		}
	})
}
