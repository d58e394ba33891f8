"""How much the box-fused attackers add to an audit's worst case -> JSON.

    python bench/fusion_gain.py REPORT_FOLDER --out bench/results/NAME.json

A real adversary in the cloud holds the detector's boxes as well as the pixels, so `strong` and `full` audits run
every pixel attacker a second time fused with the box attacker (``NAME+boxes``, veil.audit.attacks.fuse). This
reads the typed report and records, per method and identity protocol, the best pixel-only attacker, the best fused
one and the boxes-only floor (top-1, mean over attacker seeds), so the gain of fusion can be read per method. Point
values: the report's paired verdict, not this file, decides "better".
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from veil.audit.attacks import FUSED
from veil.audit.report import BOXES, load_report
from veil.io import write_json


def _best(per_attacker: dict, fused: bool) -> dict | None:
    rows = {name: r.main for name, r in per_attacker.items() if name.endswith(FUSED) == fused}
    if not rows:
        return None
    name = max(rows, key=lambda n: rows[n].value)
    figure = rows[name]
    return {"attacker": name, "value": round(figure.value, 4), "interval": [round(x, 4) for x in figure.interval]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("report", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    report = load_report(args.report)
    methods: dict = {}
    for name, m in report.methods.items():
        if name == BOXES or m.kind == "reconstruction":
            continue
        per_protocol = {}
        for protocol, task in m.identity.items():
            pixel, fused = _best(task.per_attacker, False), _best(task.per_attacker, True)
            per_protocol[protocol] = {
                "best_pixel_attacker": pixel, "best_fused_attacker": fused,
                "fusion_gain": round(fused["value"] - pixel["value"], 4) if pixel and fused else None,
                "worst_case": round(task.worst_case.value, 4), "winner": task.winner,
            }
        methods[name] = {"kind": m.kind, "relative_ap": round(m.relative_ap, 4), "identity": per_protocol}
    floor = {p: round(t.worst_case.value, 4) for p, t in report.method(BOXES).identity.items()} \
        if BOXES in report.methods else {}
    rows = [r for m in methods.values() for r in m["identity"].values()]
    gains = [r["fusion_gain"] for r in rows if r["fusion_gain"] is not None]
    write_json(args.out, {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"), "report": str(args.report), "preset": report.preset,
        "boxes_floor": floor, "methods": methods,
        "fusion_gain": {"min": min(gains), "max": max(gains), "mean": round(sum(gains) / len(gains), 4)}
        if gains else None,
        "fused_attacker_wins": sum(r["winner"].endswith(FUSED) for r in rows), "method_protocols": len(rows),
    })
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
