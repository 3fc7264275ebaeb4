#!/usr/bin/env bash
# Installs what Sightline needs on Debian 12: the apt packages that are missing (checked with dpkg-query,
# so a second run is quick and notices packages that were removed since) and the Go modules.
#
#   scripts/deps.sh run    only what `make run` needs (ffmpeg, when the demo clip must be generated)
#   scripts/deps.sh test   everything the tests need (browser, GStreamer RTSP server, libav, compose)
#
# Not root and no passwordless sudo: prints the exact install command and fails.
set -euo pipefail

mode=${1:-test}
cd "$(dirname "$0")/.."
shared_camera=${SIGHTLINE_SHARED:-../shared}/assets/camera

# Everything the test suite exercises. Keep in step with README.md (Development/tests).
test_pkgs=(
  ffmpeg                        # demo clip, RTSP publisher in tests
  chromium chromium-driver      # browser WebRTC tests (chromedriver's WebDriver API)
  python3-gi python3-gst-1.0 gir1.2-gst-rtsp-server-1.0   # independent RTSP server for tests
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  docker-compose                # `docker-compose config -q` validates docker-compose.yaml (no engine)
  iproute2                      # `ip` for network-namespace tests
  mosquitto                     # independent MQTT broker for the alerts MQTT sink tests
  pkg-config libavcodec-dev libavutil-dev libswscale-dev libavformat-dev libx264-dev libva-dev  # codec (cgo)
)
# `make onnxruntime` fetches ONNX Runtime with `npm pack`. Debian 12 ships npm apart from nodejs; NodeSource's
# nodejs package provides (and conflicts with) it, so ask for it only when no npm is on PATH.
command -v npm >/dev/null 2>&1 || test_pkgs+=(npm)

case "$mode" in
  run)
    pkgs=()
    if [ ! -d "$shared_camera" ]; then
      pkgs=(ffmpeg) # no shared clip: `make media` generates the demo clip with ffmpeg
    fi
    ;;
  test) pkgs=("${test_pkgs[@]}") ;;
  *) echo "usage: $0 run|test" >&2; exit 2 ;;
esac

missing=()
if [ "${#pkgs[@]}" -gt 0 ]; then
  if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps: dpkg-query not found: this script installs Debian packages (Debian 12 expected)." >&2
    echo "deps: install these yourself: ${pkgs[*]}" >&2
    exit 1
  fi
  # One dpkg-query call for all packages; a package dpkg has never seen prints nothing (and an error).
  installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${pkgs[@]}" 2>/dev/null | awk '$2 == "installed" {print $1}' || true)
  for p in "${pkgs[@]}"; do
    if ! grep -qxF "$p" <<<"$installed"; then
      missing+=("$p")
    fi
  done
fi

if [ "${#pkgs[@]}" -eq 0 ]; then
  echo "deps($mode): no apt packages needed"
elif [ "${#missing[@]}" -eq 0 ]; then
  echo "deps($mode): all ${#pkgs[@]} apt packages present"
else
  echo "deps($mode): missing apt packages: ${missing[*]}"
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      echo "deps: not root and sudo needs a password (or is missing). Run this, then try again:" >&2
      echo "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y ${missing[*]}" >&2
      exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  # docker-compose goes in without its recommends (the whole docker.io engine, useless without a
  # daemon); everything else with them, as the tests were verified (e.g. chromium-sandbox, gstreamer1.0-x).
  norec=() rec=()
  for p in "${missing[@]}"; do
    if [ "$p" = docker-compose ]; then norec+=("$p"); else rec+=("$p"); fi
  done
  "${sudo[@]}" apt-get update -q
  if [ "${#rec[@]}" -gt 0 ]; then
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${rec[@]}"
  fi
  if [ "${#norec[@]}" -gt 0 ]; then
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${norec[@]}"
  fi
fi

if ! command -v go >/dev/null 2>&1; then
  echo "deps: go not found on PATH (expected Go 1.26 at /usr/local/go/bin)" >&2
  exit 1
fi
go mod download
echo "deps($mode): Go modules downloaded ($(go version | awk '{print $3}'))"
