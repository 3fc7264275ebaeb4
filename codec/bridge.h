// C side of the codec package: small helpers around libavcodec/libavutil/libswscale that are awkward
// to write in cgo (callbacks, macros, error constants). Nothing here keeps a pointer to Go memory.
#ifndef SIGHTLINE_CODEC_BRIDGE_H
#define SIGHTLINE_CODEC_BRIDGE_H

#include <libavcodec/avcodec.h>
#include <libavutil/avutil.h>
#include <libavutil/error.h>
#include <libavutil/frame.h>
#include <libavutil/hwcontext.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>

// Error codes that are macros in C (cgo cannot evaluate AVERROR(EAGAIN) in Go).
enum {
	SL_EAGAIN = AVERROR(EAGAIN),
	SL_EOF = AVERROR_EOF,
	SL_EINVAL = AVERROR(EINVAL),
	SL_ENOMEM = AVERROR(ENOMEM),
	SL_PADDING = AV_INPUT_BUFFER_PADDING_SIZE,
};

// sl_hw is owned by a decoder's AVCodecContext (ctx->opaque); allocated and freed by Go through
// av_mallocz/av_free, so that the get_format callback can read it from C without touching Go memory.
typedef struct sl_hw {
	int hw_pix_fmt;  // the hardware surface format wanted (AV_PIX_FMT_VAAPI, AV_PIX_FMT_CUDA), or -1
	int fell_back;   // set by get_format when the hardware format was not offered (software used)
} sl_hw;

// sl_hw_pix_fmt returns the surface pixel format codec uses with a device of type, or AV_PIX_FMT_NONE.
int sl_hw_pix_fmt(const AVCodec *codec, enum AVHWDeviceType type);

// sl_install_get_format sets ctx->get_format to a callback that picks hw->hw_pix_fmt when offered and
// falls back to libavcodec's default (software) choice otherwise, recording the fallback in hw.
void sl_install_get_format(AVCodecContext *ctx, sl_hw *hw);

// sl_err writes av_strerror(err) into buf.
void sl_err(int err, char *buf, size_t n);

// sl_frame_data and sl_frame_linesize return frame->data[i] / linesize[i] (arrays are awkward from cgo).
uint8_t *sl_frame_data(const AVFrame *f, int i);
int sl_frame_linesize(const AVFrame *f, int i);



// sl_scale_frame converts all of src into dst with sws (both frames allocated by libavutil).
int sl_scale_frame(struct SwsContext *sws, const AVFrame *src, AVFrame *dst);
#endif
