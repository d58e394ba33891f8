"""One attacker fit's result on disk, so that a long audit (the cross-fitted one takes hours on 2
cores) resumes after a stop without fitting again what it already fitted.

A fit is stored as one ``.npz`` (written to a temporary file, then renamed): its predictions,
its budget as JSON text, and, for identity, its class scores on the test and train crops. It is
read with ``allow_pickle=False``: a cache file can hold arrays and text, never code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from veil.audit.figures import Scores
from veil.io import atomic_path

Fit = tuple[np.ndarray, dict, Scores | None]


def slug(name: str) -> str:
    """A method name as one folder name: "gaussian_blur (matched)" -> "gaussian_blur_matched"."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "method"


def write(stem: Path, pred: np.ndarray, budget: dict, scores: Scores | None) -> None:
    arrays: dict[str, np.ndarray] = {"pred": np.asarray(pred), "budget": np.array(json.dumps(budget))}
    if scores is not None:
        arrays.update(test=scores.test, train=scores.train, classes=np.asarray(scores.classes))
    path = stem.with_suffix(".npz")
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        # numpy's stub matches **kwds against the allow_pickle: bool keyword too; these are all arrays
        np.savez(f, **arrays)  # type: ignore[arg-type]


def read(stem: Path) -> Fit | None:
    """The stored fit, or None if there is none (or it is unreadable: then it is fitted again)."""
    path = stem.with_suffix(".npz")
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            scores = Scores(z["test"], z["train"], z["classes"]) if "test" in z else None
            return z["pred"], json.loads(str(z["budget"])), scores
    except (OSError, ValueError, KeyError):
        return None
