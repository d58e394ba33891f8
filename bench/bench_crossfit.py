"""Benchmark: the cross-fitted audit of a training recipe on vtest -> JSON + the report.

    python bench/bench_crossfit.py {CHECKPOINT | --recipe cpu [--seed 0]} [DATASET] [--preset fast]
                                   [--folds 2] [--sweep] [--work runs/crossfit-fast]
                                   [--out bench/results/audit-crossfit-fast.json]
                                   [--set seeds=1 --set 'protocols=["reid"]' --name NAME]

Runs ``veil audit CHECKPOINT --cross-fit K`` (the checkpoint's recipe, or with --recipe a training preset's as
``veil train --preset`` would make it on the dataset, is retrained per fold; the
folds' runs, datasets and attacker caches stay under --work, so a stopped run resumes) and then
reads the pooled report once per identity figure (top-1, rank-1, mAP, AUC, ...). For each figure
it records the original frames' 95 % interval width and every paired difference obfuscator minus
baseline with its interval width and smallest detectable difference: the widths that decide which
figure can carry the headline, against issue 17's targets (paired <= 0.15, original <= 0.25).
The report itself (report.json, report.html) is copied next to the JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import time
from pathlib import Path

import torch
from common import attribute_leaks, dataset_detector

from veil.audit.crossfit import cross_fit_audit
from veil.audit.report import IDENTITY_FIGURES, AuditReport, Difference
from veil.audit.verdict import verdict
from veil.data.sources import cache_dir
from veil.io import write_json
from veil.training.config import TrainConfig
from veil.training.presets import make_config
from veil.training.state import load_models

RESULTS = Path(__file__).parent / "results"
TARGETS = {"paired_difference_width_max": 0.15, "original_width_max": 0.25}


def _width(interval: tuple[float, float]) -> float:
    return round(interval[1] - interval[0], 4)


def _diff(d: Difference | None) -> dict:
    """A paired difference as JSON fields (none where the verdict had no paired difference)."""
    if d is None:
        return {}
    return {"difference": round(d.value, 4), "difference_interval": [round(x, 4) for x in d.interval],
            "difference_width": _width(d.interval), "detectable": round(d.detectable or 0.0, 4)}


def widths(report: AuditReport) -> dict:
    """Per identity figure and protocol: the original's interval and every paired difference."""
    out: dict = {}
    for figure in IDENTITY_FIGURES:
        v = verdict(report, figure)
        per_protocol = {}
        for protocol, row in v.protocols.items():
            entry: dict = {"chance": round(row.chance, 4), "original": round(row.original, 4),
                           "original_interval": [round(x, 4) for x in row.original_interval],
                           "original_width": _width(row.original_interval)}
            o = row.obfuscator
            if o is not None:
                entry["obfuscator"] = round(o.value, 4)
                entry["obfuscator_interval"] = [round(x, 4) for x in o.interval]
                entry["obfuscator_width"] = _width(o.interval)
                entry["vs_original"] = o.vs_original
                entry["baselines"] = {
                    b: {"identity": round(c.identity, 4), "relative_ap": round(c.relative_ap, 4),
                        "obfuscator_is": c.obfuscator_is, **_diff(c.difference)}
                    for b, c in o.baselines.items()}
                outcomes = [c["obfuscator_is"] for c in entry["baselines"].values()]
                entry["obfuscator_is"] = {o: outcomes.count(o) for o in ("better", "not distinguishable", "worse")}
                diffs = [c["difference_width"] for c in entry["baselines"].values() if "difference_width" in c]
                entry["widest_paired_difference"] = max(diffs) if diffs else None
                entry["meets_targets"] = bool(diffs) and max(diffs) <= TARGETS["paired_difference_width_max"] \
                    and entry["original_width"] <= TARGETS["original_width_max"]
            per_protocol[protocol] = entry
        out[figure] = per_protocol
    return out


def worst_cases(report: AuditReport, figure: str) -> dict:
    """Per protocol and method, on ``figure``: which attacker sets the worst case at each attacker seed, and
    how far the seeds move the attackers that have one. An attacker without randomness (a linear probe, a
    nearest neighbour on fixed features) gives one value at every seed, so where it holds the worst case,
    more seeds can raise that worst case but never lower it."""
    out: dict = {}
    for name, method in report.methods.items():
        for protocol, task in method.identity.items():
            worst = task.figures.get(figure)
            if worst is None:
                continue
            # the attackers that the seeds move: (their figure, its spread over the seeds)
            seeded = {a: (f, spread) for a, r in task.per_attacker.items()
                      if (f := r.figures.get(figure)) is not None and len(f.per_seed) > 1
                      and (spread := max(f.per_seed) - min(f.per_seed)) > 1e-9}
            # the strongest of them, by its mean over the seeds
            top = max(seeded, key=lambda a: seeded[a][0].value, default=None)
            out.setdefault(protocol, {})[name] = {
                "value": round(worst.value, 4), "per_seed": [round(x, 4) for x in worst.per_seed],
                "attackers": sorted(set(worst.attackers or [])),
                "seed_dependent_attackers": sorted(seeded),
                "widest_seed_spread": round(max(s for _, s in seeded.values()), 4) if seeded else 0.0,
                "strongest_seed_dependent": None if top is None else {
                    "attacker": top, "value": round(seeded[top][0].value, 4), "seed_spread": round(seeded[top][1], 4)}}
    return out


def attribute_verdict(report: AuditReport) -> dict | None:
    """The verdict on attribute mA: the floor (boxes alone), the original, the obfuscator, and the obfuscator
    against the floor and every baseline, each with its paired difference."""
    v = report.verdict.attributes if report.verdict else None
    if v is None:
        return None
    o = v.obfuscator
    return {"original": round(v.original_mA, 4),
            "boxes_only": None if v.boxes_mA is None else round(v.boxes_mA, 4),
            "boxes_only_interval": None if v.boxes_interval is None else [round(x, 4) for x in v.boxes_interval],
            "obfuscator": round(o.value, 4), "obfuscator_interval": [round(x, 4) for x in o.interval],
            "joined_with_floor": bool(report.config.get("fuse_boxes")),
            "vs_boxes": {"obfuscator_is": o.vs_boxes, **_diff(o.boxes_difference)},
            "baselines": {b: {"obfuscator_is": outcome, **_diff(o.differences.get(b))}
                          for b, outcome in o.baselines.items()}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint", nargs="?", type=Path, help="any checkpoint of the recipe (its saved TrainConfig)")
    parser.add_argument("dataset", nargs="?", type=Path, default=cache_dir() / "datasets" / "vtest-640x480-5fps-yolo")
    parser.add_argument("--recipe", help="instead of a checkpoint: a training preset (e.g. cpu, the demo's)")
    parser.add_argument("--seed", type=int, default=0, help="the training seed, with --recipe")
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--sweep", action="store_true", help="match every baseline's utility to the obfuscator's")
    parser.add_argument("--workers", type=int, help="attacker fits side by side (default: one per core, at most 4)")
    parser.add_argument("--work", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                        help="an audit setting over the preset's, e.g. seeds=1 or 'baselines=[\"gaussian_blur\"]': "
                             "a bounded run of a preset too long for one sitting")
    parser.add_argument("--name", help="results name (default: audit-crossfit-PRESET[-sweep])")
    args = parser.parse_args()
    if (args.checkpoint is None) == (args.recipe is None):
        parser.error("give either a CHECKPOINT or --recipe PRESET")
    name = args.name or f"audit-crossfit-{args.preset}{'-sweep' if args.sweep else ''}"
    overrides = {"workers": args.workers} if args.workers else {}
    for item in args.set:
        key, _, value = item.partition("=")
        parsed = json.loads(value)
        overrides[key] = tuple(parsed) if isinstance(parsed, list) else parsed
    work = args.work or Path("runs") / name
    detector = dataset_detector(args.dataset)
    recipe = (make_config(args.recipe, args.dataset, seed=args.seed) if args.recipe
              else TrainConfig.from_dict(load_models(args.checkpoint)[2]["config"]))
    start = time.perf_counter()

    def say(line: str) -> None:
        print(f"{time.perf_counter() - start:7.1f}s {line}", flush=True)

    report = cross_fit_audit(args.dataset, recipe, work, detector, preset=args.preset, folds=args.folds,
                             overrides=overrides or None, sweep=args.sweep,
                             progress=say)
    total = time.perf_counter() - start
    copy = RESULTS / name
    copy.mkdir(parents=True, exist_ok=True)
    for file in ("report.json", "report.html", "report.schema.json"):
        if (work / file).is_file():
            shutil.copy(work / file, copy / file)
    cf = report.cross_fit
    assert cf is not None
    obfuscator = report.methods.get("obfuscator")
    result = {
        "date": datetime.date.today().isoformat(),
        "preset": args.preset, "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()},
        "sweep": args.sweep, "folds": cf.folds, "gap_s": cf.gap_s,
        "recipe": {k: cf.recipe.get(k) for k in ("preset", "epochs", "steps_per_epoch", "batch_size", "crop",
                                                 "obfuscator", "obfuscator_args", "adversaries", "seed")},
        "identities": cf.identities, "test_crops": cf.test_crops, "fold_ranges_s": cf.fold_ranges_s,
        "seeds": report.config["seeds"], "threads": torch.get_num_threads(), "total_s": round(total, 1),
        "stage_seconds": report.stage_seconds,
        "relative_ap": round(obfuscator.relative_ap, 4) if obfuscator else None,
        "targets": TARGETS, "headline_figure": report.verdict.headline_figure if report.verdict else None,
        "figures": widths(report),
        # the headline's worst case per seed: what more attacker seeds can and cannot change
        "worst_cases": worst_cases(report, report.verdict.headline_figure) if report.verdict else {},
        "summary": report.verdict.summary if report.verdict else [],
        # which attributes the strongest attacker still reads, hue against luminance (issue 18's mA target)
        "attributes": attribute_leaks(report),
        # mA's verdict, the attribute floor included (with fuse_boxes its attackers are in every worst case)
        "attribute_verdict": attribute_verdict(report),
    }
    write_json(args.out or RESULTS / f"{name}.json", result)
    for figure, protocols in result["figures"].items():
        for protocol, e in protocols.items():
            print(f"{figure:>18} {protocol:>8}: original width {e['original_width']:.3f}, widest paired "
                  f"difference {e.get('widest_paired_difference')}")


if __name__ == "__main__":
    main()
