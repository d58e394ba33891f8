"""Every source of footage Veil reads, the one rule for what is live, and opening it.

A source argument is, by this rule and in this order:

- ``vtest``: OpenCV's 795-frame campus CCTV clip from Debian's opencv-doc, fetched into the
  cache on first use (a file);
- digits, such as ``0``: a webcam index (live);
- ``scheme://...`` with a network scheme (``rtsp://``, ``http://``...): a stream that OpenCV's
  FFmpeg backend reads (live);
- a folder on disk: the videos or images in it;
- a file on disk: a video.

A live source may never end and knows no frame count; a file or a folder does. ``veil data
prepare``, ``veil obfuscate`` and ``veil edge`` all classify their input with
:func:`parse_source` and decode videos with :func:`open_stream`, so they agree on both.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import cv2
import numpy as np
from platformdirs import user_cache_dir

from veil.errors import VeilError
from veil.io import atomic_path

VIDEO_SUFFIXES = {".avi", ".mp4", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
# Network protocols FFmpeg pulls a stream over. Anything else with "://" is refused rather
# than taken for a file name: a typo such as "rstp://" should not read as "file not found".
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "rtp", "srt")
DEFAULT_FPS = 25.0  # when a live source does not report its rate
# A stream that does not answer within these is reported (and, by veil edge, retried) rather
# than waited on for OpenCV's default 30 s.
OPEN_TIMEOUT_MS = 10_000
READ_TIMEOUT_MS = 5_000
VTEST_MEMBER = "./usr/share/doc/opencv-doc/examples/data/vtest.avi"
ACCEPTED = "a video file, a folder, a webcam index such as 0, a stream URL such as rtsp://host/path, or 'vtest'"

# FFmpeg (inside OpenCV) would print its own lines for a refused connection or a broken
# file; Veil reports one error line instead. Read once, at OpenCV's first FFmpeg use.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

Kind = Literal["file", "folder", "webcam", "url"]


@dataclass(frozen=True)
class Source:
    """What a source argument names, by :func:`parse_source`'s rule."""

    text: str  # as given
    kind: Kind
    path: Path | None = None  # the file or folder on disk; None for webcams and URLs

    @property
    def live(self) -> bool:
        """A webcam or a stream: it may never end, and it cannot wait for a slow consumer."""
        return self.kind in ("webcam", "url")

    @property
    def name(self) -> str:
        """How messages name it: a URL's password is never printed."""
        if self.kind == "webcam":
            return f"webcam {self.text}"
        if self.kind == "url":
            return redact(self.text)
        return str(self.path)


def parse_source(source: str | Path | Source) -> Source:
    """Classify ``source`` by the one rule (see the module docstring); VeilError if it names nothing."""
    if isinstance(source, Source):
        return source
    if isinstance(source, Path):  # a Path is always a path, even one named "0" or "vtest"
        return _on_disk(source, str(source))
    text = source.strip()
    if text == "vtest":
        return Source(text, "file", vtest_path())
    if text.isascii() and text.isdigit():
        return Source(text, "webcam")
    if "://" in text:
        url = urlsplit(text)
        if url.scheme.lower() not in STREAM_SCHEMES:
            raise VeilError(f"unsupported stream URL {redact(text)}: the scheme must be one of "
                            f"{', '.join(STREAM_SCHEMES)}")
        if not url.hostname:
            raise VeilError(f"stream URL without a host: {redact(text)}")
        return Source(text, "url")
    if not text:
        raise VeilError(f"empty source: pass {ACCEPTED}")
    return _on_disk(Path(text), text)


def _on_disk(path: Path, text: str) -> Source:
    if path.is_dir():
        return Source(text, "folder", path)
    if path.is_file():
        return Source(text, "file", path)
    raise VeilError(f"source not found: {path} (pass {ACCEPTED})")


def is_live(source: str | Path | Source) -> bool:
    """Whether ``source`` is a webcam or a stream (VeilError if it names nothing)."""
    return parse_source(source).live


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (camera URLs often carry credentials)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


# -- folders ---------------------------------------------------------------------------
def list_images(folder: Path) -> list[Path]:
    """Images directly in ``folder``, in name order."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def list_videos(folder: Path) -> list[Path]:
    """Videos directly in ``folder``, in name order."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())


def folder_media(folder: Path) -> list[Path]:
    """Images and videos under ``folder``, recursively, skipping hidden files and folders."""
    media = sorted(
        p for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    if not media:
        raise VeilError(f"no images or videos found in {folder}")
    return media


# -- videos, webcams and streams -------------------------------------------------------------
@dataclass
class Stream:
    """An opened video, webcam or stream: RGB uint8 frames at the source's own ``fps``."""

    source: Source
    capture: cv2.VideoCapture
    fps: float
    fps_reported: bool  # False: the source gave no rate and ``fps`` is DEFAULT_FPS
    total: int | None  # frame count when the source knows it (files), else None

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def live(self) -> bool:
        return self.source.live

    def read(self) -> np.ndarray | None:
        """The next frame, or None at the end of a file or when a live source stops delivering."""
        ok, bgr = self.capture.read()
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if ok else None

    def __iter__(self) -> Generator[np.ndarray, None, None]:
        count = 0
        try:
            while (frame := self.read()) is not None:
                count += 1
                yield frame
        finally:
            self.capture.release()
        if count == 0:
            what = "stream" if self.live else "video (empty or corrupt)"
            raise VeilError(f"no frames could be decoded from {self.name}: {what}")

    def close(self) -> None:
        self.capture.release()


def open_stream(source: str | Path | Source) -> Stream:
    """Open a video file, a webcam index or a stream URL; VeilError if nothing can be read from it."""
    src = parse_source(source)
    if src.kind == "folder":
        raise VeilError(f"{src.name} is a folder: pass one video, webcam or stream")
    with _opencv_silent():
        if src.kind == "webcam":
            capture = cv2.VideoCapture(int(src.text))
        elif src.kind == "url":
            capture = cv2.VideoCapture(src.text, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS,
                                                                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS])
        else:
            capture = cv2.VideoCapture(str(src.path))
    if not capture.isOpened():
        capture.release()
        raise VeilError(f"cannot open {src.name}" + ("" if src.live else " (not a video OpenCV can decode)"))
    fps = capture.get(cv2.CAP_PROP_FPS)
    reported = bool(fps and 0 < fps < 1000)
    count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    total = int(count) if not src.live and 0 < count < 1e9 else None
    return Stream(src, capture, fps if reported else DEFAULT_FPS, reported, total)


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


# -- the named clip, and the cache it lives in ---------------------------------------------------
def cache_dir() -> Path:
    """Veil's cache folder (``VEIL_CACHE`` overrides the platform default)."""
    return Path(os.environ.get("VEIL_CACHE") or user_cache_dir("veil"))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def vtest_path() -> Path:
    """Path of vtest.avi, fetched into the cache on first use.

    Fetched with ``apt-get download`` (no root: it only writes into the current folder) and
    unpacked with ``dpkg-deb``, into the user cache, never system-wide.
    """
    target = cache_dir() / "vtest.avi"
    if target.is_file():
        return target
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise VeilError(f"fetching vtest needs Debian's {tool}; or pass a video path instead of 'vtest'")
    with tempfile.TemporaryDirectory() as tmp:
        fetch = subprocess.run(
            ["apt-get", "download", "opencv-doc"], cwd=tmp, capture_output=True, text=True, check=False
        )
        debs = list(Path(tmp).glob("opencv-doc_*.deb"))
        if fetch.returncode != 0 or not debs:
            last = (fetch.stderr.strip().splitlines() or ["no output"])[-1]
            raise VeilError(f"apt-get download opencv-doc failed ({last}); try 'apt-get update' first")
        # We stop reading once vtest is out; dpkg-deb then complains of a broken pipe: silence it.
        unpack = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(debs[0])], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL)
        with tarfile.open(fileobj=unpack.stdout, mode="r|") as tar, atomic_path(target) as tmp_target:
            for member in tar:
                if member.name == VTEST_MEMBER:
                    with tar.extractfile(member) as src, tmp_target.open("wb") as dst:  # type: ignore[union-attr]
                        shutil.copyfileobj(src, dst)
                    break
            else:
                raise VeilError("opencv-doc no longer ships examples/data/vtest.avi")
        unpack.stdout.close()  # type: ignore[union-attr]
        unpack.wait()
    return target
