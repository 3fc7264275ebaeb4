#include "bridge.h"

int sl_hw_pix_fmt(const AVCodec *codec, enum AVHWDeviceType type) {
	for (int i = 0;; i++) {
		const AVCodecHWConfig *cfg = avcodec_get_hw_config(codec, i);
		if (!cfg) {
			return AV_PIX_FMT_NONE;
		}
		if ((cfg->methods & AV_CODEC_HW_CONFIG_METHOD_HW_DEVICE_CTX) && cfg->device_type == type) {
			return cfg->pix_fmt;
		}
	}
}

static enum AVPixelFormat sl_get_format(AVCodecContext *ctx, const enum AVPixelFormat *fmts) {
	sl_hw *hw = (sl_hw *)ctx->opaque;
	if (hw && hw->hw_pix_fmt >= 0) {
		for (const enum AVPixelFormat *p = fmts; *p != AV_PIX_FMT_NONE; p++) {
			if (*p == hw->hw_pix_fmt) {
				return *p;
			}
		}
		hw->fell_back = 1;
	}
	return avcodec_default_get_format(ctx, fmts);
}

void sl_install_get_format(AVCodecContext *ctx, sl_hw *hw) {
	ctx->opaque = hw;
	ctx->get_format = sl_get_format;
}

void sl_err(int err, char *buf, size_t n) {
	if (av_strerror(err, buf, n) < 0) {
		snprintf(buf, n, "libav error %d", err);
	}
}

uint8_t *sl_frame_data(const AVFrame *f, int i) { return f->data[i]; }
int sl_frame_linesize(const AVFrame *f, int i) { return f->linesize[i]; }

int sl_scale_frame(struct SwsContext *sws, const AVFrame *src, AVFrame *dst) {
	return sws_scale(sws, (const uint8_t *const *)src->data, src->linesize, 0, src->height, dst->data, dst->linesize);
}
