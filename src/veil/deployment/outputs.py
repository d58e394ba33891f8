"""Where obfuscated output may go: never over the source, never over what Veil did not write.

A folder that ``veil obfuscate`` creates carries a marker file listing every file it wrote,
with its SHA-256. ``--overwrite`` replaces an existing output file, or, in an existing
output folder, the files its marker lists and that still hold what Veil wrote. A folder
without the marker is never touched, and a file Veil did not write (or that was edited
since) is never deleted or overwritten.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from veil.data.sources import sha256
from veil.errors import VeilError
from veil.io import read_json, write_json

MARKER = ".veil-obfuscated.json"


def check_output(source: Path | None, output: Path, folder: bool, overwrite: bool) -> None:
    """Refuse an output that overlaps the source or replaces what it must not.

    ``source`` is None for live sources (webcam, URL); ``folder``: the output is a folder.
    """
    out = output.resolve()
    if source is not None:
        src = source.resolve()
        if out == src or (output.exists() and source.exists() and os.path.samefile(output, source)):
            raise VeilError(f"the output {output} is the source itself: choose another output")
        if src in out.parents:
            raise VeilError(f"the output {output} is inside the source folder {source}: choose an output outside it")
        if out in src.parents:
            raise VeilError(f"the output {output} contains the source {source}: choose an output that does not")
    if not output.exists() and not output.is_symlink():
        return
    if folder:
        if not output.is_dir():
            raise VeilError(f"the output {output} exists and is not a folder: a folder obfuscates into a folder")
        if not overwrite:
            raise VeilError(f"the output folder {output} already exists "
                            "(pass --overwrite to replace the files Veil wrote in it)")
        if not (output / MARKER).is_file():
            raise VeilError(f"{output} was not written by veil obfuscate (no {MARKER}): "
                            "refusing to replace anything in it, even with --overwrite")
    else:
        if output.is_dir():
            raise VeilError(f"the output {output} is a folder: a video obfuscates into a video file")
        if not overwrite:
            raise VeilError(f"the output {output} already exists (pass --overwrite to replace it)")


def written_files(folder: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of each file veil obfuscate wrote into ``folder`` (its marker)."""
    marker = read_json(folder / MARKER)
    files = marker.get("files") if isinstance(marker, dict) else None
    # A marker is a plain file anyone can edit: it may only name files inside the folder.
    if not isinstance(files, dict) or not all(_inside(f) and isinstance(h, str) for f, h in files.items()):
        raise VeilError(f"unreadable marker {folder / MARKER}: refusing to replace anything in {folder}")
    return files


def _ours(folder: Path, relative: str, written: dict[str, str]) -> bool:
    """Whether ``folder/relative`` still holds exactly what Veil wrote there."""
    path = folder / relative
    return relative in written and path.is_file() and not path.is_symlink() and sha256(path) == written[relative]


def _inside(relative: object) -> bool:
    return (isinstance(relative, str) and relative != "" and not Path(relative).is_absolute()
            and ".." not in Path(relative).parts and relative != MARKER)


def check_folder_targets(output: Path, relative: list[str]) -> None:
    """Before any work: refuse if a planned file would replace a user's file in ``output``."""
    if not output.is_dir():
        return
    written = written_files(output)
    clash = [r for r in relative if (output / r).exists() or (output / r).is_symlink()]
    theirs = [r for r in clash if not _ours(output, r, written)]
    if theirs:
        raise VeilError(f"{output / theirs[0]} was not written by veil obfuscate (or was changed since): "
                        "refusing to overwrite it")


@contextlib.contextmanager
def staged_folder(output: Path) -> Iterator[Path]:
    """Yield an empty staging folder beside ``output``; on success, publish it with :func:`publish`."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}."))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # only ever our own staging folder


def publish(staging: Path, output: Path, relative: list[str], source: str) -> None:
    """Move the files of ``staging`` into ``output`` and record them in its marker.

    A new output is one rename of the whole folder. An existing Veil output gets each file
    replaced by a rename; files its old marker lists that this run did not write are
    removed; nothing else in it is touched.
    """
    marker = {"format": "veil-obfuscated", "source": source,
              "files": {rel: sha256(staging / rel) for rel in sorted(relative)}}
    if not output.exists():
        write_json(staging / MARKER, marker)
        os.replace(staging, output)
        return
    written = written_files(output)
    stale = [rel for rel in sorted(set(written) - set(relative)) if _ours(output, rel, written)]
    for rel in relative:
        (output / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / rel, output / rel)
    for rel in stale:
        (output / rel).unlink()
        with contextlib.suppress(OSError):  # only empty folders go: rmdir refuses any other
            (output / rel).parent.rmdir()
    write_json(output / MARKER, marker)
