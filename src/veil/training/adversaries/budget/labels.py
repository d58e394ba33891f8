"""The budget adversary's sensitive labels without hand labelling: ByteTrack tracks over the TRAIN
split are the pseudo-identities (``veil.data.identities``; or a user CSV), each track's earliest crops
train the budget models and its latest are held back to measure them."""

from __future__ import annotations

import csv
from dataclasses import dataclass

import numpy as np
import torch

from veil.errors import VeilError
from veil.training.adversaries.budget.options import BudgetOptions


@dataclass
class IdentityLabels:
    """Pseudo-identity boxes per training frame: boxes (n, 4), identity (n,), train (n,) bool."""

    boxes: list[torch.Tensor]
    identity: list[torch.Tensor]
    train: list[torch.Tensor]
    num_classes: int


def identity_labels(train_set, options: BudgetOptions) -> IdentityLabels:
    """Pseudo-identities of the TRAIN split (ByteTrack, or the user's CSV), split by time."""
    from veil.data.crops import CropSet
    from veil.data.identities import build_identities, split_by_time

    if options.identities_csv:
        crops = split_by_time(_read_identity_csv(options.identities_csv, train_set, CropSet), options.train_fraction)
        crops = crops.subset(crops.split != "")
        _, crops.identity = np.unique(crops.identity, return_inverse=True)
    else:
        crops = build_identities(train_set, min_track=options.min_track, train_fraction=options.train_fraction)
    n = len(train_set)
    boxes = [torch.zeros(0, 4) for _ in range(n)]
    ident = [torch.zeros(0, dtype=torch.long) for _ in range(n)]
    train = [torch.zeros(0, dtype=torch.bool) for _ in range(n)]
    for f in np.unique(crops.frame):
        sel = crops.frame == f
        boxes[f] = torch.as_tensor(crops.box[sel], dtype=torch.float32).reshape(-1, 4)
        ident[f] = torch.as_tensor(crops.identity[sel], dtype=torch.long)
        train[f] = torch.as_tensor(crops.split[sel] == "train")
    num_classes = int(crops.identity.max()) + 1 if len(crops) else 0
    if num_classes < 2:
        raise VeilError("the budget adversary needs at least 2 pseudo-identities in the training split")
    return IdentityLabels(boxes, ident, train, num_classes)


def _read_identity_csv(path: str, train_set, crop_set_type):
    position = {name: i for i, name in enumerate(train_set.names)}
    times = {f["name"]: float(f["time"]) for f in train_set.manifest["frames"]}
    rows = []
    try:
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                if row["frame"] in position:  # rows of other splits are ignored
                    rows.append((position[row["frame"]], [float(row[k]) for k in ("x1", "y1", "x2", "y2")],
                                 row["identity"], times.get(row["frame"], 0.0)))
    except (OSError, KeyError, ValueError) as exc:
        raise VeilError(f"cannot read identities CSV {path} (frame,x1,y1,x2,y2,identity): {exc}") from None
    if not rows:
        raise VeilError(f"identities CSV {path} has no row for a training frame")
    _, ident = np.unique([r[2] for r in rows], return_inverse=True)
    return crop_set_type(np.asarray([r[0] for r in rows]), np.asarray([r[1] for r in rows], np.float32), ident,
                         np.full(len(rows), "", dtype="<U5"), np.asarray([r[3] for r in rows]))
