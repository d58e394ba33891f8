"""Where frames come from on the edge: a video file, a webcam index or a stream URL.

``open_stream("clip.mp4")``, ``open_stream("0")`` (the first webcam) and
``open_stream("rtsp://camera/stream")`` (any URL OpenCV's FFmpeg backend reads: RTSP,
HTTP, RTMP...) all give a :class:`Stream` of RGB uint8 frames with the source's frame rate.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from veil.errors import VeilError

DEFAULT_FPS = 25.0  # when a live source does not report its rate
# FFmpeg (inside OpenCV) would print its own lines for a refused connection or a broken
# file; Veil reports one error line instead. Read once, at OpenCV's first FFmpeg use.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def is_url(source: str | Path) -> bool:
    return isinstance(source, str) and bool(_URL.match(source))


def is_webcam(source: str | Path) -> bool:
    return isinstance(source, str) and source.isdigit()


def is_live(source: str | Path) -> bool:
    """A webcam or a URL: a stream that may never end, rather than a file on disk."""
    return is_url(source) or is_webcam(source)


@dataclass
class Stream:
    """An opened source. Iterate it for RGB uint8 frames; ``fps`` is the source's own rate."""

    name: str
    capture: cv2.VideoCapture
    fps: float
    fps_reported: bool  # False: the source gave no rate and ``fps`` is DEFAULT_FPS
    total: int | None  # frame count when the source knows it (files), else None
    live: bool

    def __iter__(self) -> Iterator[np.ndarray]:
        count = 0
        try:
            while True:
                ok, bgr = self.capture.read()
                if not ok:
                    break
                count += 1
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            self.capture.release()
        if count == 0:
            what = "stream" if self.live else "video (empty or corrupt)"
            raise VeilError(f"no frames could be decoded from {self.name}: {what}")

    def close(self) -> None:
        self.capture.release()


def open_stream(source: str | Path) -> Stream:
    """Open a video file, a webcam index (``"0"``) or a stream URL; raise VeilError if it cannot."""
    if not is_live(source) and not Path(source).is_file():
        raise VeilError(f"input not found: {source}")
    with _opencv_silent():
        if is_webcam(source):
            capture, name = cv2.VideoCapture(int(source)), f"webcam {source}"
        elif is_url(source):
            capture, name = cv2.VideoCapture(str(source), cv2.CAP_FFMPEG), str(source)
        else:
            capture, name = cv2.VideoCapture(str(source)), str(source)
    if not capture.isOpened():
        capture.release()
        raise VeilError(f"cannot open {name}" + ("" if is_live(source) else " (not a video OpenCV can decode)"))
    fps = capture.get(cv2.CAP_PROP_FPS)
    reported = bool(fps and 0 < fps < 1000)
    count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    live = is_live(source)
    total = int(count) if not live and 0 < count < 1e9 else None
    return Stream(name, capture, fps if reported else DEFAULT_FPS, reported, total, live)


@contextlib.contextmanager
def _opencv_silent() -> Iterator[None]:
    """Mute OpenCV's warnings while backends are tried: failing ones all log, Veil says why once."""
    logging = cv2.utils.logging
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(level)
