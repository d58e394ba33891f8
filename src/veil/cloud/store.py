"""``--store``: the uploaded (obfuscated) frames an operator asked to keep, as files, within limits.

Files are ``STORE/CAMERA/<ns>-<pid>.<ext>``. Pruning touches only files of that exact shape
inside camera-named folders, so nothing Veil did not write is ever deleted; it removes
what is older than the age limit, then the oldest until the folder is within the size and
count limits. Each host prunes its own folder; the limits come from the shared state.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path

from veil.io import atomic_path
from veil.names import CAMERA_NAME

SUFFIXES = {"image/jpeg": ".jpg", "image/webp": ".webp", "image/png": ".png"}
_OURS = re.compile(r"\d{19}-\d+\.(jpg|webp|png)")


def store_frame(folder: Path, camera: str, body: bytes, media_type: str) -> Path:
    """Keep one uploaded frame as a file (written under a temporary name, then renamed)."""
    path = folder / camera / f"{time.time_ns():019d}-{os.getpid()}{SUFFIXES[media_type]}"
    with atomic_path(path) as tmp:
        tmp.write_bytes(body)
    return path


def stored_files(folder: Path) -> list[tuple[float, int, Path]]:
    """(mtime, size, path) of every frame file Veil wrote under ``folder``, oldest first."""
    out: list[tuple[float, int, Path]] = []
    if not folder.is_dir():
        return out
    for camera in folder.iterdir():
        if not camera.is_dir() or not CAMERA_NAME.fullmatch(camera.name):
            continue
        for path in camera.iterdir():
            if _OURS.fullmatch(path.name):
                try:
                    stat = path.stat()
                except FileNotFoundError:  # another worker pruned it first
                    continue
                out.append((stat.st_mtime, stat.st_size, path))
    return sorted(out)


def prune_store(folder: Path, max_age_s: float, max_bytes: int, max_files: int, now: float | None = None) -> int:
    """Delete stored frames beyond the limits, oldest first; return how many went."""
    now = time.time() if now is None else now
    files = stored_files(folder)
    total = sum(size for _, size, _ in files)
    removed = 0
    for i, (mtime, size, path) in enumerate(files):
        if mtime >= now - max_age_s and total <= max_bytes and len(files) - i <= max_files:
            break
        with contextlib.suppress(FileNotFoundError):  # another worker pruned it first
            path.unlink()
        total -= size
        removed += 1
    return removed
