"""What several benches share: the detector a prepared dataset was labelled with, and runs grouped per recipe."""

from __future__ import annotations

import sys
from pathlib import Path

from veil.detectors import DETECTORS
from veil.io import read_json


def dataset_detector(dataset: Path):
    """The registry detector ``dataset`` was pseudo-labelled with, built by its name and default
    weights. Weights are never loaded from a path read out of a manifest (an Ultralytics ``.pt`` is
    a pickle), so a dataset labelled with custom weights is refused with one error line."""
    spec = read_json(dataset / "manifest.json")["detector"]
    if spec.get("weights"):
        sys.exit(f"error: {dataset} was labelled with custom detector weights ({spec['weights']}); the benches "
                 "load only a registry detector's default weights")
    return DETECTORS.build(spec["name"])


def seed_groups(names) -> dict[str, list[str]]:
    """Names of the form RECIPE/sSEED (e.g. "bnJ/s0") grouped per recipe, in order; other names are left out."""
    groups: dict[str, list[str]] = {}
    for name in names:
        recipe, sep, seed = name.rpartition("/s")
        if sep and seed.isdigit():
            groups.setdefault(recipe, []).append(name)
    return groups


def relative_ap_over_seeds(aps: list[float]) -> dict:
    """Min and mean relative AP over training seeds: issue 18's utility rule (>= 0.85 on every seed)."""
    return {"min": min(aps), "mean": round(sum(aps) / len(aps), 4), "per_seed": aps,
            "every_seed_meets_0.85": min(aps) >= 0.85}
