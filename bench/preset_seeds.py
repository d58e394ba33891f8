"""Benchmark: one training preset over several seeds -> utility and privacy with intervals, JSON.

    python bench/preset_seeds.py RUN [RUN ...] [--dataset D] [--preset fast] [--seeds 3]
                                 --out bench/results/NAME.json

Each RUN is a finished ``veil train`` folder (one per training seed). Its relative person AP on
the test split is ``veil eval utility`` (computed here, or read from RUN/utility.json); the runs
are then audited together in ONE audit (``--preset fast --seeds 3 --baselines none``), so every
pair is judged by the paired verdict on the same resamples. The per-run training time comes
from RUN/log.csv.
"""

from __future__ import annotations

import argparse
import csv
import time
from datetime import UTC, datetime
from pathlib import Path

from common import dataset_detector

from veil.audit import run_audit
from veil.data.dataset import FrameDataset
from veil.data.sources import cache_dir
from veil.evaluation.utility import evaluate_utility
from veil.io import read_json, write_json
from veil.training.state import load_models


def _figure(f) -> dict:
    return {"value": f.value, "interval": list(f.interval), "per_seed": f.per_seed}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--dataset", type=Path, default=cache_dir() / "datasets" / "vtest-640x480-5fps-yolo")
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("runs") / "preset-seeds-audit")
    args = parser.parse_args()
    detector = dataset_detector(args.dataset)
    names = [f"R{k}" for k in range(len(args.runs))]
    models, utility, training = {}, {}, {}
    test = FrameDataset(args.dataset, "test")
    for name, run in zip(names, args.runs):
        obfuscator, deobfuscator, meta = load_models(run / "obfuscator.safetensors")
        models[name] = obfuscator
        stored = run / "utility.json"
        u = read_json(stored) if stored.is_file() else evaluate_utility(detector, test, obfuscator, deobfuscator)
        utility[name] = u["relative_ap"]["obfuscated"]
        with open(run / "log.csv") as f:
            seconds = [float(row["seconds"]) for row in csv.DictReader(f)]
        config = meta["config"]
        steps = int(config["epochs"]) * int(config["steps_per_epoch"])
        training[name] = {"run": str(run), "seed": config["seed"], "crop": config["crop"], "steps": steps,
                          "train_seconds": round(sum(seconds), 1),
                          # the median epoch: a stopped-and-resumed epoch does not skew the step time
                          "seconds_per_step": round(sorted(seconds)[len(seconds) // 2] / int(config["steps_per_epoch"]),
                                                    3)}
    start = time.perf_counter()
    report = run_audit(args.dataset, models, args.work, detector, preset=args.preset,
                       overrides={"seeds": args.seeds, "baselines": ()}, progress=print)
    runs = {"original": {"relative_ap_test_40_frames": 1.0, "relative_ap_audit_frames": 1.0}}
    for name in ["original", *names]:
        m = report.method(name)
        row = runs.setdefault(name, {})
        if name != "original":
            row.update(relative_ap_test_40_frames=utility[name], relative_ap_audit_frames=m.relative_ap,
                       **training[name])
        for protocol in report.protocols:
            row[f"identity_{protocol}"] = _figure(report.identity(name, protocol))
        ma = report.attributes(name)
        if ma is not None:
            row["attributes_mA"] = _figure(ma)
    v = report.verdict
    write_json(args.out, {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"), "machine": "2-core CPU, no GPU",
        "command": f"python bench/preset_seeds.py ({len(names)} runs; audit --preset {args.preset} --seeds "
                   f"{args.seeds} --baselines none, {time.perf_counter() - start:.0f} s)",
        "chance": report.chance.model_dump(mode="json"), "runs": runs,
        "pairs": [p.model_dump(mode="json") for p in (v.pairs or [])] if v else [],
        "pairs_summary": v.pairs_summary.model_dump(mode="json") if v and v.pairs_summary else None})
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
