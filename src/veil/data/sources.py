"""Named footage sources. ``vtest``: OpenCV's 795-frame campus CCTV clip from Debian's opencv-doc.

The clip is fetched with ``apt-get download`` (no root: it only writes into the current
folder) and unpacked with ``dpkg-deb``, into the user cache, never system-wide.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from platformdirs import user_cache_dir

from veil.errors import VeilError
from veil.io import atomic_path

VTEST_MEMBER = "./usr/share/doc/opencv-doc/examples/data/vtest.avi"


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
    """Path of vtest.avi, fetched into the cache on first use."""
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


def resolve_source(source: str) -> Path:
    """Map a named source (``vtest``) to a path; anything else is taken as a path."""
    if source == "vtest":
        return vtest_path()
    path = Path(source)
    if not path.exists():
        raise VeilError(f"source not found: {path}")
    return path
