"""``veil sweep width``: model complexity against privacy and utility (de-coninck-2024 4.7,
Figs. 5-6).

The MobileNet autoencoder is trained at several width multipliers, one run folder each
(``width-W``; a finished run is reused, a partial one resumed). Per width the table holds
parameters and MACs per 640x480 frame (ptflops), CPU latency per frame (1 thread, measured
inside the audit), relative person AP on the test split, and worst-case identity top-1 and
attribute mA from ONE audit over every width, so all widths face the same crops, labels,
attackers and seeds.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from veil.audit.report import AuditReport
from veil.errors import VeilError

ARCHITECTURE = "mobilenet_ae"


def parse_widths(text: str) -> list[float]:
    """``"0.25,0.5,1"`` -> ``[0.25, 0.5, 1.0]``: positive, finite, distinct."""
    try:
        widths = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise VeilError(f"--widths must be positive numbers like 0.25,0.5,1,2, got {text!r}") from None
    if not widths or any(not math.isfinite(w) or w <= 0 for w in widths):
        raise VeilError(f"--widths must be positive numbers like 0.25,0.5,1,2, got {text!r}")
    if len(set(widths)) < len(widths):
        raise VeilError(f"--widths lists a width twice: {text!r}")
    return widths


def run_name(width: float) -> str:
    return f"width-{width:g}"


def train_width(dataset: Path, run_dir: Path, config, device: str, detector,
                say: Callable[[str], None]) -> tuple[Path, str]:
    """Train (or reuse, or resume) one width's run; returns its checkpoint and what was done."""
    from veil.training.trainer import Trainer

    trainer = Trainer(dataset, run_dir, config, device=device, detector=detector)
    try:
        resumed = trainer.resume()
        if resumed and trainer.epoch >= config.epochs:
            status = "reused"
        else:
            status = f"resumed after epoch {trainer.epoch}" if resumed else "trained"
            say(f"{run_dir.name}: {'resuming after epoch ' + str(trainer.epoch) if resumed else 'training'}")
            trainer.fit()
    finally:
        trainer.close()
    return run_dir / "obfuscator.safetensors", status


def width_config(preset: str, dataset: str | Path, width: float, seed: int):
    """The training config of one width's run: the preset with the MobileNet autoencoder at ``width``."""
    from veil.training.presets import make_config

    return make_config(preset, dataset, obfuscator=ARCHITECTURE, obfuscator_width=width, seed=seed)


def check_inputs(dataset: str | Path, audit_preset: str) -> None:
    """Refuse a missing dataset or an unknown audit preset now, not after hours of training
    (and before torch loads, so the CLI answers a typo at once)."""
    from veil.audit.config import resolve
    from veil.data.manifest import require_dataset

    require_dataset(dataset)
    resolve(audit_preset)


def width_sweep(dataset: str | Path, out: str | Path, widths: list[float], preset: str = "cpu", seed: int = 0,
                audit_preset: str = "fast", baselines: tuple[str, ...] = (), device: str = "cpu",
                progress: Callable[[str], None] | None = None) -> dict:
    """Train ``widths``, measure each, audit all in one run; writes table.json, table.csv,
    complexity.png and audit/report.html under ``out`` and returns the table."""
    check_inputs(dataset, audit_preset)
    from veil.audit import run_audit
    from veil.data.dataset import FrameDataset
    from veil.evaluation.utility import detection_ap
    from veil.io import atomic_path, write_json
    from veil.training.state import load_models
    from veil.training.trainer import build_detector

    say = progress or (lambda _line: None)
    dataset, out = Path(dataset), Path(out)
    configs = {w: width_config(preset, dataset, w, seed) for w in widths}
    detector = build_detector(next(iter(configs.values()))).to(device)
    test = FrameDataset(dataset, "test")
    if len(test) == 0:
        raise VeilError(f"the width sweep needs frames in the test split of {dataset}")
    ap_original = detection_ap(detector, test, device=device)
    rows: list[dict[str, Any]] = []
    modules, info = {}, {}
    for w, config in configs.items():
        checkpoint, status = train_width(dataset, out / run_name(w), config, device, detector, say)
        obfuscator, _, meta = load_models(checkpoint)
        obfuscator = obfuscator.to(device).eval()
        relative_ap = detection_ap(detector, test, obfuscator, device=device) / ap_original
        say(f"{run_name(w)} ({status}): relative AP {relative_ap:.3f} on the test split")
        modules[run_name(w)] = obfuscator
        info[run_name(w)] = {"checkpoint": str(checkpoint), "obfuscator": ARCHITECTURE,
                             "obfuscator_args": {"width": w}, "adversaries": meta.get("adversaries")}
        rows.append({"width": w, "run": str(out / run_name(w)), "status": status, "relative_ap_test": relative_ap})
    say(f"auditing {len(modules)} widths in one run ({audit_preset} preset)")
    report = run_audit(dataset, modules, out / "audit", detector, preset=audit_preset,
                       overrides={"device": device, "baselines": tuple(baselines)}, progress=say, info=info)
    for row in rows:
        row.update(_audited(report, run_name(row["width"])))
    table = {"format": "veil-width-sweep", "dataset": str(dataset), "preset": preset, "seed": seed,
             "audit_preset": audit_preset, "protocols": report.protocols,
             "person_ap_original_test": ap_original, "chance": report.chance.model_dump(mode="json"),
             "audit_report": str(out / "audit" / "report.html"), "rows": rows}
    write_json(out / "table.json", table)
    with atomic_path(out / "table.csv") as tmp:
        tmp.write_text(_csv(rows))
    with atomic_path(out / "complexity.png") as tmp:
        tmp.write_bytes(complexity_png(table))
    say(f"table written to {out / 'table.csv'}")
    return table


def _audited(report: AuditReport, name: str) -> dict:
    """A width's audited figures: cost, and worst-case identity per protocol and mA with intervals."""
    m, cost = report.method(name), report.obfuscators[name].cost
    row: dict[str, Any] = {"parameters": cost.parameters, "macs": cost.macs, "latency_ms": cost.latency_ms,
           "relative_ap_audit": m.relative_ap}
    for p in report.protocols:
        w = m.identity[p].worst_case
        row[f"identity_{p}"], row[f"identity_{p}_interval"] = w.value, list(w.interval)
    a = report.attributes(name)
    if a is not None:
        row["attributes_mA"], row["attributes_mA_interval"] = a.value, list(a.interval)
    return row


def _csv(rows: list[dict]) -> str:
    flat = []
    for row in rows:
        out = {}
        for k, v in row.items():
            if isinstance(v, list):  # an interval: two columns
                out[f"{k}_low"], out[f"{k}_high"] = v
            else:
                out[k] = v
        flat.append(out)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(flat[0]))
    writer.writeheader()
    writer.writerows(flat)
    return buf.getvalue()


def complexity_png(table: dict) -> bytes:
    """Utility (left, Fig. 5) and privacy (right, Fig. 6) against MACs per 640x480 frame."""
    from veil.audit.html import plt

    rows = sorted(table["rows"], key=lambda r: r["macs"])
    macs = [r["macs"] / 1e6 for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.plot(macs, [r["relative_ap_test"] for r in rows], marker="o")
    for x, r in zip(macs, rows):
        left.annotate(f"x{r['width']:g}, {r['parameters'] / 1e3:.0f}k params", (x, r["relative_ap_test"]),
                      fontsize=7, xytext=(3, 3), textcoords="offset points")
    left.set_ylabel("relative person AP (test split)")
    left.set_title("Utility against complexity")

    def series(key: str, label: str) -> None:
        ys = [r[key] for r in rows]
        err = [[y - r[f"{key}_interval"][0] for y, r in zip(ys, rows)],
               [r[f"{key}_interval"][1] - y for y, r in zip(ys, rows)]]
        right.errorbar(macs, ys, yerr=err, marker="o", capsize=3, label=label)

    for p in table["protocols"]:
        series(f"identity_{p}", f"worst-case identity top-1 ({p})")
    if all("attributes_mA" in r for r in rows):
        series("attributes_mA", "worst-case attribute mA")
        right.axhline(table["chance"]["attributes"]["mA"], color="grey", linestyle=":", linewidth=1,
                      label="mA chance")
    right.set_ylabel("attacker score (95% interval; lower = more private)")
    right.set_title("Privacy against complexity")
    right.legend(fontsize=7)
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xlabel("MMACs per 640x480 frame (log)")
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()

