#!/usr/bin/env bash
# Puts the demo camera clip at var/media/demo.h264 (Annex-B, what `file:` cameras read) and
# var/media/demo.mp4 (what the compose harness's ffmpeg publisher loops).
# With ../shared/assets beside the repository: copies the street clip, and mirrors all shared assets into
# var/assets/ (tests and models fall back to it). Without: generates a 10 s 1280x720 25 fps test pattern
# with a running clock, H.264 Constrained Baseline, IDR every 25 frames, SPS/PPS before each IDR, AUD
# before every access unit (the same shape as the shared clips).
set -euo pipefail
cd "$(dirname "$0")/.."

shared=${SIGHTLINE_SHARED:-../shared}/assets
clip=cam_street_1280x720_25fps
out=var/media
mkdir -p "$out"

copy_if_changed() { # src dst
  if ! cmp -s "$1" "$2"; then
    cp "$1" "$2.tmp" && mv -f "$2.tmp" "$2"
    echo "media: $2 <- $1"
  fi
}

if [ -d "$shared/camera" ]; then
  copy_if_changed "$shared/camera/$clip.h264" "$out/demo.h264"
  copy_if_changed "$shared/camera/$clip.mp4" "$out/demo.mp4"
  mkdir -p var/assets
  # Timestamps kept (so -u skips unchanged files), modes not: the shared folder is read-only.
  cp -R -u --preserve=timestamps "$shared/." var/assets/
  chmod -R u+w var/assets
  echo "media: $out/demo.h264 is the shared street clip; shared assets mirrored in var/assets/"
  exit 0
fi

if [ -s "$out/demo.h264" ] && [ -s "$out/demo.mp4" ]; then
  echo "media: $out/demo.h264 present (generated earlier; delete it to regenerate)"
  exit 0
fi

if ! command -v ffmpeg >/dev/null 2>&1; then
  echo "media: no $shared/camera and no ffmpeg to generate a clip: run 'make deps-run' first" >&2
  exit 1
fi

# A running clock needs a font for drawtext; without one, testsrc's own counter is the clock.
font=""
if command -v fc-match >/dev/null 2>&1; then
  font=$(fc-match -f '%{file}' 'monospace:bold' 2>/dev/null || true)
  case "$font" in *.ttf|*.otf|*.ttc) [ -r "$font" ] || font="" ;; *) font="" ;; esac
fi
if [ -n "$font" ]; then
  src="testsrc2=size=1280x720:rate=25"
  vf="drawtext=fontfile=$font:fontsize=64:fontcolor=white:box=1:boxcolor=black@0.6:x=40:y=40:text='%{pts\\:hms}  frame %{n}'"
else
  echo "media: no font found by fontconfig; using testsrc's built-in counter as the clock"
  src="testsrc=size=1280x720:rate=25:decimals=2"
  vf="null"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ffmpeg -hide_banner -loglevel error -nostdin -y \
  -f lavfi -i "$src" -t 10 -vf "$vf" \
  -c:v libx264 -profile:v baseline -level:v 3.1 -pix_fmt yuv420p -preset veryfast -b:v 2M \
  -g 25 -keyint_min 25 -sc_threshold 0 -bf 0 \
  -x264-params aud=1:repeat-headers=1 \
  -bsf:v h264_mp4toannexb -f h264 "$tmp/demo.h264"
# The same stream in MP4 (timestamps for `-re -stream_loop -1 -c copy` publishing in compose).
ffmpeg -hide_banner -loglevel error -nostdin -y -fflags +genpts -r 25 -f h264 -i "$tmp/demo.h264" \
  -c copy -movflags +faststart "$tmp/demo.mp4"
mv -f "$tmp/demo.h264" "$out/demo.h264"
mv -f "$tmp/demo.mp4" "$out/demo.mp4"
echo "media: generated $out/demo.h264 and $out/demo.mp4 (10 s test pattern, 1280x720, 25 fps)"
