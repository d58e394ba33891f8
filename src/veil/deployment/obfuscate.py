"""``veil obfuscate``: run a trained obfuscator over a video or an image folder.

Frames are resized to the size the obfuscator was trained at (the detector's scale), then
obfuscated. Video in gives video out; an image folder gives an image folder. The output
appears only when complete.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from veil.data.video import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    list_images,
    read_image_folder,
    read_video,
    resize,
    video_fps,
    write_video,
)
from veil.errors import VeilError
from veil.io import atomic_path
from veil.training.state import load_models

Progress = Callable[[int, int | None], None]


@torch.no_grad()
def apply(obfuscator: nn.Module, frames: list[np.ndarray], device: torch.device | str = "cpu") -> list[np.ndarray]:
    """Obfuscate a list of RGB uint8 frames of one size."""
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div_(255).to(device)
    y = obfuscator(x).clamp_(0, 1).mul_(255).round_().to(torch.uint8)
    return list(y.permute(0, 2, 3, 1).cpu().numpy())


def _batched(frames: Iterator[np.ndarray], obfuscator: nn.Module, size: tuple[int, int],
             progress: Progress | None, total: int | None, batch: int = 8) -> Iterator[np.ndarray]:
    buf: list[np.ndarray] = []
    done = 0
    for frame in frames:
        buf.append(resize(frame, size))
        if len(buf) == batch:
            yield from apply(obfuscator, buf)
            done += len(buf)
            buf = []
            if progress:
                progress(done, total)
    if buf:
        yield from apply(obfuscator, buf)
        if progress:
            progress(done + len(buf), total)


def obfuscate_media(checkpoint: str | Path, source: str | Path, output: str | Path,
                    progress: Progress | None = None, frames: range | None = None) -> int:
    """Obfuscate ``source`` (video or image folder) into ``output``; returns the frame count.

    ``frames`` limits a video to those frame indices (the demo obfuscates its test range).
    """
    source, output = Path(source), Path(output)
    obfuscator, _, meta = load_models(checkpoint)
    size = tuple(meta.get("frame_size") or (640, 480))
    if source.is_dir():
        images = list_images(source)
        if not images:
            raise VeilError(f"no images found in {source}")
        if output.suffix.lower() in VIDEO_SUFFIXES:
            raise VeilError("an image folder obfuscates into a folder, not a video file")
        images_in = (f.image for f in read_image_folder(source))
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}."))
        try:
            n = 0
            for path, out in zip(images, _batched(images_in, obfuscator, size, progress, len(images))):
                cv2.imwrite(str(tmp / (path.stem + ".png")), cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
                n += 1
            if output.exists():
                shutil.rmtree(output)
            os.replace(tmp, output)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return n
    if not source.is_file():
        raise VeilError(f"input not found: {source}")
    if source.suffix.lower() in IMAGE_SUFFIXES:
        raise VeilError("pass a folder of images, or a video file")
    if output.suffix.lower() not in VIDEO_SUFFIXES:
        raise VeilError(f"output of a video must be a video file (.mp4, .avi), got {output}")
    fps = video_fps(source)
    if frames is None:
        capture = cv2.VideoCapture(str(source))
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        capture.release()
        decoded = (f.image for f in read_video(source))
    else:
        total = len(frames)
        # Stop decoding once past the range instead of reading the rest of the video.
        in_reach = itertools.takewhile(lambda f: f.index < frames.stop, read_video(source))
        decoded = (f.image for f in in_reach if f.index in frames)
    with atomic_path(output) as tmp:
        n = write_video(tmp, _batched(decoded, obfuscator, size, progress, total), fps)
        if n == 0:
            raise VeilError(f"no frames of {source} in the range {frames}")
    return n
