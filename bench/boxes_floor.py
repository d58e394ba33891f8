"""Benchmark: the boxes-only floor of the identity protocols on vtest -> JSON.

    python bench/boxes_floor.py [DATASET] [--folds 2] [--out bench/results/boxes-floor-vtest.json]

The cloud's detector outputs every person's box whatever the obfuscator does, and within a short
clip a box's place and size tell people apart. This measures how far, with the two geometry
attackers of ``veil.audit.geometry`` (no pixels), on the same identity tasks as the audit:

* the quick protocol (val+test, what ``make demo`` audits);
* the cross-fitted protocol (each fold's test split, pooled over ``--folds`` folds, as
  ``veil audit --cross-fit`` builds them).

Every identity figure (top-1, rank-1, mAP, AUC, ...) comes with its 95 % cluster-bootstrap
interval and its chance level. The same four classifiers, one per attribute, give the attribute floor
on the quick protocol's attribute task (``attributes``): mA and each attribute's balanced accuracy.
For context it also reads, from the recorded reports, the original frames' and the obfuscator's
figures on the same protocols (separate runs: not paired; an audit pairs them itself, see its
verdict table). No obfuscator is trained: this takes minutes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from veil.audit.attacks import pool, summarise
from veil.audit.config import resolve
from veil.audit.crossfit import fold_dataset, plan_folds
from veil.audit.frames import AuditFrames
from veil.audit.geometry import attribute_predictions, box_predictions
from veil.audit.labels import attribute_task
from veil.audit.protocols.registry import PROTOCOLS
from veil.audit.report import IDENTITY_FIGURES, Figure, TaskResult, load_report
from veil.data.sources import cache_dir
from veil.io import read_json, write_json

RESULTS = Path(__file__).parent / "results"
#: recorded reports read for context: protocol setting -> (report folder, method -> its name there)
CONTEXT = {"quick": ("levers-bottleneck-cpu-seed0", {"original": "original", "mobilenet_ae (cpu, seed 0)": "c256/s0",
                                                     "grey_downsample x32 (relative AP 0)": "grey_downsample@32"}),
           "cross_fit": ("audit-crossfit-fast-sweep", {"original": "original",
                                                       "mobilenet_ae (cpu recipe)": "obfuscator"})}


def _rounded(f: Figure) -> dict:
    return {"value": round(f.value, 4), "interval": [round(x, 4) for x in f.interval]}


def _figures(result: TaskResult, chance: dict[str, float]) -> dict:
    out = {"top1": _rounded(result.worst_case),
           "per_attacker_top1": {n: round(a.main.value, 4) for n, a in result.per_attacker.items()}}
    for figure in IDENTITY_FIGURES:
        if figure in result.figures and figure != "top1":
            out[figure] = _rounded(result.figures[figure])
    out["chance"] = {k: round(v, 4) for k, v in (chance or result.chance).items()}
    return out


def _context(setting: str) -> dict:
    folder, names = CONTEXT[setting]
    path = RESULTS / folder / "report.json"
    if not path.is_file():
        return {}
    report = load_report(path)
    out: dict = {"source": str(path.relative_to(RESULTS.parent.parent))}
    for label, method in names.items():
        if method in report.methods:
            m = report.methods[method]
            out[label] = {p: {"top1": round(t.worst_case.value, 4),
                              "interval": [round(x, 4) for x in t.worst_case.interval],
                              **({"auc": round(t.figures["auc"].value, 4)} if "auc" in t.figures else {}),
                              "relative_ap": round(m.relative_ap, 4)} for p, t in m.identity.items()}
            if m.attributes is not None:
                out[label]["attributes_mA"] = _rounded(m.attributes.worst_case)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", nargs="?", type=Path, default=cache_dir() / "datasets" / "vtest-640x480-5fps-yolo")
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--out", type=Path, default=RESULTS / "boxes-floor-vtest.json")
    args = parser.parse_args()
    start = time.perf_counter()
    config = resolve(args.preset)
    settings: dict = {}

    # the quick protocol: reid over val+test, tracking over test
    frames = AuditFrames.load(args.dataset, {"train": config.attribute_train_frames, "val": None, "test": None})
    h, w = frames.view.images.shape[-2:]
    quick = {}
    for p in config.protocols:
        task = PROTOCOLS.build(p).identities(frames, config)
        result = summarise(box_predictions(task, (int(w), int(h)), config), config)
        quick[p] = {"identities": task.description["identities"], "test_crops": task.description["test_crops"],
                    **_figures(result, {"top1": task.description["chance"]["majority"], **result.chance})}
    attributes = attribute_task(frames, config)
    floor = summarise(attribute_predictions(attributes, (int(w), int(h)), config), config, attributes.table.names)
    settings["quick"] = {"protocol": "val+test (the demo's audit)", "figures": quick, "context": _context("quick"),
                         "attributes": {"train_crops": int((attributes.crops.split == "train").sum()),
                                        "test_crops": floor.test_crops, "groups": floor.groups,
                                        "mA": _rounded(floor.worst_case),
                                        "winner": floor.winner,
                                        "per_attacker_mA": {n: round(a.main.value, 4)
                                                            for n, a in floor.per_attacker.items()},
                                        "per_attribute": floor.per_attribute}}

    # the cross-fitted protocol: each fold's test split, pooled (cross_fit_audit's tasks)
    crossed = replace(config, reid_splits=("test",), tracking_split="test")
    plan = plan_folds(read_json(args.dataset / "manifest.json")["frames"], args.folds, crossed.time_gap)
    parts: dict[str, list] = {p: [] for p in crossed.protocols}
    sizes: dict[str, dict[str, int]] = {p: {"identities": 0, "test_crops": 0} for p in crossed.protocols}
    with tempfile.TemporaryDirectory() as tmp:
        for fold in plan:
            ds = fold_dataset(args.dataset, Path(tmp) / f"fold{fold.index}", fold)
            fold_frames = AuditFrames.load(ds, {"test": None})
            for p in crossed.protocols:
                task = PROTOCOLS.build(p).identities(fold_frames, crossed)
                parts[p].append(box_predictions(task, (int(w), int(h)), crossed))
                sizes[p]["identities"] += task.description["identities"]
                sizes[p]["test_crops"] += task.description["test_crops"]
    pooled = {p: {**sizes[p], **_figures(summarise(pool(parts[p]), crossed), {})} for p in crossed.protocols}
    settings["cross_fit"] = {"protocol": f"{args.folds} folds over the whole clip, pooled", "figures": pooled,
                             "context": _context("cross_fit")}

    write_json(args.out, {
        "what": "identity (and, on the quick protocol, attributes) from the detector's boxes alone (no pixels): the "
                "floor under every transform that keeps the detector working. Worst case of the geometry "
                "attackers (veil.audit.geometry); 95 % "
                "cluster-bootstrap intervals over test identities. 'context' holds recorded pixel-attack figures "
                "on the same protocol, from separate runs (not paired).",
        "dataset": str(args.dataset), "preset": args.preset, "bootstrap": config.bootstrap,
        "seconds": round(time.perf_counter() - start, 1), **settings})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
