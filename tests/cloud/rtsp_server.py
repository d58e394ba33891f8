"""A real RTSP camera for the tests: Debian's GStreamer RTSP server playing an H.264 file.

Run with the *system* Python (``/usr/bin/python3``), which has ``python3-gi`` and the
``GstRtspServer`` typelib (``gir1.2-gst-rtsp-server-1.0``); the project's venv has neither::

    /usr/bin/python3 tests/cloud/rtsp_server.py CLIP.mp4 PORT [PATH]

serves ``rtsp://127.0.0.1:PORT/PATH`` (default ``/cam``) and prints ``ready`` once it listens;
``--check`` exits 0 only if every GStreamer element it needs is installed (``make system-deps``).
Each client gets its own pipeline from the start of the file, played at the file's frame rate
(the server's sinks sync to the clock, as a camera delivers frames in real time). The file
must be H.264 in MP4 (``ffmpeg -c:v libx264``): it is sent as it is, never re-encoded.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402  (after require_version, as gi needs)

ELEMENTS = ("filesrc", "qtdemux", "h264parse", "rtph264pay")  # core, -good, -bad, -good


def main() -> None:
    Gst.init(None)
    if sys.argv[1:] == ["--check"]:
        missing = [name for name in ELEMENTS if Gst.ElementFactory.find(name) is None]
        sys.exit(f"missing GStreamer elements: {', '.join(missing)}" if missing else 0)
    clip, port = sys.argv[1], sys.argv[2]
    path = sys.argv[3] if len(sys.argv) > 3 else "/cam"
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    # config-interval=-1: SPS/PPS with every key frame, so a client joining late can decode.
    factory.set_launch(f'( filesrc location="{clip}" ! qtdemux ! h264parse ! '
                       "rtph264pay name=pay0 pt=96 config-interval=-1 )")
    server.get_mount_points().add_factory(path, factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    print("ready", flush=True)
    GLib.MainLoop().run()  # until killed: SIGTERM's default action ends it


if __name__ == "__main__":
    main()
