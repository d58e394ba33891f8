"""Privacy and utility against training steps, from one audit of a run's snapshots -> PNG + JSON.

    veil train DATASET --out runs/r --preset cpu --epochs 42 --snapshot-every 7
    veil audit runs/r/snapshots/*.safetensors runs/b/snapshots/*.safetensors --dataset DATASET --out audit/curve
    python bench/training_curve.py audit/curve/report.json --out bench/results/curve-cpu

Every snapshot was audited in the same run (same crops, labels, attackers and seeds), so the
points of one curve differ only in how long O trained. Steps are epochs x steps per epoch, read
from each snapshot's own config. Writes ``curve.json`` (one row per snapshot) and ``curve.png``:
worst-case identity top-1 per protocol and attribute mA, each with its 95 % interval, against
steps, with chance and the original frames as reference lines; relative person AP on the
audit's frames; and, for a run that trained budget models, their held-back accuracy from its
``log.csv``.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from veil.audit.report import AuditReport, Figure, load_report  # noqa: E402
from veil.io import write_json  # noqa: E402


def _figure(f: Figure) -> dict:
    return {"value": f.value, "interval": list(f.interval)}


def rows(report: AuditReport) -> list[dict]:
    """One row per audited snapshot: run, steps, and its figures with intervals."""
    out = []
    for name, entry in report.obfuscators.items():
        checkpoint = Path(entry.info["checkpoint"])
        config = json.loads(checkpoint.with_suffix(".json").read_text())["config"]
        m = report.method(name)
        epoch, per_epoch = entry.info["epoch"], config["steps_per_epoch"]
        row = {"method": name, "run": str(checkpoint.parent.parent), "epoch": epoch, "steps_per_epoch": per_epoch,
               "steps": epoch * per_epoch, "relative_ap": m.relative_ap, "adversaries": entry.info["adversaries"]}
        for p in report.protocols:
            row[f"identity_{p}"] = _figure(m.identity[p].worst_case)
        attributes = report.attributes(name)
        if attributes is not None:
            row["attributes_mA"] = _figure(attributes)
        out.append(row)
    return sorted(out, key=lambda r: (r["run"], r["steps"]))


def budget_heldout(run: Path, steps_per_epoch: int) -> dict[str, list[tuple[int, float]]]:
    """Each budget model's held-back accuracy by step, from the run's log (empty without budget)."""
    log = run / "log.csv"
    if not log.exists():
        return {}
    curves: dict[str, list[tuple[int, float]]] = {}
    with log.open() as f:
        for r in csv.DictReader(f):
            for k, v in r.items():
                if k.endswith("_heldout_acc") and v:
                    curves.setdefault(k.removesuffix("_heldout_acc"), []).append(
                        (int(r["epoch"]) * steps_per_epoch, float(v)))
    return curves


def plot(report: AuditReport, table: list[dict], path: Path) -> None:
    panels = [f"identity_{p}" for p in report.protocols] + (["attributes_mA"] if "attributes_mA" in table[0] else [])
    runs = sorted({r["run"] for r in table})
    colour = {run: f"C{i}" for i, run in enumerate(runs)}
    label = {run: f"{Path(run).name}: " + ", ".join(f"{k} x{v:g}" for k, v in
                                                   next(r for r in table if r["run"] == run)["adversaries"].items())
             for run in runs}
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    axes = axes.ravel()
    for ax, key in zip(axes, panels):
        for i, run in enumerate(runs):
            pts = [r for r in table if r["run"] == run]
            x = [r["steps"] + 12 * (i - (len(runs) - 1) / 2) for r in pts]  # side by side, not on top
            ax.errorbar(x, [r[key]["value"] for r in pts], fmt="o-", capsize=3, color=colour[run], label=label[run],
                        yerr=[[r[key]["value"] - r[key]["interval"][0] for r in pts],
                              [r[key]["interval"][1] - r[key]["value"] for r in pts]])
        if key.startswith("identity_"):
            p = key.removeprefix("identity_")
            chance = report.identity_chance(p)
            original = report.identity("original", p).value
            ax.set_title(f"worst-case identity top-1 ({p}), 95 % intervals")
        else:
            original_ma = report.attributes("original")
            chance, original = 0.5, original_ma.value if original_ma is not None else float("nan")
            ax.set_title("worst-case attribute mA, 95 % intervals")
        ax.axhline(chance, color="grey", ls=":", label="chance")
        ax.axhline(original, color="k", ls="--", label="original frames")
    ax = axes[len(panels)]
    for run in runs:
        pts = [r for r in table if r["run"] == run]
        ax.plot([r["steps"] for r in pts], [r["relative_ap"] for r in pts], "o-", color=colour[run], label=label[run])
    ax.set_title("relative person AP (audit frames)")
    ax = axes[len(panels) + 1]
    for run in runs:
        spe = next(r["steps_per_epoch"] for r in table if r["run"] == run)
        for k, (model, pts) in enumerate(budget_heldout(Path(run), spe).items()):
            ax.plot(*zip(*pts), marker=".", ls=("-", "--", ":")[k % 3], color=colour[run],
                    label=f"{Path(run).name} {model}")
    ax.set_title("budget models: held-back accuracy on train-split tracks")
    for ax in axes[:len(panels) + 2]:
        ax.set_xlabel("training steps")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[len(panels) + 2:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("report", type=Path, help="report.json of one audit of the snapshots")
    parser.add_argument("--out", type=Path, required=True, help="folder for curve.json and curve.png")
    args = parser.parse_args()
    report = load_report(args.report)
    table = rows(report)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "curve.json", {"audit": str(args.report), "preset": report.preset,
                                         "seeds": report.config["seeds"],
                                         "chance": report.chance.model_dump(mode="json"),
                                         "original": {p: report.identity("original", p).model_dump(mode="json")
                                                      for p in report.protocols},
                                         "rows": table})
    plot(report, table, args.out / "curve.png")
    print(f"{len(table)} snapshots -> {args.out / 'curve.png'}")


if __name__ == "__main__":
    main()
