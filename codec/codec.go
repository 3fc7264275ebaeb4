// Package codec owns the bridge to FFmpeg's libavcodec and libswscale: H.264/H.265 decoding (VAAPI,
// CUDA/NVDEC or software), H.264 encoding (libx264, VAAPI, NVENC), letterboxing frames into model input
// tensors, thumbnails, JPEG snapshots and a probe of the accelerators present. It is the only cgo package
// of Sightline and must never let C memory outlive its Go owner or crash the process on bad input.
//
// # Building
//
// The package links the system FFmpeg libraries through pkg-config. On Debian 12:
//
//	apt-get install -y pkg-config libavcodec-dev libavutil-dev libswscale-dev libx264-dev
//
// (scripts/deps.sh installs them). Without them the build stops at
// "Package libavcodec was not found in the pkg-config search path": install the packages above. With
// CGO_ENABLED=0 the build stops at an undefined name that says the same (see nocgo.go).
//
// # Memory and ownership
//
// C memory is owned by exactly one Go value and freed by an explicit call, never by a finalizer:
//   - A *Frame returned by the Decoder (or NewFrame, Thumbnail) holds one reference (av_frame_ref
//     semantics) to libavutil's reference-counted buffers. Its Planes alias that C memory and are valid
//     until Release; Release drops the reference and clears Planes. Ref gives another reference (to hand
//     the same picture to another goroutine without copying); each reference is released on its own.
//   - Decoder, Encoder and Scaler own their AVCodecContext / SwsContext and free them in Close.
//   - Go memory is never stored in C memory: input access units are copied into packets from
//     av_new_packet (with AV_INPUT_BUFFER_PADDING_SIZE zero padding), and the Scaler writes into the
//     caller's []float32 from Go.
//
// A Decoder or Encoder is not safe for concurrent use: one goroutine per codec context. Frames may be
// used from any goroutine, and Release may be called from a different goroutine than the Decoder's.
package codec

/*
#cgo pkg-config: libavcodec libavutil libswscale
#include "bridge.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"time"
	"unsafe"
)

// Errors callers can test for with errors.Is.
var (
	// ErrCorrupt: an access unit could not be decoded (corrupt, truncated or missing references). The
	// decoder drops access units until the next keyframe.
	ErrCorrupt = errors.New("corrupt access unit")
	// ErrClosed: the Decoder or Encoder was used after Close.
	ErrClosed = errors.New("codec closed")
	// ErrUnavailable: the requested accelerator or codec is not present on this machine.
	ErrUnavailable = errors.New("not available")
)

// libavcodec logs decoding trouble to stderr; the package returns it as errors instead, so only fatal
// messages are printed. (libav's log level is process-wide; this is its only setting we touch.)
func init() {
	C.av_log_set_level(C.AV_LOG_FATAL)
}

// avError wraps a libav error code with its message.
type avError struct {
	code int
}

func (e avError) Error() string {
	var buf [128]C.char
	C.sl_err(C.int(e.code), &buf[0], C.size_t(len(buf)))
	return C.GoString(&buf[0])
}

func averr(op string, code C.int) error {
	return fmt.Errorf("%s: %w", op, avError{code: int(code)})
}

// PixelFormat is the memory layout of a frame's pictures.
type PixelFormat int

// Pixel formats a Frame can have. Decoders produce I420 (software) or NV12 (hardware surfaces brought
// down to memory).
const (
	FormatUnknown PixelFormat = iota
	FormatI420                // planar Y, U, V; chroma halved in both directions (AV_PIX_FMT_YUV420P/YUVJ420P)
	FormatNV12                // planar Y, interleaved UV; chroma halved in both directions
)

func (p PixelFormat) String() string {
	switch p {
	case FormatI420:
		return "i420"
	case FormatNV12:
		return "nv12"
	}
	return "unknown"
}

func pixFmtOf(f C.int) PixelFormat {
	switch f {
	case C.AV_PIX_FMT_YUV420P, C.AV_PIX_FMT_YUVJ420P:
		return FormatI420
	case C.AV_PIX_FMT_NV12:
		return FormatNV12
	}
	return FormatUnknown
}

// Colorimetry is the Y'CbCr to RGB matrix and the code range of a frame.
type Colorimetry struct {
	BT709     bool // BT.709 matrix; otherwise BT.601
	FullRange bool // 0-255 ("JPEG") range; otherwise 16-235 / 16-240
}

func (p PixelFormat) av() C.int {
	if p == FormatNV12 {
		return C.AV_PIX_FMT_NV12
	}
	return C.AV_PIX_FMT_YUV420P
}

// Frame is one decoded picture in CPU memory. See the package documentation for ownership: Planes alias
// C memory held by the frame and are valid until Release.
type Frame struct {
	Width, Height int
	Format        PixelFormat
	// Planes hold Y, U, V (I420) or Y, UV (NV12; Planes[2] is nil). Row r of plane i starts at
	// r*Strides[i]; rows may be padded beyond the visible width.
	Planes  [3][]byte
	Strides [3]int
	// PTS is the presentation time of the access unit the picture came from (carried through reordering).
	PTS time.Duration
	// RTPTime and NTP are copied from that access unit.
	RTPTime uint32
	NTP     time.Time
	// Keyframe is true for an IDR/IRAP picture.
	Keyframe bool
	// Corrupt is true when the decoder concealed errors in the picture (only with DecoderConfig.Conceal).
	Corrupt bool
	// Color describes how Y'CbCr maps to RGB (from the stream's VUI; BT.601 limited range when unsignalled).
	Color Colorimetry

	av *C.AVFrame // one reference; nil once released
}

// NewFrame allocates a writable frame of the given size and format in C memory (32-byte aligned rows).
// Release it when done.
func NewFrame(width, height int, format PixelFormat) (*Frame, error) {
	if width <= 0 || height <= 0 || width%2 != 0 || height%2 != 0 || width > 16384 || height > 16384 {
		return nil, fmt.Errorf("new frame %dx%d: dimensions must be even and in 2..16384", width, height)
	}
	if format != FormatI420 && format != FormatNV12 {
		return nil, fmt.Errorf("new frame: unsupported format %v", format)
	}
	av := C.av_frame_alloc()
	if av == nil {
		return nil, fmt.Errorf("new frame: %w", averr("av_frame_alloc", C.SL_ENOMEM))
	}
	av.width, av.height, av.format = C.int(width), C.int(height), format.av()
	if ret := C.av_frame_get_buffer(av, 32); ret < 0 {
		C.av_frame_free(&av)
		return nil, averr("new frame: av_frame_get_buffer", ret)
	}
	f := &Frame{}
	f.wrap(av)
	return f, nil
}

// wrap takes ownership of av (one reference) and points Planes at its data.
func (f *Frame) wrap(av *C.AVFrame) {
	f.av = av
	f.Width, f.Height = int(av.width), int(av.height)
	f.Format = pixFmtOf(C.int(av.format))
	f.Color = Colorimetry{
		BT709:     av.colorspace == C.AVCOL_SPC_BT709,
		FullRange: av.color_range == C.AVCOL_RANGE_JPEG || C.int(av.format) == C.AV_PIX_FMT_YUVJ420P,
	}
	f.Planes = [3][]byte{}
	f.Strides = [3]int{}
	n := 3
	if f.Format == FormatNV12 {
		n = 2
	}
	for i := 0; i < n; i++ {
		h := f.Height
		if i > 0 {
			h = (f.Height + 1) / 2
		}
		data := C.sl_frame_data(av, C.int(i))
		stride := int(C.sl_frame_linesize(av, C.int(i)))
		if data == nil || stride <= 0 {
			continue
		}
		f.Strides[i] = stride
		f.Planes[i] = unsafe.Slice((*byte)(unsafe.Pointer(data)), stride*h)
	}
}

// Release drops the frame's reference to its C memory; Planes become nil. Releasing twice is a no-op.
func (f *Frame) Release() {
	if f == nil || f.av == nil {
		return
	}
	C.av_frame_free(&f.av)
	f.av = nil
	f.Planes = [3][]byte{}
}

// Ref returns a new reference to the same picture (no pixel copy, av_frame_ref). Both frames must be
// released. Neither may be written to while the other is in use (see MakeWritable).
func (f *Frame) Ref() (*Frame, error) {
	if f.av == nil {
		return nil, errors.New("ref frame: frame released")
	}
	av := C.av_frame_clone(f.av)
	if av == nil {
		return nil, averr("ref frame: av_frame_clone", C.SL_ENOMEM)
	}
	g := *f
	g.wrap(av)
	return &g, nil
}

// MakeWritable makes sure the frame's planes are not shared with another reference (an Encoder still
// holding it, a Ref), copying them if they are (av_frame_make_writable). Call before drawing into a frame
// that was handed to someone else.
func (f *Frame) MakeWritable() error {
	if f.av == nil {
		return errors.New("make writable: frame released")
	}
	if ret := C.av_frame_make_writable(f.av); ret < 0 {
		return averr("make writable: av_frame_make_writable", ret)
	}
	f.wrap(f.av)
	return nil
}

// plane returns row-addressable views of the visible picture: plane i's width in bytes and height.
func (f *Frame) planeSize(i int) (w, h int) {
	switch {
	case i == 0:
		return f.Width, f.Height
	case f.Format == FormatNV12 && i == 1:
		return (f.Width + 1) / 2 * 2, (f.Height + 1) / 2
	case f.Format == FormatI420:
		return (f.Width + 1) / 2, (f.Height + 1) / 2
	}
	return 0, 0
}
