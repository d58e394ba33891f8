"""How many identities can the audit rest on? Count the ByteTrack pseudo-identities of a prepared
dataset (default: the demo's vtest) at the reid protocol's minimum track length, for the quick
audit's val+test footage, the whole clip as one sequence, and each fold of a K-fold cross-fit.

    python bench/count_identities.py [DATASET] [--folds 2 3] [--out bench/results/identities-vtest.json]

Writes, per footage: frames, identities (tracks with >= min_track crops and both an
attacker-train and an attacker-test part after the time gap), and attacker-test crops.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from veil.audit.config import PRESETS
from veil.audit.crossfit import fold_dataset, plan_folds
from veil.audit.frames import AuditFrames
from veil.data.identities import build_identities
from veil.data.sources import cache_dir
from veil.errors import VeilError
from veil.io import read_json, write_json


def count(dataset: Path, splits: tuple[str, ...], min_track: int, gap: float) -> dict:
    frames = AuditFrames.load(dataset, dict.fromkeys(splits))
    view, _ = frames.split(*splits)
    try:
        crops = build_identities(view, min_track=min_track, gap=gap)
    except VeilError:
        return {"frames": len(view), "identities": 0, "test_crops": 0}
    return {"frames": len(view), "identities": int(len(set(crops.identity.tolist()))),
            "test_crops": int((crops.split == "test").sum()), "train_crops": int((crops.split == "train").sum())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", type=Path, nargs="?", default=cache_dir() / "datasets" / "vtest-640x480-5fps-yolo")
    parser.add_argument("--folds", type=int, nargs="*", default=[2, 3])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "identities-vtest.json")
    args = parser.parse_args()
    config = PRESETS["strong"]
    gap, min_track = config.time_gap, config.min_track
    result: dict = {"dataset": str(args.dataset), "min_track": min_track, "time_gap_s": gap,
                    "quick_audit_val_test": count(args.dataset, ("val", "test"), min_track, gap),
                    "whole_clip": count(args.dataset, ("train", "val", "test"), min_track, gap), "cross_fit": {}}
    records = read_json(args.dataset / "manifest.json")["frames"]
    for k in args.folds:
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            for fold in plan_folds(records, k, gap):
                ds = fold_dataset(args.dataset, Path(tmp) / f"fold{fold.index}", fold)
                rows.append({"fold": fold.index, "time_range_s": list(fold.time_range),
                             **count(ds, ("test",), min_track, gap)})
        result["cross_fit"][str(k)] = {"folds": rows, "identities": sum(r["identities"] for r in rows),
                                       "test_crops": sum(r["test_crops"] for r in rows)}
    write_json(args.out, result)
    print(result)


if __name__ == "__main__":
    main()
