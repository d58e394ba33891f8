"""A finished fold of a cross-fitted audit, on disk: what pooling needs from it, so that a
restarted run skips the fold (its frames, transforms, detectors and attacks) instead of redoing it.

The attacker fits are cached one by one (``veil.audit.fit_cache``); a fold also spends time on
what is not an attacker fit (loading and tracking its frames, utility under every detector, the
reconstruction attack, the sweep's probes), which at the strong preset takes many minutes. Once a
fold is done, its raw predictions (every method, task, attacker and seed), its number of AP frames
and its frame grid are stored as one ``.npz`` (arrays and JSON text only, read with
``allow_pickle=False``) beside its ``report.json``, under a key of the fold's checkpoint and audit
settings: a changed checkpoint or setting is audited again.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from veil.audit.attacks import Predictions
from veil.audit.figures import Scores
from veil.io import atomic_path

#: the pieces of one key: method, task, then a field; "|" never occurs in a method or attacker name
SEP = "|"


def _key(*parts: object) -> str:
    return SEP.join(str(p) for p in parts)


def save(path: Path, key: dict, raw: dict[str, dict[str, Predictions]], ap_frames: int,
         grid: dict[str, torch.Tensor]) -> None:
    """Write the fold's pooled inputs to ``path`` (atomically)."""
    arrays: dict[str, np.ndarray] = {}
    layout: dict = {"key": key, "ap_frames": ap_frames, "grid": list(grid), "raw": {}}
    for method, tasks in raw.items():
        layout["raw"][method] = {}
        for task, p in tasks.items():
            seeds = {a: len(runs) for a, runs in p.pred.items()}
            layout["raw"][method][task] = {"task": p.task, "seeds": seeds, "budgets": p.budgets,
                                           "scored": sorted(p.scores), "gallery": p.gallery is not None}
            arrays[_key(method, task, "truth")] = np.asarray(p.truth)
            arrays[_key(method, task, "groups")] = np.asarray(p.groups)
            if p.gallery is not None:
                arrays[_key(method, task, "gallery")] = np.asarray(p.gallery)
            for attacker, runs in p.pred.items():
                for seed, pred in enumerate(runs):
                    arrays[_key(method, task, "pred", attacker, seed)] = np.asarray(pred)
            for attacker, scored in p.scores.items():
                for seed, s in enumerate(scored):
                    for part in ("test", "train", "classes"):
                        arrays[_key(method, task, part, attacker, seed)] = np.asarray(getattr(s, part))
    for k, frames in enumerate(grid.values()):
        arrays[_key("grid", k)] = frames.cpu().numpy()
    arrays["layout"] = np.array(json.dumps(layout, default=str))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]  # numpy's stub mistakes the names for allow_pickle


def load(path: Path, key: dict) -> tuple[dict[str, dict[str, Predictions]], int, dict[str, torch.Tensor]] | None:
    """The stored fold, or None when there is none, it was stored under another key, or it is unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            layout = json.loads(str(z["layout"]))
            if layout["key"] != json.loads(json.dumps(key, default=str)):  # compared as JSON: tuples read back as lists
                return None
            raw: dict[str, dict[str, Predictions]] = {}
            for method, tasks in layout["raw"].items():
                raw[method] = {}
                for task, t in tasks.items():
                    pred = {a: [z[_key(method, task, "pred", a, s)] for s in range(n)] for a, n in t["seeds"].items()}
                    scores = {a: [Scores(*(z[_key(method, task, part, a, s)] for part in ("test", "train", "classes")))
                                  for s in range(t["seeds"][a])] for a in t["scored"]}
                    raw[method][task] = Predictions(
                        task=t["task"], truth=z[_key(method, task, "truth")], groups=z[_key(method, task, "groups")],
                        pred=pred, budgets=t["budgets"], scores=scores,
                        gallery=z[_key(method, task, "gallery")] if t["gallery"] else None)
            grid = {name: torch.from_numpy(z[_key("grid", k)]) for k, name in enumerate(layout["grid"])}
            return raw, int(layout["ap_frames"]), grid
    except (OSError, ValueError, KeyError, TypeError):
        return None
