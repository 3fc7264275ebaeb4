# Sightline container image (used by docker-compose.yaml).
#   docker build -t sightline:local --build-arg VERSION=$(git describe --always --dirty) .

# --- build ---------------------------------------------------------------------------------------
FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first, so that a source change does not re-download them.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=docker
# No cgo yet: the binary is static. When the codec package (libavcodec through cgo) lands, switch to
# CGO_ENABLED=1, `apt-get install pkg-config libavcodec-dev libavutil-dev libswscale-dev libavformat-dev`
# here, and the matching runtime libraries (libavcodec59 libavutil57 libswscale6 libavformat59) below.
ENV CGO_ENABLED=0
RUN go build -trimpath -ldflags "-X main.version=${VERSION}" -o /out/sightline ./cmd/sightline

# --- run -----------------------------------------------------------------------------------------
FROM debian:bookworm-slim
# ca-certificates: rtsps:// cameras and TURN over TLS verify certificates against the system roots.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin sightline
COPY --from=build /out/sightline /usr/local/bin/sightline
# The compose harness's config is the default; mount another at the same path to replace it.
COPY configs/compose/sightline.yaml /etc/sightline/sightline.yaml
USER sightline
# 8080: UI, REST API, WHEP, WebSocket signaling. 8189/udp: all WebRTC media (ICE UDP mux).
EXPOSE 8080 8189/udp
ENTRYPOINT ["/usr/local/bin/sightline", "-config", "/etc/sightline/sightline.yaml"]
