"""Detect-then-anonymise reuses the pseudo-labels only for the very detector that made them:
compared by a hash of its weights, not by its checkpoint's file name."""

from __future__ import annotations

import copy

import torch

from veil.audit.prepare import _same_detector
from veil.detectors.fingerprint import fingerprint
from veil.io import read_json


def test_same_detector_is_decided_by_the_weights(yolo, dataset):
    manifest = read_json(dataset / "manifest.json")
    assert manifest["detector"]["fingerprint"] == fingerprint(yolo)
    assert _same_detector(yolo, manifest)
    other = copy.deepcopy(yolo)  # same name, same spec, same file name: one weight differs
    with torch.no_grad():
        next(other.parameters()).view(-1)[0] += 1e-3
    assert other.spec == yolo.spec and not _same_detector(other, manifest)
    # a dataset prepared before hashes were recorded never matches: the detector runs again
    legacy = {**manifest, "detector": {k: v for k, v in manifest["detector"].items() if k != "fingerprint"}}
    assert not _same_detector(yolo, legacy)


def test_fingerprint_covers_buffers_and_scalars():
    a = torch.nn.BatchNorm1d(3)
    b = copy.deepcopy(a)
    assert fingerprint(a) == fingerprint(b)
    b.num_batches_tracked += 1  # a 0-d buffer
    assert fingerprint(a) != fingerprint(b)
