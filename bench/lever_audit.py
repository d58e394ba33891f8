"""Summarise one multi-checkpoint `veil audit --sweep` of obfuscator designs (issue 18's lever screen) as JSON.

    python bench/lever_audit.py REPORT_FOLDER --utility NAME=RUN/utility.json ... --out bench/results/NAME.json

Reads the typed report: per design its relative AP, cost, worst-case identity on both protocols and mA with
intervals; the first design's paired verdict against each matched baseline; and every pair of designs.
"""

from __future__ import annotations

import argparse
import shutil
from datetime import UTC, datetime
from pathlib import Path

from veil.audit.report import load_report
from veil.io import read_json, write_json


def _f(figure) -> dict:
    return {"value": round(figure.value, 4), "interval": [round(x, 4) for x in figure.interval]}


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
        }
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
                                   "mA": _f(m.attributes.worst_case) if m.attributes else None}
        first = v.obfuscators[v.obfuscator]
        verdict = {p: {b: {"obfuscator_is": c.obfuscator_is,
                           "difference": _f(c.difference) if c.difference else None}
                       for b, c in pv.baselines.items()} for p, pv in first.protocols.items()}
    original = report.method("original")
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"), "report": str(args.report), "preset": report.preset,
        "headline_figure": v.headline_figure, "first_design": v.obfuscator,
        "original": {"identity": {p: _f(r.worst_case) for p, r in original.identity.items()},
                     "mA": _f(original.attributes.worst_case) if original.attributes else None},
        "designs": designs, "matched_baselines": baselines, "verdict_first_design_vs_baselines": verdict,
        "pairs": [{"a": r.a, "b": r.b, "relative_ap_a_minus_b": round(r.relative_ap_a_minus_b, 4),
                   "identity": r.identity, "attributes": r.attributes} for r in v.pairs],
        "summary": v.summary,
    }
    write_json(args.out, result)
    copy = args.out.with_suffix("")
    copy.mkdir(parents=True, exist_ok=True)
    for file in ("report.json", "report.html", "report.schema.json"):
        if (args.report / file).is_file():
            shutil.copy(args.report / file, copy / file)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
