"""What several benches share: the detector a prepared dataset was labelled with."""

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
