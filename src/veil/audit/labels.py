"""Sensitive labels of the audit, all taken from the ORIGINAL frames: identity tasks (one per
protocol, see veil.audit.protocols) and the attribute task.

Every crop refers to a frame of the audit's one frame table (``AuditFrames.view``) and
carries the attacker split it belongs to: "train" (fit), "val" (early stopping only) or
"test". Which attributes are kept is decided on the attacker-train labels alone, so the
test labels never shape the task.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from veil.audit.config import AuditConfig
from veil.audit.frames import AuditFrames, FrameView
from veil.data.attributes import AttributeTable, drop_unbalanced, load_user_attributes, pseudo_attributes
from veil.data.crops import CropSet, all_crops
from veil.data.identities import hold_out_latest, track_identities
from veil.errors import VeilError
from veil.evaluation.privacy_metrics import attribute_chance, identity_chance


@dataclass
class IdentityTask:
    """Pseudo-identity crops of one protocol; ``crops.frame`` indexes the audit's frame table."""

    protocol: str
    crops: CropSet
    description: dict

    def part(self, split: str) -> CropSet:
        return self.crops.subset(self.crops.split == split)

    @staticmethod
    def of(protocol: str, crops: CropSet, positions: np.ndarray, config: AuditConfig, **description) -> IdentityTask:
        """Wrap protocol crops whose frames index a split view at ``positions`` of the table."""
        crops = CropSet(positions[crops.frame], crops.box, crops.identity, crops.split, crops.time, crops.extra)
        crops = hold_out_latest(crops, config.val_fraction)
        test = crops.split == "test"
        desc = {"identities": int(len(np.unique(crops.identity))),
                **{f"{s}_crops": int((crops.split == s).sum()) for s in ("train", "val", "test")},
                "min_train_to_test_gap_s": _min_gap(crops), "chance": identity_chance(crops.identity[test]),
                **description}
        return IdentityTask(protocol, crops, desc)


def _min_gap(crops: CropSet) -> float:
    """The smallest time between an identity's last attacker-train (or val) and first test crop."""
    gaps = []
    for pid in np.unique(crops.identity):
        mine = crops.identity == pid
        fit = mine & (crops.split != "test")
        test = mine & (crops.split == "test")
        if fit.any() and test.any():
            gaps.append(crops.time[test].min() - crops.time[fit].max())
    return round(float(min(gaps)), 3) if gaps else float("nan")


@dataclass
class AttributeTask:
    """Attribute labels of attacker-train/val crops (train split) and test crops (test split).

    ``groups`` holds the ByteTrack track of each test crop: the bootstrap resamples tracks,
    since one person's crops in neighbouring frames are not independent samples.
    """

    crops: CropSet  # split "train" / "val" / "test"
    table: AttributeTable  # one row per crop, in ``crops`` order
    source: str
    groups: np.ndarray  # test crops' track (or own index when untracked)
    dropped: list[str]

    def part(self, split: str) -> tuple[CropSet, np.ndarray]:
        keep = self.crops.split == split
        return self.crops.subset(keep), self.table.values[keep]

    def chance(self) -> dict:
        return attribute_chance(self.part("train")[1], self.part("test")[1])

    def describe(self) -> dict:
        train = self.part("train")[1]
        return {"source": self.source, "names": self.table.names, "dropped_as_unbalanced": self.dropped,
                **{f"{s}_crops": int((self.crops.split == s).sum()) for s in ("train", "val", "test")},
                "positive_rate": dict(zip(self.table.names, np.round(train.mean(0), 4).tolist()))
                if len(train) else {}}


def _sample(crops: CropSet, k: int | None, seed: int) -> CropSet:
    if k is None or len(crops) <= k:
        return crops
    return crops.subset(np.sort(np.random.default_rng(seed).choice(len(crops), k, replace=False)))


def _labels(view: FrameView, crops: CropSet, user_csv: str | Path | None) -> tuple[CropSet, AttributeTable, str]:
    if user_csv is None:
        return crops, pseudo_attributes(view.images, crops), "pseudo"
    table, keep = load_user_attributes(user_csv, crops, view.names)
    return crops.subset(keep), table, str(user_csv)


def _tracks(view, crops: CropSet) -> np.ndarray:
    """ByteTrack id of every crop (matched by frame and box); untracked crops get their own id."""
    tracked = track_identities(view)
    key = {(int(f), tuple(np.round(b, 2))): int(i) for f, b, i in zip(tracked.frame, tracked.box, tracked.identity)}
    ids = np.array([key.get((int(f), tuple(np.round(b, 2))), -1) for f, b in zip(crops.frame, crops.box)])
    fresh = ids.max(initial=0) + 1 + np.arange(len(ids))
    return np.where(ids >= 0, ids, fresh)


def attribute_task(frames: AuditFrames, config: AuditConfig, user_csv: str | Path | None = None) -> AttributeTask:
    """Attribute labels of train-split crops (attacker-train/val) and test-split crops."""
    train_view, train_pos = frames.split("train")
    test_view, test_pos = frames.split("test")
    train, table_train, source = _labels(train_view, _sample(all_crops(train_view), config.max_attribute_train,
                                                             config.seed), user_csv)
    test, table_test, _ = _labels(test_view, _sample(all_crops(test_view), config.max_attribute_test,
                                                     config.seed + 1), user_csv)
    # the 99%-one-value rule sees the attacker-train labels only: no peeking at the test labels
    kept = drop_unbalanced(table_train)
    if not kept.names:
        raise VeilError("every attribute is more than 99% one value in the attacker-train crops; "
                        "no attribute attack is possible")
    cols = [table_train.names.index(n) for n in kept.names]
    groups = _tracks(test_view, test)
    val = np.zeros(len(train), bool)
    if config.val_fraction > 0 and len(train):  # the latest train frames: early stopping only
        val = train.time >= np.quantile(train.time, 1 - config.val_fraction)
        if val.all():
            val[:] = False
    split = np.concatenate([np.where(val, "val", "train"), np.full(len(test), "test")]).astype("<U5")
    crops = CropSet(np.concatenate([train_pos[train.frame], test_pos[test.frame]]),
                    np.concatenate([train.box, test.box]).astype(np.float32), np.full(len(split), -1), split,
                    np.concatenate([train.time, test.time]))
    values = np.concatenate([table_train.values[:, cols], table_test.values[:, cols]])
    dropped = [n for n in table_train.names if n not in kept.names]
    return AttributeTask(crops, AttributeTable(kept.names, values), source, groups, dropped)
