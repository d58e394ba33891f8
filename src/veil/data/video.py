"""Frames for datasets: sampling a video, reading images, resizing, writing a video.

Opening any source goes through :mod:`veil.data.sources`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from veil.data.sources import list_images, open_stream
from veil.errors import VeilError


@dataclass(frozen=True)
class Frame:
    """One decoded RGB frame (H, W, 3) uint8 with where it came from."""

    image: np.ndarray
    source: str
    index: int  # frame index in the source video, or position in the image folder
    time: float  # seconds from the start of the source


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``"WIDTHxHEIGHT"`` into ``(width, height)``; refuse impossible sizes."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise VeilError(f"size must look like 640x480, got {text!r}") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise VeilError(f"impossible resize {w}x{h}: each side must be between 16 and 8192 pixels")
    return w, h


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an RGB image to ``(width, height)``; area interpolation when shrinking."""
    w, h = size
    if image.shape[1] == w and image.shape[0] == h:
        return image
    shrink = w < image.shape[1] and h < image.shape[0]
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def read_video(path: str | Path, fps: float | None = None) -> Iterator[Frame]:
    """Yield RGB frames of the video at ``path``, sampled at ``fps`` (all frames if None)."""
    stream = open_stream(Path(path))  # a Path: always a file on disk, never a webcam or URL
    native = stream.fps
    step = 1.0 if fps is None or fps >= native else native / fps
    next_keep = 0.0
    decoded = iter(stream)  # a generator; raises at its end if no frame could be decoded
    try:
        for index, image in enumerate(decoded):
            if index + 1e-9 >= next_keep:
                yield Frame(image, str(path), index, index / native)
                next_keep += step
    finally:
        decoded.close()  # a consumer that stops early releases the decoder now


def read_image(path: str | Path) -> np.ndarray:
    """Read one image as RGB uint8."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise VeilError(f"cannot decode image: {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_image_folder(folder: Path, fps: float = 25.0) -> Iterator[Frame]:
    """Yield the images of ``folder`` in name order, as frames of a clip at ``fps``."""
    for i, path in enumerate(list_images(folder)):
        yield Frame(read_image(path), str(path), i, i / fps)


def write_video(path: Path, frames: Iterator[np.ndarray], fps: float) -> int:
    """Write RGB frames to ``path`` (codec from the suffix); returns the frame count."""
    fourcc = cv2.VideoWriter.fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))
    writer = None
    n = 0
    try:
        for frame in frames:
            if writer is None:
                h, w = frame.shape[:2]
                writer = cv2.VideoWriter(str(path), fourcc, fps, (w, h))
                if not writer.isOpened():
                    raise VeilError(f"cannot open a video writer for {path}")
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            n += 1
    finally:
        if writer is not None:
            writer.release()
    return n
