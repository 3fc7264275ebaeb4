package codec

/*
#include "bridge.h"
*/
import "C"

import (
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"path/filepath"
	"unsafe"
)

// EncodeJPEG writes f as a JPEG (Go's image/jpeg straight on the Y'CbCr planes; NV12 chroma is
// de-interleaved first). quality is 1-100 (0 means 80).
func EncodeJPEG(w io.Writer, f *Frame, quality int) error {
	if f == nil || f.Planes[0] == nil {
		return fmt.Errorf("jpeg: frame released or empty")
	}
	if quality <= 0 {
		quality = 80
	}
	img := &image.YCbCr{
		Y: f.Planes[0], YStride: f.Strides[0], SubsampleRatio: image.YCbCrSubsampleRatio420,
		Rect: image.Rect(0, 0, f.Width, f.Height),
	}
	switch f.Format {
	case FormatI420:
		img.Cb, img.Cr, img.CStride = f.Planes[1], f.Planes[2], f.Strides[1]
	case FormatNV12:
		cw, ch := (f.Width+1)/2, (f.Height+1)/2
		img.Cb, img.Cr, img.CStride = make([]byte, cw*ch), make([]byte, cw*ch), cw
		for y := 0; y < ch; y++ {
			row := f.Planes[1][y*f.Strides[1]:]
			for x := 0; x < cw; x++ {
				img.Cb[y*cw+x], img.Cr[y*cw+x] = row[2*x], row[2*x+1]
			}
		}
	default:
		return fmt.Errorf("jpeg: unsupported pixel format %v", f.Format)
	}
	if err := jpeg.Encode(w, img, &jpeg.Options{Quality: quality}); err != nil {
		return fmt.Errorf("jpeg: %w", err)
	}
	return nil
}

// Capabilities is what Probe found: for GET /api/v1/hw-accel-cap.
type Capabilities struct {
	Libavcodec string          `json:"libavcodec"`
	Accels     []AccelStatus   `json:"accelerators"`
	Decoders   map[string]bool `json:"decoders"`
	Encoders   map[string]bool `json:"encoders"`
}

// AccelStatus says whether an accelerator can be used here and why not.
type AccelStatus struct {
	Accel     Accel  `json:"accel"`
	Device    string `json:"device,omitempty"`
	Available bool   `json:"available"`
	Reason    string `json:"reason,omitempty"`
}

// Probe lists the accelerators (device nodes, and whether libavutil can open a device on them) and the
// H.264/H.265 decoders and encoders compiled into libavcodec.
func Probe() Capabilities {
	v := C.avcodec_version()
	c := Capabilities{
		Libavcodec: fmt.Sprintf("%d.%d.%d", v>>16, (v>>8)&0xff, v&0xff),
		Decoders:   map[string]bool{},
		Encoders:   map[string]bool{},
	}
	for _, a := range []Accel{AccelVAAPI, AccelCUDA} {
		st := AccelStatus{Accel: a}
		if a == AccelVAAPI {
			nodes, _ := filepath.Glob("/dev/dri/renderD*")
			if len(nodes) > 0 {
				st.Device = nodes[0]
			}
		} else if cudaPresent() == nil {
			st.Device = "/dev/nvidia0"
		}
		dev, _, err := openDevice(a, "")
		if err != nil {
			st.Reason = err.Error()
		} else {
			st.Available = true
			C.av_buffer_unref(&dev)
		}
		c.Accels = append(c.Accels, st)
	}
	c.Accels = append(c.Accels, AccelStatus{Accel: AccelSoftware, Available: true})
	for _, n := range []string{"h264", "hevc", "h264_cuvid", "hevc_cuvid"} {
		cn := C.CString(n)
		c.Decoders[n] = C.avcodec_find_decoder_by_name(cn) != nil
		C.free(unsafe.Pointer(cn))
	}
	for _, n := range []string{"libx264", "h264_nvenc", "h264_vaapi", "mjpeg"} {
		cn := C.CString(n)
		c.Encoders[n] = C.avcodec_find_encoder_by_name(cn) != nil
		C.free(unsafe.Pointer(cn))
	}
	return c
}
