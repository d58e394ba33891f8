"""The demo's time on a slow machine, projected from a demo run and step times measured here -> JSON.

    python bench/demo_budget.py [--old bench/results/train-cpu-crop320-cpu.json]
                                [--new bench/results/train-cpu-cpu.json]
                                [--demo results/demo/metrics.json] [--out bench/results/demo-budget.json]
                                [--install-s S --prepare-s S]

A newcomer's `make demo` on a slower 2-core machine (issue 18) took 31.5 min: install 3.5,
prepare 1.7, training 19.8 (525 steps of the preset of the time, `mobilenet_ae` on 320 px crops, at
2.26 s), evaluation + obfuscation + audit 6.5.

The projection needs one factor, how much slower that machine is than this one. ``--old`` is that
same former step, timed here by ``bench/bench_train.py --obfuscator mobilenet_ae --crop 320`` at the
demo's thread count; the factor is 2.3 s over it. Every stage of a `veil demo` run measured here
(``--demo``: training, evaluation, obfuscation, audit) is scaled by that factor, since the audit
has grown since the slow machine's run and its 6.5 min no longer holds. Install and prepare are
the slow machine's as reported (the demo run here reused a prepared dataset), unless ``--install-s`` and
``--prepare-s`` give them as measured here on a fresh machine (``time make install``, and the first
preparation of vtest, its download included): then they are scaled like the other stages, and the
measured total here (install + prepare + the demo) is reported beside the projection. ``--new`` (this
preset's step, timed the same way) is reported beside it as a check on the training stage.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from veil.io import read_json, write_json
from veil.training.presets import PRESETS

RESULTS = Path(__file__).parent / "results"
#: the slow machine's `make demo`, as reported in issue 18 (minutes), and its step of the preset of the time
SLOW = {"install": 3.5, "prepare": 1.7, "evaluate_obfuscate_audit": 6.5, "step_s_old_preset": 2.3}
BUDGET_MIN = 25.0
DEMO_STAGES = ("train", "evaluate", "obfuscate", "audit")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--old", type=Path, default=RESULTS / "train-cpu-crop320-cpu.json")
    parser.add_argument("--new", type=Path, default=RESULTS / "train-cpu-cpu.json")
    parser.add_argument("--demo", type=Path, default=Path("results/demo/metrics.json"))
    parser.add_argument("--out", type=Path, default=RESULTS / "demo-budget.json")
    parser.add_argument("--install-s", type=float, help="`make install` on a fresh machine here, seconds")
    parser.add_argument("--prepare-s", type=float, help="the first preparation of vtest here, seconds")
    args = parser.parse_args()
    if (args.install_s is None) != (args.prepare_s is None):
        raise SystemExit("error: give both --install-s and --prepare-s, or neither")
    old, new, demo = read_json(args.old), read_json(args.new), read_json(args.demo)
    if old["threads"] != new["threads"]:
        raise SystemExit(f"error: {args.old} and {args.new} were timed on {old['threads']} and {new['threads']} "
                         "threads; time both alike")
    factor = SLOW["step_s_old_preset"] / old["train_step"]["median_s"]
    preset = PRESETS["cpu"]
    steps = preset["epochs"] * preset["steps_per_epoch"]
    measured = args.install_s is not None
    # install and prepare: measured here (then scaled like every stage), or the slow machine's as reported
    reported = {} if measured else {"install": SLOW["install"], "prepare": SLOW["prepare"]}
    here = {**({"install": args.install_s, "prepare": args.prepare_s} if measured else {}),
            **{stage: demo["stage_seconds"][stage] for stage in DEMO_STAGES}}
    projected = {**reported, **{stage: round(seconds * factor / 60, 1) for stage, seconds in here.items()}}
    total = sum(reported.values()) + sum(seconds * factor / 60 for seconds in here.values())
    write_json(args.out, {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "slow_machine_reported": SLOW,
        "step_here_s": {"old": {"obfuscator": old["obfuscator_name"], "crop": old["crop"],
                                "median_s": old["train_step"]["median_s"]},
                        "new": {"obfuscator": new["obfuscator_name"], "crop": new["crop"],
                                "median_s": new["train_step"]["median_s"]}},
        "threads": new["threads"],
        "slow_over_here": round(factor, 3),
        "preset": {"name": "cpu", "obfuscator": preset.get("obfuscator"), "crop": preset["crop"], "steps": steps,
                   "batch_size": preset["batch_size"]},
        "demo_here_seconds": here,
        "install_and_prepare": "measured here, scaled" if measured else "the slow machine's, as reported",
        "demo_config": {k: demo["train_config"][k] for k in ("obfuscator", "obfuscator_args", "crop", "lr")},
        "demo_relative_ap": round(demo["test"]["relative_ap"]["obfuscated"], 4),
        "train_from_step_times_min": round(steps * new["train_step"]["median_s"] * factor / 60, 1),
        "projected_minutes": {**projected, "total": round(total, 1)},
        **({"measured_here_minutes": round(sum(here.values()) / 60, 1)} if measured else {}),
        "budget_minutes": BUDGET_MIN, "within_budget": total <= BUDGET_MIN,
    })
    print(f"slow machine = {factor:.2f} x this one; total {total:.1f} min (budget {BUDGET_MIN:g})")


if __name__ == "__main__":
    main()
