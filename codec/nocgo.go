//go:build !cgo

package codec

// The codec package is a cgo binding to FFmpeg's libraries; it cannot build with CGO_ENABLED=0.
// Build with CGO_ENABLED=1 and: apt-get install -y pkg-config libavcodec-dev libavutil-dev libswscale-dev libx264-dev
var _ = codec_needs_CGO_ENABLED_1_and_apt_install_pkg_config_libavcodec_dev_libavutil_dev_libswscale_dev
