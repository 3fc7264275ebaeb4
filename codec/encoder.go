package codec

/*
#include "bridge.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"time"
	"unsafe"

	"sightline/media"
)

// EncoderConfig configures an H.264 Encoder.
type EncoderConfig struct {
	Width, Height int
	// Format of the frames to encode (default I420).
	Format PixelFormat
	// Accel: "" or software = libx264 (ultrafast, zerolatency); cuda = h264_nvenc (system-memory frames,
	// uploaded by the encoder); vaapi = h264_vaapi (each frame is copied into a VAAPI surface from a pool
	// on the render node: av_hwframe_get_buffer + av_hwframe_transfer_data). The hardware paths have
	// been compiled, not run, on the machines this package was tested on (no /dev/dri, no GPU).
	Accel Accel
	// Device is the VAAPI render node (default: the first /dev/dri/renderD*) or the CUDA device index
	// (default 0) for the hardware encoders.
	Device string
	// BitrateBps is the target bitrate (default 2 Mbit/s), also the VBV max rate over one second.
	BitrateBps int
	// GOP is the number of frames between IDRs (default 50). ForceKeyframe adds IDRs on demand.
	GOP int
	// FPS is the nominal frame rate for rate control (default 25); PTS may vary.
	FPS int
	// Threads is the encoder's thread count (default 1).
	Threads int
}

// Encoder encodes frames into H.264 access units: no B-frames (output order = input order), SPS/PPS
// in-band before every IDR. Not safe for concurrent use.
type Encoder struct {
	cfg    EncoderConfig
	name   string
	ctx    *C.AVCodecContext
	in     *C.AVFrame     // our reference to the frame being sent
	dev    *C.AVBufferRef // VAAPI device (nil otherwise); ours, unref'd in Close
	frames *C.AVBufferRef // VAAPI surface pool on dev (nil otherwise); ours, unref'd in Close
	pkt    *C.AVPacket
	force  bool
	last   C.int64_t
	meta   [64]encMeta
	metaN  int
	closed bool
}

type encMeta struct {
	ticks C.int64_t
	pts   time.Duration
	rtp   uint32
	ntp   time.Time
}

// NewEncoder opens an encoder for cfg.
func NewEncoder(cfg EncoderConfig) (*Encoder, error) {
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width%2 != 0 || cfg.Height%2 != 0 {
		return nil, fmt.Errorf("open encoder: size %dx%d must be even and positive", cfg.Width, cfg.Height)
	}
	if cfg.Format == FormatUnknown {
		cfg.Format = FormatI420
	}
	if cfg.BitrateBps <= 0 {
		cfg.BitrateBps = 2_000_000
	}
	if cfg.GOP <= 0 {
		cfg.GOP = 50
	}
	if cfg.FPS <= 0 {
		cfg.FPS = 25
	}
	if cfg.Threads <= 0 {
		cfg.Threads = 1
	}
	name := "libx264"
	switch cfg.Accel {
	case "", AccelSoftware, AccelAuto:
		cfg.Accel = AccelSoftware
	case AccelCUDA:
		if err := cudaPresent(); err != nil {
			return nil, fmt.Errorf("open encoder h264_nvenc: %w", err)
		}
		name = "h264_nvenc"
	case AccelVAAPI:
		if _, err := renderNode(cfg.Device); err != nil {
			return nil, fmt.Errorf("open encoder h264_vaapi: %w", err)
		}
		name = "h264_vaapi"
	default:
		return nil, fmt.Errorf("open encoder: unknown accelerator %q", cfg.Accel)
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	codec := C.avcodec_find_encoder_by_name(cname)
	if codec == nil {
		return nil, fmt.Errorf("open encoder: libavcodec has no %s: %w", name, ErrUnavailable)
	}
	ctx := C.avcodec_alloc_context3(codec)
	if ctx == nil {
		return nil, averr("open encoder", C.SL_ENOMEM)
	}
	ctx.width, ctx.height = C.int(cfg.Width), C.int(cfg.Height)
	ctx.pix_fmt = int32(cfg.Format.av())
	var dev, frames *C.AVBufferRef
	if name == "h264_vaapi" {
		var err error
		if dev, frames, err = vaapiSurfaces(cfg); err != nil {
			C.avcodec_free_context(&ctx)
			return nil, fmt.Errorf("open encoder h264_vaapi: %w", err)
		}
		// Ownership: ctx gets its own reference to the pool (freed with the context); ours stays in e.
		ctx.pix_fmt = C.AV_PIX_FMT_VAAPI
		ctx.hw_frames_ctx = C.av_buffer_ref(frames)
		if ctx.hw_frames_ctx == nil {
			C.av_buffer_unref(&frames)
			C.av_buffer_unref(&dev)
			C.avcodec_free_context(&ctx)
			return nil, averr("open encoder h264_vaapi: av_buffer_ref", C.SL_ENOMEM)
		}
	}
	fail := func() {
		C.avcodec_free_context(&ctx)
		C.av_buffer_unref(&frames)
		C.av_buffer_unref(&dev)
	}
	ctx.time_base = C.AVRational{num: 1, den: media.VideoClockRate}
	ctx.framerate = C.AVRational{num: C.int(cfg.FPS), den: 1}
	ctx.bit_rate = C.int64_t(cfg.BitrateBps)
	ctx.rc_max_rate = C.int64_t(cfg.BitrateBps)
	ctx.rc_buffer_size = C.int(cfg.BitrateBps)
	ctx.gop_size = C.int(cfg.GOP)
	ctx.max_b_frames = 0
	ctx.thread_count = C.int(cfg.Threads)
	// No AV_CODEC_FLAG_GLOBAL_HEADER: the encoders then repeat SPS/PPS before every IDR.
	var opts map[string]string
	switch name {
	case "libx264":
		opts = map[string]string{"forced-idr": "1", "preset": "ultrafast", "tune": "zerolatency"}
	case "h264_nvenc":
		opts = map[string]string{"forced-idr": "1", "preset": "p1", "tune": "ull", "zerolatency": "1"}
	case "h264_vaapi":
		// A frame with pict_type I becomes an IDR (vaapi_encode's force_idr); SPS/PPS are written as
		// packed headers before every IDR; one frame in flight for latency.
		opts = map[string]string{"async_depth": "1"}
	}
	for k, v := range opts {
		ck, cv := C.CString(k), C.CString(v)
		ret := C.av_opt_set(ctx.priv_data, ck, cv, 0)
		C.free(unsafe.Pointer(ck))
		C.free(unsafe.Pointer(cv))
		if ret < 0 {
			fail()
			return nil, averr(fmt.Sprintf("open encoder %s: option %s=%s", name, k, v), ret)
		}
	}
	if ret := C.avcodec_open2(ctx, codec, nil); ret < 0 {
		fail()
		return nil, averr("open encoder "+name, ret)
	}
	e := &Encoder{cfg: cfg, name: name, ctx: ctx, in: C.av_frame_alloc(), pkt: C.av_packet_alloc(), last: -1,
		dev: dev, frames: frames}
	if e.in == nil || e.pkt == nil {
		e.Close()
		return nil, averr("open encoder", C.SL_ENOMEM)
	}
	return e, nil
}

// vaapiSurfaces opens the VAAPI device and a pool of surfaces of cfg's size holding cfg.Format pictures
// (NV12 natively; I420 relies on the driver's image conversion when uploading).
// Ownership: both references belong to the caller (av_buffer_unref); the pool holds its own reference
// to the device.
func vaapiSurfaces(cfg EncoderConfig) (dev, frames *C.AVBufferRef, err error) {
	dev, _, err = openDevice(AccelVAAPI, cfg.Device)
	if err != nil {
		return nil, nil, err
	}
	frames = C.av_hwframe_ctx_alloc(dev)
	if frames == nil {
		C.av_buffer_unref(&dev)
		return nil, nil, averr("av_hwframe_ctx_alloc", C.SL_ENOMEM)
	}
	fc := (*C.AVHWFramesContext)(unsafe.Pointer(frames.data))
	fc.format = C.AV_PIX_FMT_VAAPI
	fc.sw_format = int32(cfg.Format.av())
	fc.width, fc.height = C.int(cfg.Width), C.int(cfg.Height)
	fc.initial_pool_size = 8
	if ret := C.av_hwframe_ctx_init(frames); ret < 0 {
		C.av_buffer_unref(&frames)
		C.av_buffer_unref(&dev)
		return nil, nil, averr(fmt.Sprintf("av_hwframe_ctx_init(vaapi %v %dx%d)", cfg.Format, cfg.Width, cfg.Height), ret)
	}
	return dev, frames, nil
}

// Name returns the libavcodec encoder in use (libx264, h264_nvenc, h264_vaapi).
func (e *Encoder) Name() string { return e.name }

// ForceKeyframe makes the next encoded frame an IDR (a viewer joined or sent a PLI).
func (e *Encoder) ForceKeyframe() { e.force = true }

// Encode sends one frame and appends the access units that became ready to out (with libx264's
// zerolatency tuning: this frame's). The encoder takes its own reference to f's picture (av_frame_ref;
// h264_vaapi instead copies it into a surface), so the caller may Release f at once; call
// f.MakeWritable before drawing into it again.
func (e *Encoder) Encode(f *Frame, out []*media.AccessUnit) ([]*media.AccessUnit, error) {
	if e.closed {
		return out, ErrClosed
	}
	if f == nil || f.av == nil {
		return out, errors.New("encode: frame released")
	}
	if f.Width != e.cfg.Width || f.Height != e.cfg.Height || f.Format != e.cfg.Format {
		return out, fmt.Errorf("encode: frame %dx%d %v, encoder wants %dx%d %v", f.Width, f.Height, f.Format,
			e.cfg.Width, e.cfg.Height, e.cfg.Format)
	}
	if e.frames != nil {
		// Ownership: e.in gets a surface from the pool (returned to it by the unref below, or kept
		// by the encoder with its own reference) and f's picture is copied into it; f is untouched.
		if ret := C.av_hwframe_get_buffer(e.frames, e.in, 0); ret < 0 {
			return out, averr("encode: av_hwframe_get_buffer", ret)
		}
		if ret := C.av_hwframe_transfer_data(e.in, f.av, 0); ret < 0 {
			C.av_frame_unref(e.in)
			return out, averr("encode: av_hwframe_transfer_data (upload)", ret)
		}
		C.av_frame_copy_props(e.in, f.av)
	} else if ret := C.av_frame_ref(e.in, f.av); ret < 0 {
		return out, averr("encode: av_frame_ref", ret)
	}
	ticks := C.int64_t(f.PTS * media.VideoClockRate / time.Second)
	if ticks <= e.last {
		ticks = e.last + 1 // encoders need strictly increasing PTS
	}
	e.last = ticks
	e.in.pts = ticks
	e.in.pict_type = C.AV_PICTURE_TYPE_NONE
	if e.force {
		e.in.pict_type = C.AV_PICTURE_TYPE_I
		e.force = false
	}
	e.meta[e.metaN%len(e.meta)] = encMeta{ticks: ticks, pts: f.PTS, rtp: f.RTPTime, ntp: f.NTP}
	e.metaN++
	ret := C.avcodec_send_frame(e.ctx, e.in)
	C.av_frame_unref(e.in)
	if ret < 0 {
		return out, averr("encode: avcodec_send_frame", ret)
	}
	return e.receive(out)
}

// Flush drains the encoder at end of stream; it cannot be used afterwards.
func (e *Encoder) Flush(out []*media.AccessUnit) ([]*media.AccessUnit, error) {
	if e.closed {
		return out, ErrClosed
	}
	if ret := C.avcodec_send_frame(e.ctx, nil); ret < 0 && ret != C.SL_EOF {
		return out, averr("encode flush", ret)
	}
	return e.receive(out)
}

func (e *Encoder) receive(out []*media.AccessUnit) ([]*media.AccessUnit, error) {
	for {
		ret := C.avcodec_receive_packet(e.ctx, e.pkt)
		if ret == C.SL_EAGAIN || ret == C.SL_EOF {
			return out, nil
		}
		if ret < 0 {
			return out, averr("encode: avcodec_receive_packet", ret)
		}
		// Ownership: the packet's C buffer is copied into Go memory and dropped at once.
		data := C.GoBytes(unsafe.Pointer(e.pkt.data), e.pkt.size)
		au := &media.AccessUnit{Codec: media.CodecH264, NALUs: media.SplitAnnexB(data),
			Keyframe: e.pkt.flags&C.AV_PKT_FLAG_KEY != 0, Received: time.Now()}
		au.PTS = time.Duration(e.pkt.pts) * time.Second / media.VideoClockRate
		for _, m := range e.meta {
			if m.ticks == e.pkt.pts {
				au.PTS, au.RTPTime, au.NTP = m.pts, m.rtp, m.ntp
				break
			}
		}
		C.av_packet_unref(e.pkt)
		out = append(out, au)
	}
}

// Close frees the encoder.
func (e *Encoder) Close() {
	if e.closed {
		return
	}
	e.closed = true
	if e.ctx != nil {
		C.avcodec_free_context(&e.ctx)
	}
	if e.in != nil {
		C.av_frame_free(&e.in)
	}
	if e.pkt != nil {
		C.av_packet_free(&e.pkt)
	}
	if e.frames != nil {
		C.av_buffer_unref(&e.frames)
	}
	if e.dev != nil {
		C.av_buffer_unref(&e.dev)
	}
}
