"""Atomic file writes and safetensors + JSON checkpoints.

Everything Veil writes goes to a temporary file in the target folder and is renamed into
place, so a killed process never leaves a half-written output behind. Checkpoints are
safetensors (tensors) plus JSON (config and state), never pickles.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from veil.errors import VeilError

_HEADER_KEY = "veil"  # safetensors header entry holding the checkpoint's meta as JSON


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix or path.suffix)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600 files; outputs should look ordinary
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


# safetensors >= 0.8 saves through its own ``.tmpXXXXXX`` file (Rust's tempfile naming)
# beside the target, so a kill inside save_file leaves one of those too.
_SAFETENSORS_TEMPORARY = re.compile(r"\.tmp[A-Za-z0-9]{6}")


def remove_stale_temporaries(folder: str | os.PathLike, names: list[str]) -> None:
    """Delete temporaries that a killed process left for ``names`` in ``folder``."""
    folder = Path(folder)
    stale = [p for name in names for p in folder.glob(f".{name}.*")]
    stale += [p for p in folder.glob(".tmp*") if _SAFETENSORS_TEMPORARY.fullmatch(p.name)]
    for path in stale:
        path.unlink(missing_ok=True)


def write_json(path: str | os.PathLike, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise VeilError(f"file not found: {path}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise VeilError(f"not valid JSON: {path} ({exc})") from None


def save_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Write ``path`` (safetensors) and ``path.with_suffix('.json')`` atomically.

    ``meta`` goes into the safetensors header as well as the JSON beside it. The two files
    are renamed into place one after the other, so a kill between the renames would pair
    new tensors with old JSON; the header copy is the one :func:`load_checkpoint` trusts.
    """
    path = Path(path)
    meta = {**meta, "tensor_file": path.name}
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={_HEADER_KEY: json.dumps(meta)})
        size = tmp.stat().st_size
    write_json(path.with_suffix(".json"), {**meta, "tensor_bytes": size})


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint written by :func:`save_checkpoint`; raise VeilError if it is unusable."""
    path = Path(path)
    if path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    meta_path = path.with_suffix(".json")
    if not path.is_file():
        raise VeilError(f"checkpoint not found: {path}")
    if not meta_path.is_file():
        raise VeilError(f"checkpoint has no JSON config beside it: {meta_path}")
    meta = read_json(meta_path)
    if not isinstance(meta, dict) or meta.get("format") != "veil-checkpoint":
        raise VeilError(f"not a Veil checkpoint: {meta_path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = (f.metadata() or {}).get(_HEADER_KEY)
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (safe_open is no dict)
    except (SafetensorError, OSError, ValueError) as exc:
        raise VeilError(f"corrupt checkpoint {path}: {exc}") from None
    if header is not None:
        try:
            meta = json.loads(header)
        except json.JSONDecodeError as exc:
            raise VeilError(f"corrupt checkpoint header in {path}: {exc}") from None
        if not isinstance(meta, dict) or meta.get("format") != "veil-checkpoint":
            raise VeilError(f"not a Veil checkpoint: {path}")
    return tensors, meta
