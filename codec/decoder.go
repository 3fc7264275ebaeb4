package codec

/*
#include "bridge.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
	"unsafe"

	"sightline/media"
)

// Accel names a decoding/encoding path.
type Accel string

// Accelerators. AccelAuto tries VAAPI, then CUDA, then software.
const (
	AccelAuto     Accel = "auto"
	AccelVAAPI    Accel = "vaapi"
	AccelCUDA     Accel = "cuda"
	AccelSoftware Accel = "software"
)

// ParseAccel checks a configured accelerator name ("" means auto).
func ParseAccel(s string) (Accel, error) {
	switch a := Accel(s); a {
	case "":
		return AccelAuto, nil
	case AccelAuto, AccelVAAPI, AccelCUDA, AccelSoftware:
		return a, nil
	}
	return "", fmt.Errorf("unknown accelerator %q (want auto, vaapi, cuda or software)", s)
}

// AccelAttempt records an accelerator that was tried and not used, and why.
type AccelAttempt struct {
	Accel  Accel
	Reason string
}

// DecoderConfig configures a Decoder.
type DecoderConfig struct {
	Codec media.Codec
	// Params are the stream's out-of-band parameter sets (optional when they come in-band).
	Params media.Params
	// Accel is the preferred path; "" or AccelAuto tries VAAPI, CUDA, then software. An explicit
	// hardware choice that cannot open is an error (no silent fallback).
	Accel Accel
	// Device overrides the device: a VAAPI render node (default: the first /dev/dri/renderD*) or a CUDA
	// device index (default: 0).
	Device string
	// Threads is libavcodec's thread count (0 means 1: one thread per stream, many streams across cores).
	Threads int
	// KeyframesOnly makes the decoder skip every non-key picture (skip_frame=nokey): cheap sampling.
	KeyframesOnly bool
	// Conceal passes on pictures in which the decoder concealed errors (Frame.Corrupt set) instead of
	// failing the access unit with ErrCorrupt.
	Conceal bool
}

// DecoderStats counts what a Decoder did.
type DecoderStats struct {
	AccessUnits uint64 // access units sent to libavcodec
	Frames      uint64 // frames returned
	Corrupt     uint64 // access units that failed with ErrCorrupt
	Skipped     uint64 // access units dropped while waiting for a keyframe
}

// Decoder decodes H.264/H.265 access units into frames. Not safe for concurrent use.
type Decoder struct {
	cfg     DecoderConfig
	accel   Accel
	skipped []AccelAttempt

	ctx    *C.AVCodecContext
	hw     *C.sl_hw       // ctx->opaque, C memory; nil for software
	dev    *C.AVBufferRef // hardware device; nil for software
	hwFmt  C.int
	pkt    *C.AVPacket
	frame  *C.AVFrame
	meta   [64]auMeta // by PTS, for RTP time and NTP of reordered pictures
	metaN  int
	wait   bool // waiting for a keyframe
	stats  DecoderStats
	closed bool
}

type auMeta struct {
	pts C.int64_t
	rtp uint32
	ntp time.Time
}

// NewDecoder opens a decoder for cfg. See Decoder.Accel and Decoder.Skipped for the path taken.
func NewDecoder(cfg DecoderConfig) (*Decoder, error) {
	if cfg.Codec != media.CodecH264 && cfg.Codec != media.CodecH265 {
		return nil, fmt.Errorf("open decoder: unsupported codec %q", cfg.Codec)
	}
	pref, err := ParseAccel(string(cfg.Accel))
	if err != nil {
		return nil, fmt.Errorf("open decoder: %w", err)
	}
	order := []Accel{pref}
	if pref == AccelAuto {
		order = []Accel{AccelVAAPI, AccelCUDA, AccelSoftware}
	}
	d := &Decoder{cfg: cfg, wait: true}
	for _, a := range order {
		err := d.open(a)
		if err == nil {
			d.accel = a
			break
		}
		if pref != AccelAuto {
			return nil, fmt.Errorf("open %s decoder (%s): %w", cfg.Codec, a, err)
		}
		d.skipped = append(d.skipped, AccelAttempt{Accel: a, Reason: err.Error()})
	}
	if d.ctx == nil {
		return nil, fmt.Errorf("open %s decoder: no path opened: %v", cfg.Codec, d.skipped)
	}
	d.pkt = C.av_packet_alloc()
	d.frame = C.av_frame_alloc()
	if d.pkt == nil || d.frame == nil {
		d.Close()
		return nil, fmt.Errorf("open decoder: %w", averr("alloc", C.SL_ENOMEM))
	}
	return d, nil
}

func codecID(c media.Codec) C.enum_AVCodecID {
	if c == media.CodecH265 {
		return C.AV_CODEC_ID_HEVC
	}
	return C.AV_CODEC_ID_H264
}

// renderNode returns the VAAPI render node to use.
func renderNode(override string) (string, error) {
	if override != "" {
		if _, err := os.Stat(override); err != nil {
			return "", fmt.Errorf("render node: %w", err)
		}
		return override, nil
	}
	nodes, _ := filepath.Glob("/dev/dri/renderD*")
	if len(nodes) == 0 {
		return "", fmt.Errorf("no render node /dev/dri/renderD*: %w", ErrUnavailable)
	}
	return nodes[0], nil
}

func cudaPresent() error {
	for _, p := range []string{"/dev/nvidiactl", "/dev/nvidia0"} {
		if _, err := os.Stat(p); err == nil {
			return nil
		}
	}
	return fmt.Errorf("no NVIDIA device node /dev/nvidia*: %w", ErrUnavailable)
}

// openDevice creates a libavutil hardware device context for a (VAAPI or CUDA).
// Ownership: the returned AVBufferRef is owned by the caller (av_buffer_unref).
func openDevice(a Accel, override string) (*C.AVBufferRef, C.enum_AVHWDeviceType, error) {
	var typ C.enum_AVHWDeviceType
	var node string
	switch a {
	case AccelVAAPI:
		typ = C.AV_HWDEVICE_TYPE_VAAPI
		n, err := renderNode(override)
		if err != nil {
			return nil, typ, err
		}
		node = n
	case AccelCUDA:
		typ = C.AV_HWDEVICE_TYPE_CUDA
		if err := cudaPresent(); err != nil {
			return nil, typ, err
		}
		node = override
	default:
		return nil, typ, fmt.Errorf("not a hardware accelerator: %s", a)
	}
	var cnode *C.char
	if node != "" {
		cnode = C.CString(node)
		defer C.free(unsafe.Pointer(cnode))
	}
	var dev *C.AVBufferRef
	if ret := C.av_hwdevice_ctx_create(&dev, typ, cnode, nil, 0); ret < 0 {
		return nil, typ, averr(fmt.Sprintf("av_hwdevice_ctx_create(%s %q)", a, node), ret)
	}
	return dev, typ, nil
}

func (d *Decoder) open(a Accel) error {
	codec := C.avcodec_find_decoder(codecID(d.cfg.Codec))
	if codec == nil {
		return fmt.Errorf("libavcodec has no %s decoder: %w", d.cfg.Codec, ErrUnavailable)
	}
	var dev *C.AVBufferRef
	hwFmt := C.int(C.AV_PIX_FMT_NONE)
	if a != AccelSoftware {
		var typ C.enum_AVHWDeviceType
		var err error
		dev, typ, err = openDevice(a, d.cfg.Device)
		if err != nil {
			return err
		}
		hwFmt = C.sl_hw_pix_fmt(codec, typ)
		if hwFmt == C.AV_PIX_FMT_NONE {
			C.av_buffer_unref(&dev)
			return fmt.Errorf("libavcodec's %s decoder has no %s hwaccel: %w", d.cfg.Codec, a, ErrUnavailable)
		}
	}
	ctx := C.avcodec_alloc_context3(codec)
	if ctx == nil {
		C.av_buffer_unref(&dev)
		return averr("avcodec_alloc_context3", C.SL_ENOMEM)
	}
	threads := d.cfg.Threads
	if threads <= 0 {
		threads = 1
	}
	ctx.thread_count = C.int(threads)
	ctx.pkt_timebase = C.AVRational{num: 1, den: 1000000000} // packet PTS are nanoseconds
	if d.cfg.KeyframesOnly {
		ctx.skip_frame = C.AVDISCARD_NONKEY
	}
	if !d.cfg.Conceal {
		ctx.err_recognition |= C.AV_EF_EXPLODE
	}
	if extra := paramsAnnexB(d.cfg.Params); len(extra) > 0 {
		// Ownership: extradata belongs to ctx (freed by avcodec_free_context); it must come from
		// av_malloc with zeroed padding.
		p := (*byte)(C.av_mallocz(C.size_t(len(extra) + C.SL_PADDING)))
		if p == nil {
			C.avcodec_free_context(&ctx)
			C.av_buffer_unref(&dev)
			return averr("extradata", C.SL_ENOMEM)
		}
		copy(unsafe.Slice(p, len(extra)), extra)
		ctx.extradata = (*C.uint8_t)(p)
		ctx.extradata_size = C.int(len(extra))
	}
	var hw *C.sl_hw
	if dev != nil {
		// Ownership: ctx gets its own reference to the device; hw is C memory read by the get_format
		// callback and freed by Close after the context.
		ctx.hw_device_ctx = C.av_buffer_ref(dev)
		hw = (*C.sl_hw)(C.av_mallocz(C.sizeof_sl_hw))
		if ctx.hw_device_ctx == nil || hw == nil {
			C.av_free(unsafe.Pointer(hw))
			C.avcodec_free_context(&ctx)
			C.av_buffer_unref(&dev)
			return averr("hw context", C.SL_ENOMEM)
		}
		hw.hw_pix_fmt = hwFmt
		C.sl_install_get_format(ctx, hw)
	}
	if ret := C.avcodec_open2(ctx, codec, nil); ret < 0 {
		C.avcodec_free_context(&ctx)
		C.av_free(unsafe.Pointer(hw))
		C.av_buffer_unref(&dev)
		return averr("avcodec_open2", ret)
	}
	d.ctx, d.hw, d.dev, d.hwFmt = ctx, hw, dev, hwFmt
	return nil
}

func paramsAnnexB(p media.Params) []byte {
	var nalus [][]byte
	for _, n := range [][]byte{p.VPS, p.SPS, p.PPS} {
		if len(n) > 0 {
			nalus = append(nalus, n)
		}
	}
	if len(nalus) == 0 {
		return nil
	}
	return media.JoinAnnexB(nalus)
}

// Accel returns the path in use. It turns to AccelSoftware if the hardware decoder refused the stream
// (then Skipped says why).
func (d *Decoder) Accel() Accel { return d.accel }

// Skipped lists the accelerators tried before (or abandoned for) the one in use, with the reason.
func (d *Decoder) Skipped() []AccelAttempt { return append([]AccelAttempt(nil), d.skipped...) }

// Stats returns the decoder's counters.
func (d *Decoder) Stats() DecoderStats { return d.stats }

// Decode sends one access unit and appends the frames that became ready (none, one, or more: pictures
// come out in presentation order, possibly later than their access unit) to out. The caller owns the
// appended frames and must Release each.
//
// A decoder starts, and restarts after an error, at a keyframe: non-key access units before it are
// dropped (counted in Stats().Skipped) and return no frames and no error. A corrupt or truncated access
// unit returns an error wrapping ErrCorrupt (with any frames completed before it).
func (d *Decoder) Decode(au *media.AccessUnit, out []*Frame) ([]*Frame, error) {
	if d.closed {
		return out, ErrClosed
	}
	if d.ctx == nil {
		return out, errors.New("decode: decoder could not be reopened after an error")
	}
	key := au.Keyframe || media.IsKeyframe(d.cfg.Codec, au.NALUs)
	if d.wait && !key {
		d.stats.Skipped++
		return out, nil
	}
	d.wait = false
	size := 0
	for _, n := range au.NALUs {
		size += 4 + len(n)
	}
	if size == 0 {
		return out, nil
	}
	// Ownership: av_new_packet gives d.pkt a reference-counted C buffer with zeroed padding; the decoder
	// takes its own reference in avcodec_send_packet, and ours is dropped right after.
	if ret := C.av_new_packet(d.pkt, C.int(size)); ret < 0 {
		return out, averr("decode: av_new_packet", ret)
	}
	buf := unsafe.Slice((*byte)(unsafe.Pointer(d.pkt.data)), size)
	off := 0
	for _, n := range au.NALUs {
		off += copy(buf[off:], []byte{0, 0, 0, 1})
		off += copy(buf[off:], n)
	}
	pts := C.int64_t(au.PTS)
	d.pkt.pts = pts
	if key {
		d.pkt.flags |= C.AV_PKT_FLAG_KEY
	}
	d.meta[d.metaN%len(d.meta)] = auMeta{pts: pts, rtp: au.RTPTime, ntp: au.NTP}
	d.metaN++
	ret := C.avcodec_send_packet(d.ctx, d.pkt)
	C.av_packet_unref(d.pkt)
	d.stats.AccessUnits++
	if ret < 0 && ret != C.SL_EAGAIN {
		return out, d.fail(averr("decode: avcodec_send_packet", ret))
	}
	return d.receive(out)
}

// Flush drains the pictures still held for reordering (end of stream) and appends them to out. The
// decoder can be used again afterwards, starting at a keyframe.
func (d *Decoder) Flush(out []*Frame) ([]*Frame, error) {
	if d.closed || d.ctx == nil {
		return out, ErrClosed
	}
	if ret := C.avcodec_send_packet(d.ctx, nil); ret < 0 && ret != C.SL_EOF {
		return out, averr("flush: avcodec_send_packet", ret)
	}
	out, err := d.receive(out)
	C.avcodec_flush_buffers(d.ctx)
	d.wait = true
	return out, err
}

// fail resets the decoder after a decoding error so that it restarts at the next keyframe. The codec
// context is opened afresh rather than flushed: after an aborted slice, libavcodec 5.1's H.264 error
// concealment can still write into the next picture's buffer (measured: 973 bytes of the next IDR
// differed from a fresh decoder's after avcodec_flush_buffers).
func (d *Decoder) fail(err error) error {
	d.stats.Corrupt++
	d.wait = true
	d.freeContext()
	if rerr := d.open(d.accel); rerr != nil {
		return fmt.Errorf("%w: %w (and reopening the decoder failed: %w)", ErrCorrupt, err, rerr)
	}
	return fmt.Errorf("%w: %w", ErrCorrupt, err)
}

func (d *Decoder) freeContext() {
	if d.ctx != nil {
		C.avcodec_free_context(&d.ctx)
	}
	if d.hw != nil {
		C.av_free(unsafe.Pointer(d.hw))
		d.hw = nil
	}
	if d.dev != nil {
		C.av_buffer_unref(&d.dev)
	}
}

func (d *Decoder) receive(out []*Frame) ([]*Frame, error) {
	for {
		ret := C.avcodec_receive_frame(d.ctx, d.frame)
		if ret == C.SL_EAGAIN || ret == C.SL_EOF {
			return out, nil
		}
		if ret < 0 {
			return out, d.fail(averr("decode: avcodec_receive_frame", ret))
		}
		f, err := d.take()
		if err != nil {
			return out, err
		}
		if f != nil {
			out = append(out, f)
		}
	}
}

// take moves the picture in d.frame into a new Frame (downloading hardware surfaces).
func (d *Decoder) take() (*Frame, error) {
	defer C.av_frame_unref(d.frame)
	corrupt := d.frame.decode_error_flags != 0 || d.frame.flags&C.AV_FRAME_FLAG_CORRUPT != 0
	if corrupt && !d.cfg.Conceal {
		return nil, d.fail(errors.New("decoder concealed errors in the picture"))
	}
	if d.hw != nil && d.hw.fell_back != 0 && d.accel != AccelSoftware {
		d.skipped = append(d.skipped, AccelAttempt{Accel: d.accel, Reason: "hardware decoder refused the stream's profile or size; libavcodec decodes it in software"})
		d.accel = AccelSoftware
	}
	av := C.av_frame_alloc()
	if av == nil {
		return nil, averr("decode: av_frame_alloc", C.SL_ENOMEM)
	}
	if d.hw != nil && C.int(d.frame.format) == d.hwFmt {
		// Ownership: av_hwframe_transfer_data allocates av's buffers (NV12 for VAAPI/CUDA) and copies
		// the surface down; d.frame's surface reference is dropped by the deferred unref.
		if ret := C.av_hwframe_transfer_data(av, d.frame, 0); ret < 0 {
			C.av_frame_free(&av)
			return nil, averr("decode: av_hwframe_transfer_data", ret)
		}
		C.av_frame_copy_props(av, d.frame)
	} else {
		C.av_frame_move_ref(av, d.frame)
	}
	if pixFmtOf(C.int(av.format)) == FormatUnknown {
		name := C.GoString(C.av_get_pix_fmt_name(int32(av.format)))
		C.av_frame_free(&av)
		return nil, fmt.Errorf("decode: unsupported pixel format %s (8-bit 4:2:0 only)", name)
	}
	f := &Frame{PTS: time.Duration(av.pts), Keyframe: av.key_frame != 0, Corrupt: corrupt}
	for i := range d.meta {
		if m := d.meta[i]; m.pts == av.pts {
			f.RTPTime, f.NTP = m.rtp, m.ntp
			break
		}
	}
	f.wrap(av)
	d.stats.Frames++
	return f, nil
}

// Close frees the decoder. Frames already returned stay valid until released.
func (d *Decoder) Close() {
	if d.closed {
		return
	}
	d.closed = true
	d.freeContext()
	if d.pkt != nil {
		C.av_packet_free(&d.pkt)
	}
	if d.frame != nil {
		C.av_frame_free(&d.frame)
	}
}
