"""The demo's time on a slow machine, projected from step times measured here -> JSON.

    python bench/demo_budget.py [--old bench/results/train-cpu-crop320-cpu.json]
                                [--new bench/results/train-cpu-cpu.json] [--out ...]

A newcomer's `make demo` on a slower 2-core machine (issue 18) took 31.5 min: install 3.5,
prepare 1.7, training 19.8 (525 steps at 2.26 s, 0.72 s here), evaluation + obfuscation + audit
6.5. Training is the one stage the preset sets, and the detector's forward and backward pass
dominates a step, so its cost scales with the crop's pixels. Both step times (the preset's former
320 px crop and its 256 px crop now) are measured by ``bench/bench_train.py`` on this machine, one after the other;
their ratio carries the slow machine's 2.3 s step over to the candidate. The other stages are
the slow machine's as reported (the candidate does not change them).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from veil.io import read_json, write_json
from veil.training.presets import PRESETS

RESULTS = Path(__file__).parent / "results"
#: the slow machine's `make demo`, as reported in issue 18 (minutes), and its step of today's preset
SLOW = {"install": 3.5, "prepare": 1.7, "evaluate_obfuscate_audit": 6.5, "step_s_old_preset": 2.3}
BUDGET_MIN = 25.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--old", type=Path, default=RESULTS / "train-cpu-crop320-cpu.json")
    parser.add_argument("--new", type=Path, default=RESULTS / "train-cpu-cpu.json")
    parser.add_argument("--out", type=Path, default=RESULTS / "demo-budget.json")
    args = parser.parse_args()
    old, new = read_json(args.old), read_json(args.new)
    ratio = new["train_step"]["median_s"] / old["train_step"]["median_s"]
    preset = PRESETS["cpu"]
    steps = preset["epochs"] * preset["steps_per_epoch"]
    train_min = steps * SLOW["step_s_old_preset"] * ratio / 60
    total = SLOW["install"] + SLOW["prepare"] + train_min + SLOW["evaluate_obfuscate_audit"]
    write_json(args.out, {
        "slow_machine_reported": SLOW,
        "step_here_s": {"old": {"crop": old["crop"], "median_s": old["train_step"]["median_s"]},
                        "new": {"crop": new["crop"], "median_s": new["train_step"]["median_s"]}},
        "threads": new["threads"], "step_ratio_new_over_old": round(ratio, 3),
        "preset": {"name": "cpu", "crop": preset["crop"], "steps": steps, "batch_size": preset["batch_size"]},
        "projected_minutes": {"install": SLOW["install"], "prepare": SLOW["prepare"], "train": round(train_min, 1),
                              "evaluate_obfuscate_audit": SLOW["evaluate_obfuscate_audit"], "total": round(total, 1)},
        "budget_minutes": BUDGET_MIN, "within_budget": total <= BUDGET_MIN,
    })
    print(f"training {train_min:.1f} min, total {total:.1f} min (budget {BUDGET_MIN:g})")


if __name__ == "__main__":
    main()
