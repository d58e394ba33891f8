"""Is a folder a prepared dataset? Checked without torch, so a CLI answers a wrong path at once."""

from __future__ import annotations

from pathlib import Path

from veil.errors import VeilError


def require_dataset(folder: str | Path) -> Path:
    """``folder`` as a Path, or a VeilError if ``veil data prepare`` did not write it."""
    folder = Path(folder)
    if not (folder / "manifest.json").is_file():
        raise VeilError(f"not a prepared dataset (no manifest.json): {folder}")
    return folder
