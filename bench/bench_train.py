"""Benchmark: the real training step of ``veil train`` on a prepared dataset -> JSON.

    python bench/bench_train.py [DATASET] [--preset cpu|cpu-budget|paper] [--device cpu|cuda]
                                [--steps 8] [--crop N] [--obfuscator NAME]
                                [--out bench/results/train-<preset>-<device>.json]

Times the steps of ``Trainer.fit`` itself (batch cutting, the detector, every adversary's own
update and O's step, exactly as ``veil train`` runs them) on the preset's real batches from DATASET (default: the
demo's cached vtest dataset). The first step is a warm-up and is reported apart: it includes a
budget adversary's first frozen-O fit. A budget adversary's warm-up is switched off here, so
its per-step cost is what the timed steps show. Obfuscator parameters, MACs and 1-thread CPU
latency per 640x480 frame come from the audit's own cost function.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from veil.data.sources import cache_dir
from veil.evaluation.cost import obfuscator_cost
from veil.io import write_json
from veil.training.presets import make_config
from veil.training.trainer import Trainer

DEMO_DATASET = cache_dir() / "datasets" / "vtest-640x480-5fps-yolo"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", nargs="?", type=Path, default=DEMO_DATASET)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=8, help="timed steps after the warm-up step")
    parser.add_argument("--crop", type=int, help="override the preset's training crop (a cheaper preset's step)")
    parser.add_argument("--obfuscator", help="override the preset's obfuscator (mobilenet_ae: the former cpu preset)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if not (args.dataset / "manifest.json").is_file():
        sys.exit(f"error: no prepared dataset at {args.dataset} (run 'make demo' or 'veil data prepare' first)")
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    config = make_config(args.preset, args.dataset, epochs=1, steps_per_epoch=args.steps + 1, val_every=0,
                         crop=args.crop, obfuscator=args.obfuscator, adversary_options={"budget": {"warmup_steps": 0}})
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(args.dataset, Path(run_dir) / "run", config, device=args.device)
        stamps = []

        def on_step(*_):
            sync()
            stamps.append(time.perf_counter())

        sync()
        stamps.append(time.perf_counter())
        trainer.fit(on_step)  # one epoch of steps + 1 steps; the checkpoint comes after the last stamp
        obfuscator = trainer.obfuscator
        trainer.close()
    times = [b - a for a, b in zip(stamps, stamps[1:])]
    timed = times[1:]
    result = {
        "device": args.device,
        "device_name": torch.cuda.get_device_name(0) if args.device.startswith("cuda")
        else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "preset": args.preset,
        "obfuscator_name": config.obfuscator,
        "adversaries": config.adversaries,
        "batch": config.batch_size,
        "crop": config.crop,
        "train_step": {"median_s": statistics.median(timed), "max_s": max(timed), "all_s": timed,
                       "first_step_s": times[0]},
        "obfuscator": obfuscator_cost(obfuscator, measured="bench/bench_train.py, after the timed steps"),
    }
    out = args.out or Path(__file__).parent / "results" / (
        f"train-{args.preset}{f'-crop{args.crop}' if args.crop else ''}-{args.device.split(':')[0]}.json")
    write_json(out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
