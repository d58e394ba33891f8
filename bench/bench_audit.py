"""Benchmark: wall time of each privacy-audit stage -> JSON.

    python bench/bench_audit.py CHECKPOINT DATASET [--preset fast] [--sweep] [--out ...]

Runs the real audit (real attackers, real detector) and records its stage times, the
total, and the headline privacy figures next to them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from common import dataset_detector

from veil.audit import run_audit
from veil.io import write_json
from veil.training.state import load_models


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    detector = dataset_detector(args.dataset)
    obfuscator = load_models(args.checkpoint)[0]
    start = time.perf_counter()
    report_dir = Path(__file__).parent / "results" / f"audit-{args.preset}{'-sweep' if args.sweep else ''}"
    overrides = {"seeds": args.seeds} if args.seeds else {}
    report = run_audit(args.dataset, obfuscator, report_dir, detector, preset=args.preset, sweep=args.sweep,
                       overrides=overrides, progress=lambda line: print(f"{time.perf_counter() - start:7.1f}s {line}",
                                                                        flush=True))
    result = {
        "preset": args.preset,
        "sweep": args.sweep,
        "seeds": report.config["seeds"],
        "threads": torch.get_num_threads(),
        "total_s": round(time.perf_counter() - start, 1),
        "stage_seconds": report.stage_seconds,
        "verdict": report.verdict.model_dump(mode="json") if report.verdict else None,
    }
    out = args.out or Path(__file__).parent / "results" / f"audit-{args.preset}{'-sweep' if args.sweep else ''}.json"
    write_json(out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
