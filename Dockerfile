# Sightline container image (used by docker-compose.yaml).
#   docker build -t sightline:local --build-arg VERSION=$(git describe --always --dirty) .

# --- build ---------------------------------------------------------------------------------------
FROM golang:1.26-bookworm AS build
# The codec package is cgo over Debian's FFmpeg libraries.
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libavcodec-dev libavutil-dev libswscale-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Modules first, so that a source change does not re-download them.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=docker
ENV CGO_ENABLED=1
RUN go build -trimpath -ldflags "-X main.version=${VERSION}" -o /out/sightline ./cmd/sightline

# --- run -----------------------------------------------------------------------------------------
FROM debian:bookworm-slim
# ca-certificates: rtsps:// cameras and TURN over TLS verify certificates against the system roots.
# libavcodec59/libavutil57/libswscale6: the runtime side of the codec package (software decode and
# libx264 encode; VAAPI/NVDEC need the host's drivers mapped in, see README "GPU notes").
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libavcodec59 libavutil57 libswscale6 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin sightline
COPY --from=build /out/sightline /usr/local/bin/sightline
# The compose harness's config is the default; mount another at the same path to replace it.
COPY configs/compose/sightline.yaml /etc/sightline/sightline.yaml
USER sightline
# 8080: UI, REST API, WHEP, WebSocket signaling. 8189/udp: all WebRTC media (ICE UDP mux).
EXPOSE 8080 8189/udp
ENTRYPOINT ["/usr/local/bin/sightline", "-config", "/etc/sightline/sightline.yaml"]
