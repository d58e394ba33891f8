"""Summarise one multi-checkpoint `veil audit --sweep` of obfuscator designs (issue 18's lever screen) as JSON.

    python bench/lever_audit.py REPORT_FOLDER --utility NAME=RUN/utility.json ... --out bench/results/NAME.json

Reads the typed report: per design its relative AP, cost, bits per 640x480 frame (a quantised latent's bound),
worst-case identity on both protocols and mA with intervals, bytes per uploaded frame (with --codec), and its
paired verdicts against the boxes-only floor and every baseline; designs named RECIPE/sSEED grouped per recipe
(min and mean relative AP over seeds, and on how many seeds each verdict holds); and every pair of designs. The
report folder is copied next to the JSON.
"""

from __future__ import annotations

import argparse
import shutil
from datetime import UTC, datetime
from pathlib import Path

from common import relative_ap_over_seeds, seed_groups

from veil.audit.report import BOXES, load_report
from veil.io import read_json, write_json
from veil.training.state import load_models


def _f(figure) -> dict:
    return {"value": round(figure.value, 4), "interval": [round(x, 4) for x in figure.interval]}


def _upload(m) -> dict:
    """With `veil audit --codec`: the codec and the mean bytes of one uploaded frame."""
    if m.upload_bytes_per_frame is None:
        return {}
    return {"codec": m.codec, "upload_bytes_per_frame": round(m.upload_bytes_per_frame),
            "upload_kB_per_frame": round(m.upload_bytes_per_frame / 1000, 1)}


def _recipes(designs: dict) -> dict:
    """Designs named RECIPE/sSEED grouped per recipe: relative AP min and mean over seeds (issue 18's
    utility rule), worst-case identity per seed and its mean, and how many seeds each verdict holds on."""
    out: dict = {}
    for recipe, names in seed_groups(designs).items():
        if len(names) < 2:
            continue
        aps = [designs[n]["relative_ap_test_split"] for n in names if "relative_ap_test_split" in designs[n]]
        entry: dict = {"seeds": names}
        if aps:
            entry["relative_ap_test_split"] = relative_ap_over_seeds(aps)
        identity: dict = {}
        for p in designs[names[0]].get("identity", {}):
            values = [designs[n]["identity"][p]["value"] for n in names]
            identity[p] = {"per_seed": values, "mean": round(sum(values) / len(values), 4)}
            verdicts: dict = {}
            for n in names:
                for b, c in designs[n].get("vs_baselines", {}).get(p, {}).items():
                    verdicts.setdefault(b, {}).setdefault(c["is"], 0)
                    verdicts[b][c["is"]] += 1
                floor = designs[n].get("vs_boxes_floor", {}).get(p)
                if floor:
                    verdicts.setdefault("boxes only (floor)", {}).setdefault(floor["is"], 0)
                    verdicts["boxes only (floor)"][floor["is"]] += 1
            identity[p]["seeds_per_verdict"] = verdicts
        entry["identity"] = identity
        out[recipe] = entry
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("report", type=Path)
    parser.add_argument("--utility", action="append", default=[], help="NAME=PATH of `veil eval utility` JSON")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    report = load_report(args.report)
    designs = {}
    for name, o in report.obfuscators.items():
        m = report.method(name)
        designs[name] = {
            "relative_ap_audit_frames": round(m.relative_ap, 4),
            "parameters": o.cost.parameters, "macs_640x480": o.cost.macs, "latency_ms_1_thread": o.cost.latency_ms,
            "identity": {p: _f(r.worst_case) for p, r in m.identity.items()},
            "mA": _f(m.attributes.worst_case) if m.attributes else None,
            **_upload(m),
        }
        checkpoint = o.info.get("checkpoint")
        if checkpoint and Path(checkpoint).is_file():
            bits = getattr(load_models(checkpoint)[0], "latent_bits_per_frame", None)
            designs[name]["bits_per_frame_640x480"] = bits((640, 480)) if bits else None
    for item in args.utility:
        name, _, path = item.partition("=")
        designs.setdefault(name, {})["relative_ap_test_split"] = round(
            read_json(path)["relative_ap"]["obfuscated"], 4)
    v = report.verdict
    assert v is not None
    baselines: dict = {}
    verdict: dict = {}
    if v.obfuscator is not None:
        for name in report.baselines or []:
            matched = report.matched(name)
            if matched in report.methods:
                m = report.method(matched)
                baselines[name] = {"relative_ap": round(m.relative_ap, 4),
                                   "identity": {p: _f(r.worst_case) for p, r in m.identity.items()},
                                   "mA": _f(m.attributes.worst_case) if m.attributes else None, **_upload(m)}
        first = v.obfuscators[v.obfuscator]
        verdict = {p: {b: {"obfuscator_is": c.obfuscator_is,
                           "difference": _f(c.difference) if c.difference else None}
                       for b, c in pv.baselines.items()} for p, pv in first.protocols.items()}
    floor: dict = {}
    if BOXES in report.methods:
        floor = {p: _f(r.worst_case) for p, r in report.method(BOXES).identity.items()}
        for name, ov in (v.obfuscators or ({v.obfuscator: None} if v.obfuscator else {})).items():
            rows = ov.protocols if ov is not None else {p: row.obfuscator for p, row in v.protocols.items()}
            designs[name]["vs_boxes_floor"] = {
                p: {"is": pv.vs_boxes, "difference": _f(pv.boxes_difference) if pv.boxes_difference else None}
                for p, pv in rows.items() if pv is not None}
    for name, ov in v.obfuscators.items():
        # every design against every baseline, paired: a multi-seed confirmation reads these per seed
        designs[name]["vs_baselines"] = {
            p: {b: {"is": c.obfuscator_is, "difference": _f(c.difference) if c.difference else None}
                for b, c in pv.baselines.items()} for p, pv in ov.protocols.items()}
    original = report.method("original")
    recipes = _recipes(designs)
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"), "report": str(args.report), "preset": report.preset,
        "headline_figure": v.headline_figure, "first_design": v.obfuscator,
        "original": {"identity": {p: _f(r.worst_case) for p, r in original.identity.items()},
                     "mA": _f(original.attributes.worst_case) if original.attributes else None,
                     **_upload(original)},
        "boxes_floor": floor, "designs": designs, "recipes": recipes, "matched_baselines": baselines,
        "verdict_first_design_vs_baselines": verdict,
        "pairs": [{"a": r.a, "b": r.b, "relative_ap_a_minus_b": round(r.relative_ap_a_minus_b, 4),
                   "identity": r.identity, "attributes": r.attributes,
                   "identity_difference": {p: _f(d) if d else None for p, d in (r.identity_difference or {}).items()}}
                  for r in v.pairs],
        "summary": v.summary,
    }
    copy = args.out.with_suffix("")
    result["report"] = str(copy)
    write_json(args.out, result)
    copy.mkdir(parents=True, exist_ok=True)
    for file in ("report.json", "report.html", "report.schema.json"):
        if (args.report / file).is_file():
            shutil.copy(args.report / file, copy / file)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
