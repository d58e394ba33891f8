"""``veil audit``: attack transformed video as an adversary would (wu-2018 3.4,
de-coninck-2024 4.2-4.3) and compare obfuscators with each other and with classic baselines.

The frames and labels are prepared once (``veil.audit.prepare``); then every method (original
frames = upper bound, each obfuscator, U-Net reconstructions of its output, each baseline) is
measured on the same crops, attackers and seeds (``veil.audit.measure``). This module assembles
the typed report (``veil.audit.report``), its verdict and its HTML page.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

import veil
from veil.audit.attacks import attack_pool, attacker_names
from veil.audit.config import AuditConfig, resolve
from veil.audit.measure import (
    Obfuscators,
    baselines_of,
    cheaper,
    measure_baselines,
    measure_obfuscator,
    measure_original,
    merge,
    named_obfuscators,
)
from veil.audit.prepare import Audit, Clock, prepare
from veil.audit.report import (
    AttributeLabels,
    AuditReport,
    Chance,
    IdentityChance,
    IdentityLabels,
    Labels,
    ObfuscatorInfo,
    ObfuscatorRow,
    PresetComparison,
)
from veil.audit.verdict import verdict
from veil.io import atomic_path

log = logging.getLogger("veil.audit")


def run_audit(
    dataset_dir: str | Path,
    obfuscators: Obfuscators,
    out_dir: str | Path,
    detector,
    preset: str | AuditConfig = "fast",
    sweep: bool = False,
    user_attributes_csv: str | Path | None = None,
    overrides: dict | None = None,
    progress: Callable[[str], None] | None = None,
    info: Mapping[str, dict] | None = None,
) -> AuditReport:
    """Audit ``obfuscators`` on the prepared dataset ``dataset_dir``; write ``report.json``,
    ``report.html`` and ``frame_grid.jpg`` to ``out_dir`` and return the report.

    ``obfuscators``: None (original frames and baselines only), one module (the method
    "obfuscator") or a mapping name -> module: every one is measured on the same frames, labels,
    attackers and seeds, prepared once. ``info``: per name, what the report quotes about it
    (e.g. the checkpoint's obfuscator, arguments and training adversaries).
    ``preset``: "smoke", "fast", "strong", "full" or an AuditConfig; ``overrides``: AuditConfig
    fields to change (``seeds``, ``device``, ``baselines``, ...); ``sweep``: calibrate each
    baseline to the FIRST obfuscator's relative AP and attack it there; ``progress``: called
    with one line per step.
    """
    config = resolve(preset, overrides)
    named = named_obfuscators(obfuscators)
    baselines_of(config, None, sweep)  # a bad baseline fails here, before the frames load
    say = progress or log.info
    torch.manual_seed(config.seed)
    detector = detector.to(config.device)
    audit = prepare(dataset_dir, detector, config, user_attributes_csv, say)
    with attack_pool(config) as audit.pool:
        report, grid = assemble(audit, dataset_dir, named, dict(info or {}), detector, preset, sweep, say)
    return finish(report, grid, config, audit.clock, Path(out_dir), say)


def assemble(audit: Audit, dataset_dir, obfuscators: dict[str, nn.Module], info: dict[str, dict], detector,
             preset, sweep: bool, say: Callable[[str], None]) -> tuple[AuditReport, dict[str, torch.Tensor]]:
    """Measure every method and assemble the report (without its verdict) and the grid frames."""
    config = audit.config
    grid_pos = int(audit.ap_positions[len(audit.ap_positions) // 2])
    parts = [measure_original(audit, grid_pos, say)]
    per_obfuscator: dict[str, ObfuscatorInfo] = {}
    for name, module in obfuscators.items():
        measured, reconstruction, cost = measure_obfuscator(audit, name, module, grid_pos, say)
        parts.append(measured)
        per_obfuscator[name] = ObfuscatorInfo(method=name, reconstruction=reconstruction, cost=cost,
                                              info=info.get(name, {}))
    first = next(iter(obfuscators), None)
    target = parts[1].methods[first].relative_ap if first is not None else None
    baselines = baselines_of(config, detector, sweep)
    measured, curves = measure_baselines(audit, baselines, target, sweep, grid_pos, parts[0].methods, say)
    parts.append(measured)
    merged = merge(parts)
    report = AuditReport(
        veil_version=veil.__version__, dataset=str(dataset_dir),
        preset=preset if isinstance(preset, str) else "custom", config=config.to_dict(), sweep=bool(sweep),
        protocols=list(config.protocols),
        labels=Labels(identity={p: IdentityLabels.model_validate(t.description) for p, t in audit.identity.items()},
                      attributes=AttributeLabels.model_validate(audit.attributes.describe())),
        attackers=attacker_names(config),
        chance=Chance(identity={p: IdentityChance.model_validate(t.description["chance"])
                                for p, t in audit.identity.items()},
                      attributes=audit.attributes.chance()),
        person_ap_original=audit.ap_original, same_detector=audit.same_detector, detectors=list(audit.detectors),
        methods=merged.methods,
        reconstruction=per_obfuscator[first].reconstruction if first is not None else None,
        obfuscators=per_obfuscator, sweep_target=first if sweep else None,
        baselines={n: b.describe() for n, b in baselines.items()}, curves=curves,
        comparison={other: PresetComparison(attackers=attacker_names(cheaper(config, other)), methods=rows)
                    for other, rows in merged.presets.items()})
    report.obfuscator_table = obfuscator_table(report)
    return report, merged.grid


def finish(report: AuditReport, grid: dict[str, torch.Tensor], config: AuditConfig, clock: Clock, out_dir: Path,
           say: Callable[[str], None]) -> AuditReport:
    """Add the verdict, then write ``frame_grid.jpg``, ``report.html``, ``report.json`` and its schema."""
    report.verdict = verdict(report, config.headline)
    with clock.stage("report"):
        from veil.audit.html import frame_grid_jpeg, render_html

        jpeg = frame_grid_jpeg(grid)
        with atomic_path(out_dir / "frame_grid.jpg") as tmp:
            tmp.write_bytes(jpeg)
        report.stage_seconds = dict(clock.seconds)  # the HTML shows every stage before this one
        with atomic_path(out_dir / "report.html") as tmp:
            tmp.write_text(render_html(report, jpeg))
    report.stage_seconds = {**clock.seconds, "total": round(time.perf_counter() - clock.start, 2)}
    report.write(out_dir)
    say(f"report written to {out_dir / 'report.html'}")
    return report


def obfuscator_table(report: AuditReport) -> list[ObfuscatorRow]:
    """One row per audited obfuscator: utility, worst-case privacy with intervals, and cost."""
    rows = []
    for name, o in report.obfuscators.items():
        m = report.method(name)
        known = {k: v for k, v in o.info.items() if k in ObfuscatorRow.model_fields}
        rows.append(ObfuscatorRow(
            method=name, relative_ap=m.relative_ap,
            identity={p: m.identity[p].worst_case for p in report.protocols},
            attributes_mA=m.attributes.worst_case if m.attributes is not None else None,
            reconstruction=o.reconstruction.test, parameters=o.cost.parameters, macs=o.cost.macs,
            latency_ms=o.cost.latency_ms, **known))
    return rows
