"""``veil obfuscate``: run a trained obfuscator over footage.

Sources (classified by :func:`veil.data.sources.parse_source`): a video file or ``vtest``
(video out), a folder (searched recursively; its images and videos come out under the same
relative names in the output folder), a webcam index such as ``0`` or a stream URL (RTSP,
HTTP...: video out; stop with Ctrl-C or ``max_frames``).

Frames are resized to the size the obfuscator was trained at (the detector's scale), then
obfuscated. A temporal obfuscator sees each video frame with the frames before it (the first
frame repeated at the start); a folder's images are stills. A video keeps its source's frame
rate and frame count, and carries no audio and none of the source's container metadata
unless ``keep_audio`` (audio only, still no metadata). Outputs appear only when complete and
never replace the source or anything Veil did not write (see :mod:`veil.deployment.outputs`).
"""

from __future__ import annotations

import contextlib
import itertools
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from veil.data.sources import IMAGE_SUFFIXES, VIDEO_SUFFIXES, Stream, folder_media, open_stream, parse_source
from veil.data.video import read_image, resize, write_video
from veil.deployment.audio import AUDIO_WARNING, mux_audio
from veil.deployment.outputs import check_folder_targets, check_output, publish, staged_folder
from veil.deployment.runtime import ClipWindow
from veil.errors import VeilError
from veil.io import atomic_path
from veil.obfuscators.base import clip_length
from veil.training.state import load_models

Progress = Callable[[int, int | None], None]
WRITABLE_VIDEO = {".mp4", ".m4v", ".mov", ".mkv", ".avi"}  # containers write_video's codecs fit


@torch.no_grad()
def apply(obfuscator: nn.Module, frames: list[np.ndarray], device: torch.device | str = "cpu",
          window: ClipWindow | None = None) -> list[np.ndarray]:
    """Obfuscate a list of RGB uint8 frames of one size.

    A temporal obfuscator gets each frame's clip from ``window`` (consecutive frames of one
    video); without one, each frame is a still, its clip that frame repeated."""
    x = np.stack(frames)
    length = clip_length(obfuscator)
    if length > 1:
        x = window(x) if window is not None else np.repeat(x[:, None], length, axis=1)
    y = obfuscator(torch.from_numpy(x).movedim(-1, -3).float().div_(255).to(device))
    y = y.clamp_(0, 1).mul_(255).round_().to(torch.uint8)
    return list(y.permute(0, 2, 3, 1).cpu().numpy())


class _Counter:
    """Frames done across every file of one call, reported to ``progress``."""

    def __init__(self, progress: Progress | None, total: int | None) -> None:
        self.progress, self.total, self.done = progress, total, 0

    def add(self, n: int) -> None:
        self.done += n
        if self.progress:
            self.progress(self.done, self.total)


def _batched(frames: Iterable[np.ndarray], obfuscator: nn.Module, size: tuple[int, int],
             counter: _Counter, batch: int = 8, stills: bool = False) -> Iterator[np.ndarray]:
    """Obfuscated ``frames``: consecutive frames of one video (a temporal obfuscator keeps its
    previous frames across batches), or independent ``stills``."""
    window = ClipWindow(clip_length(obfuscator)) if clip_length(obfuscator) > 1 and not stills else None
    buf: list[np.ndarray] = []
    for frame in frames:
        buf.append(resize(frame, size))
        if len(buf) == batch:
            yield from apply(obfuscator, buf, window=window)
            counter.add(len(buf))
            buf = []
    if buf:
        yield from apply(obfuscator, buf, window=window)
        counter.add(len(buf))


def obfuscate_media(checkpoint: str | Path, source: str | Path, output: str | Path,
                    progress: Progress | None = None, frames: range | None = None, overwrite: bool = False,
                    keep_audio: bool = False, max_frames: int | None = None,
                    warn: Callable[[str], None] | None = None) -> int:
    """Obfuscate ``source`` into ``output``; returns the number of frames written.

    ``frames`` limits a video file to those frame indices (the demo obfuscates its test
    range); ``max_frames`` stops any video or stream after that many frames. ``warn`` gets
    the audio warning once the inputs are checked, when ``keep_audio`` is set.
    """
    output = Path(output)
    if max_frames is not None and max_frames < 1:
        raise VeilError(f"--max-frames must be at least 1, got {max_frames}")
    given = parse_source(source)  # the one rule for files, folders, webcams and streams
    path = given.path  # None for a webcam or a stream
    if path is not None and given.kind == "folder":
        media = folder_media(path)
        check_output(path, output, folder=True, overwrite=overwrite)
        obfuscator, size = _load(checkpoint)
        if keep_audio and warn:
            warn(AUDIO_WARNING)
        return _obfuscate_folder(obfuscator, size, path, media, output, progress, keep_audio)
    if path is not None and path.suffix.lower() in IMAGE_SUFFIXES:
        raise VeilError("pass a folder of images, or a video file")
    if given.live and keep_audio:
        raise VeilError("--keep-audio works on video files and folders, not on webcams or streams")
    if output.suffix.lower() not in WRITABLE_VIDEO:
        raise VeilError(f"output of a video must be a video file ({', '.join(sorted(WRITABLE_VIDEO))}), got {output}")
    check_output(path, output, folder=False, overwrite=overwrite)
    obfuscator, size = _load(checkpoint)
    if keep_audio and warn:
        warn(AUDIO_WARNING)
    stream = open_stream(given)
    total = len(frames) if frames is not None else stream.total
    if max_frames is not None:
        total = min(total, max_frames) if total is not None else max_frames
    counter = _Counter(progress, total)
    return _obfuscate_video(obfuscator, size, stream, output, counter, frames, max_frames,
                            audio_from=path if keep_audio else None)


def _load(checkpoint: str | Path) -> tuple[nn.Module, tuple[int, int]]:
    obfuscator, _, meta = load_models(checkpoint)
    return obfuscator, tuple(meta.get("frame_size") or (640, 480))  # type: ignore[return-value]


def _obfuscate_video(obfuscator: nn.Module, size: tuple[int, int], stream: Stream, output: Path, counter: _Counter,
                     frames: range | None = None, max_frames: int | None = None,
                     audio_from: Path | None = None) -> int:
    """Write the obfuscated frames of ``stream`` to ``output`` at the stream's own frame rate."""
    decoded: Iterable[np.ndarray] = iter(stream)
    if frames is not None:
        # Stop decoding once past the range instead of reading the rest of the video.
        indexed = itertools.takewhile(lambda item: item[0] < frames.stop, enumerate(decoded))
        decoded = (image for index, image in indexed if index in frames)
    if max_frames is not None:
        decoded = itertools.islice(decoded, max_frames)
    with contextlib.ExitStack() as stack:
        if stream.live:
            stopped = stack.enter_context(_stop_on_interrupt())
            decoded = itertools.takewhile(lambda _image: not stopped(), decoded)
        with atomic_path(output) as tmp:
            n = write_video(tmp, _batched(decoded, obfuscator, size, counter), stream.fps)
            if n == 0:
                raise VeilError(f"no frames of {stream.name} in the range {frames}")
            if audio_from is not None:
                with atomic_path(tmp) as muxed:
                    mux_audio(tmp, audio_from, muxed)
    return n


@contextlib.contextmanager
def _stop_on_interrupt() -> Iterator[Callable[[], bool]]:
    """Ctrl-C ends a live stream cleanly: the frames so far become a complete video."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop.is_set
        return
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        yield stop.is_set
    finally:
        signal.signal(signal.SIGINT, previous)


def _mirrored(relative: Path) -> str:
    """Same relative name; a video whose container OpenCV cannot write becomes .mp4."""
    if relative.suffix.lower() in VIDEO_SUFFIXES and relative.suffix.lower() not in WRITABLE_VIDEO:
        relative = relative.with_suffix(".mp4")
    return relative.as_posix()


def _obfuscate_folder(obfuscator: nn.Module, size: tuple[int, int], source: Path, media: list[Path],
                      output: Path, progress: Progress | None, keep_audio: bool) -> int:
    targets = {p: _mirrored(p.relative_to(source)) for p in media}
    # Case-insensitive file systems would merge names that differ only in case.
    clashes = [t for t, n in Counter(t.lower() for t in targets.values()).items() if n > 1]
    if clashes:
        raise VeilError(f"two inputs would both be written as {output / clashes[0]}: rename one of them")
    check_folder_targets(output, list(targets.values()))
    images = [p for p in media if p.suffix.lower() in IMAGE_SUFFIXES]
    videos = [p for p in media if p not in set(images)]
    known = [_frame_count(p) for p in videos]  # also refuses an undecodable video before any work
    counter = _Counter(progress, len(images) + sum(known) if None not in known else None)  # type: ignore[arg-type]
    with staged_folder(output) as stage:
        obfuscated = _batched((read_image(p) for p in images), obfuscator, size, counter, stills=True)
        for path, image in zip(images, obfuscated, strict=True):  # strict: runs the generator to its end
            _write_image(stage / targets[path], image)
        for path in videos:
            target = stage / targets[path]
            target.parent.mkdir(parents=True, exist_ok=True)
            _obfuscate_video(obfuscator, size, open_stream(path), target, counter,
                             audio_from=path if keep_audio else None)
        publish(stage, output, list(targets.values()), str(source))
    return counter.done


def _frame_count(path: Path) -> int | None:
    stream = open_stream(path)
    stream.close()
    return stream.total


def _write_image(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise VeilError(f"cannot write image {path}")
