"""The audit's attribute task: which attributes are attacked is decided on the attacker-train
labels alone, never on the test labels."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from veil.audit.config import AuditConfig
from veil.audit.frames import AuditFrames
from veil.audit.labels import attribute_task
from veil.io import read_json


def _write_csv(path, dataset, value_for):
    """One CSV row per pseudo-label box: attributes from ``value_for(split, rng)``."""
    manifest, labels = read_json(dataset / "manifest.json"), read_json(dataset / "labels.json")
    rng = np.random.default_rng(0)
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["frame", "x1", "y1", "x2", "y2", "const_in_train", "const_in_test", "varied"])
        for split in ("train", "test"):
            for name in manifest["splits"][split]:
                for box in labels[name]["boxes"]:
                    out.writerow([name, *box, *value_for(split, rng)])


@pytest.fixture(scope="module")
def frames(dataset):
    return AuditFrames.load(dataset, {"train": 20, "test": None})


def test_attribute_selection_ignores_the_test_labels(tmp_path, dataset, frames):
    def labels(split, rng):
        flip = int(rng.integers(0, 2))
        return (1, flip, int(rng.integers(0, 2))) if split == "train" else (flip, 1, int(rng.integers(0, 2)))

    _write_csv(tmp_path / "a.csv", dataset, labels)
    config = AuditConfig(max_attribute_train=None, max_attribute_test=None)
    task = attribute_task(frames, config, tmp_path / "a.csv")
    # one value on every train crop: dropped, whatever the test crops say
    assert task.dropped == ["const_in_train"]
    # one value on every TEST crop but varied in train: kept (the test labels do not decide)
    assert task.table.names == ["const_in_test", "varied"]

    def flipped(split, rng):  # same train labels, entirely different test labels
        a, b, c = labels(split, rng)
        return (a, b, c) if split == "train" else (1 - a, 0, 1 - c)

    _write_csv(tmp_path / "b.csv", dataset, flipped)
    assert attribute_task(frames, config, tmp_path / "b.csv").table.names == task.table.names


def test_attribute_task_splits_and_groups(dataset, frames):
    task = attribute_task(frames, AuditConfig(max_attribute_train=None, max_attribute_test=None))
    train, _ = task.part("train")
    val, _ = task.part("val")
    test, y_test = task.part("test")
    assert len(train) and len(val) and len(test)
    assert train.time.max() <= val.time.min()  # early stopping holds out the latest train frames
    assert set(train.frame) <= set(frames.positions["train"]) and set(test.frame) <= set(frames.positions["test"])
    assert len(task.groups) == len(test) == len(y_test)
    assert len(np.unique(task.groups)) < len(test)  # crops of one track share a bootstrap group
