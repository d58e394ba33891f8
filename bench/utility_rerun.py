"""Benchmark: does a recorded utility figure hold when the same preset is retrained on another machine? -> JSON.

    python bench/utility_rerun.py RUN=EVAL.json [RUN=EVAL.json ...] [--recorded bench/results/cpu-crop256-3seeds.json]
                                  [--out bench/results/cpu-preset-rerun.json]

Each RUN is a finished ``veil train`` folder and EVAL.json what ``veil eval utility RUN/obfuscator.safetensors
DATASET --split test --out EVAL.json`` wrote for it (the measurement the recorded JSON quotes). For each it reads
the training seed and recipe from the checkpoint and sets the relative person AP beside the recorded figure for
the same seed. It also records what could explain a
difference: this machine's CPU model, core count, thread setting, and the torch and torchvision versions.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import torch
import torchvision

from veil.io import read_json, write_json

RESULTS = Path(__file__).parent / "results"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", nargs="+", help="RUN=EVAL.json")
    parser.add_argument("--recorded", type=Path, default=RESULTS / "cpu-crop256-3seeds.json")
    parser.add_argument("--out", type=Path, default=RESULTS / "cpu-preset-rerun.json")
    args = parser.parse_args()
    recorded = read_json(args.recorded)["runs"] if args.recorded.is_file() else {}
    rows = {}
    start = time.perf_counter()
    for item in args.runs:
        run, _, eval_json = item.partition("=")
        config = read_json(Path(run) / "obfuscator.json")["config"]
        metrics = read_json(eval_json)
        seed = int(config["seed"])
        before = recorded.get(f"R{seed}", {}).get("relative_ap_test_40_frames")
        rows[f"seed {seed}"] = {
            "run": run, "obfuscator": config["obfuscator"], "crop": config["crop"],
            "steps": config["epochs"] * config["steps_per_epoch"],
            "relative_ap_test": round(metrics["relative_ap"]["obfuscated"], 4),
            "recorded_relative_ap_test": None if before is None else round(before, 4),
            "meets_0.85": metrics["relative_ap"]["obfuscated"] >= 0.85}
    aps = [r["relative_ap_test"] for r in rows.values()]
    write_json(args.out, {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"), "split_frames": metrics.get("split_frames"),
        "recorded": str(args.recorded.relative_to(RESULTS.parent.parent)) if args.recorded.is_file() else None,
        "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                    "torch": torch.__version__, "torchvision": torchvision.__version__},
        "runs": rows, "min_relative_ap_test": min(aps), "mean_relative_ap_test": round(sum(aps) / len(aps), 4),
        "seconds": round(time.perf_counter() - start, 1)})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
