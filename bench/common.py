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


#: the pseudo-attributes' hue classes (veil.data.attributes): a grey output cannot carry them by construction;
#: the rest (dark, grey, light, which half is lighter) are luminance, which it can
HUES = ("red", "yellow", "green", "blue", "purple")


def attribute_leaks(report) -> dict:
    """Per method with an attribute attack: its worst-case mA, and its strongest attacker's balanced accuracy
    per attribute, averaged over the hue attributes and over the luminance ones (chance 0.5 each): whether
    the mA left after colour removal comes from luminance."""
    out = {}
    for name, method in report.methods.items():
        a = method.attributes
        if a is None or not a.per_attribute:
            continue
        groups: dict[str, list[float]] = {"hue": [], "luminance": []}
        for attribute, value in a.per_attribute.items():
            groups["hue" if attribute.split("_")[-1] in HUES else "luminance"].append(value)
        out[name] = {"mA": round(a.worst_case.value, 4), "winner": a.winner,
                     **{g: round(sum(v) / len(v), 4) if v else None for g, v in groups.items()},
                     "attributes": {g: len(v) for g, v in groups.items()}, "per_attribute": a.per_attribute}
    return out
