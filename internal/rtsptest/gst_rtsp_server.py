#!/usr/bin/env python3
"""A GStreamer RTSP server for Sightline's tests: serves an H.264 .mp4 as one shared live stream at
rtsp://127.0.0.1:PORT/cam1 (loopback only), over TCP or UDP. Debian ships no test-launch binary; this is
its few lines through GObject introspection. Prints READY once listening."""
import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mp4", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--proto", choices=["tcp", "udp"], default="tcp")
    ap.add_argument("--mount", default="/cam1")
    args = ap.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))

    factory = GstRtspServer.RTSPMediaFactory()
    loc = args.mp4.replace("\\", "\\\\").replace('"', '\\"')
    factory.set_launch(
        '( filesrc location="%s" ! qtdemux ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 )' % loc
    )
    factory.set_shared(True)
    if args.proto == "tcp":
        factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
    else:
        factory.set_protocols(GstRtsp.RTSPLowerTrans.UDP)
        # Keep the RTP/RTCP sockets on loopback too.
        pool = GstRtspServer.RTSPAddressPool()
        pool.add_range("127.0.0.1", "127.0.0.1", 40000, 49999, 0)
        factory.set_address_pool(pool)
    server.get_mount_points().add_factory(args.mount, factory)
    if server.attach(None) == 0:
        print("attach failed: port %d busy?" % args.port, file=sys.stderr)
        sys.exit(1)

    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    print("READY", flush=True)
    loop.run()


if __name__ == "__main__":
    main()
