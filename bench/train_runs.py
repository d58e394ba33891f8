"""Summarise finished training runs (e.g. bench/gpu_paper_preset.sh's, trained elsewhere) as JSON.

    python bench/train_runs.py RUN ... [--device-log device.log] --out bench/results/NAME.json

Per run folder: its recipe (obfuscator, its arguments, lr, schedule, seed), the epochs it finished, its
training seconds (the sum of log.csv's per-epoch times), the last validation relative AP, the wall time its
log recorded ("NAME rc=0 N s", bench/gpu_paper_preset.sh), and the test split's relative AP where
`veil eval utility ... --out RUN/utility.json` has run. A device log adds the machine and library versions.
"""

from __future__ import annotations

import argparse
import csv
import re
from datetime import UTC, datetime
from pathlib import Path

from common import relative_ap_over_seeds, seed_groups

from veil.io import read_json, write_json

RECIPE = ("obfuscator", "obfuscator_args", "lr", "lr_drop", "epochs", "batch_size", "crop", "steps_per_epoch",
          "amp", "seed")


def summarise(run: Path) -> dict:
    """One run folder's recipe, progress and utility."""
    card = read_json(run / "obfuscator.json")
    with (run / "log.csv").open() as f:
        rows = list(csv.DictReader(f))
    out: dict = {"recipe": {k: card["config"].get(k) for k in RECIPE}, "epochs_done": len(rows),
                 "train_seconds": round(sum(float(r["seconds"]) for r in rows), 1),
                 "val_relative_ap_last": round(float(rows[-1]["val_relative_ap"]), 4) if rows else None}
    for log in run.glob("*.log"):  # "NAME rc=0 269 s": the wall time under `timeout`, start-up included
        if m := re.search(r"rc=(\d+) (\d+) s", log.read_text(errors="replace")):
            out["exit_status"], out["wall_seconds"] = int(m[1]), int(m[2])
    if (run / "utility.json").is_file():
        out["relative_ap_test_split"] = round(read_json(run / "utility.json")["relative_ap"]["obfuscated"], 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--device-log", type=Path, help="bench/gpu_paper_preset.sh's device.log")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    runs = {"/".join(r.parts[-2:]): summarise(r) for r in args.runs}  # RECIPE/sSEED
    result: dict = {"date": datetime.now(UTC).strftime("%Y-%m-%d"), "runs": runs}
    if args.device_log:
        text = args.device_log.read_text(errors="replace")
        if m := re.search(r"^torch (\S+) (\S+) (\S+) (.+)$", text, re.M):
            result["device"] = {"torch": m[1], "torchvision": m[2], "ultralytics": m[3], "gpu": m[4].strip()}
        if m := re.search(r"all done at (\d+) s", text):
            result.setdefault("device", {})["all_runs_side_by_side_seconds"] = int(m[1])
    for recipe, names in seed_groups(runs).items():
        if aps := [runs[n]["relative_ap_test_split"] for n in names if "relative_ap_test_split" in runs[n]]:
            result.setdefault("recipes", {})[recipe] = {"relative_ap_test_split": relative_ap_over_seeds(aps)}
    write_json(args.out, result)


if __name__ == "__main__":
    main()
