package gateway

import (
	"fmt"
	"testing"
	"time"

	"sightline/internal/testenv"
)

// The camera view splits its viewers by track: one raw and one annotated WHEP viewer show as
// viewersRaw 1, viewersAnnotated 1 and viewers 2 (the total), in the camera and in the list.
func TestViewersByVariant(t *testing.T) {
	clip := testenv.Asset(t, "camera/cam_street_1280x720_25fps.h264")
	g, _ := startGateway(t, fmt.Sprintf("cameras:\n  - {id: street, url: 'file://%s'}\n", clip))
	raw := dialViewer(t, g, "street")
	ann := dialViewer(t, g, "street/annotated")
	waitFor(t, 10*time.Second, "two viewers", func() bool {
		v := cameraStatus(t, g, "street")
		return v.Viewers == 2 && v.ViewersRaw == 1 && v.ViewersAnnotated == 1
	})
	var list struct{ Cameras []cameraView }
	if code := getJSON(t, "http://"+g.HTTPAddr()+"/api/v1/cameras", &list); code != 200 || len(list.Cameras) != 1 {
		t.Fatalf("list: %d %+v", code, list)
	}
	if v := list.Cameras[0]; v.Viewers != 2 || v.ViewersRaw != 1 || v.ViewersAnnotated != 1 {
		t.Fatalf("list view: viewers %d raw %d annotated %d", v.Viewers, v.ViewersRaw, v.ViewersAnnotated)
	}
	_ = ann.Close()
	waitFor(t, 10*time.Second, "the annotated viewer gone", func() bool {
		v := cameraStatus(t, g, "street")
		return v.Viewers == 1 && v.ViewersRaw == 1 && v.ViewersAnnotated == 0
	})
	_ = raw.Close()
	waitFor(t, 10*time.Second, "no viewers", func() bool {
		v := cameraStatus(t, g, "street")
		return v.Viewers == 0 && v.ViewersRaw == 0 && v.ViewersAnnotated == 0
	})
}
