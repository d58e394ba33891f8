"""Measuring every method of one audit on the same frames, labels, attackers and seeds: the
original frames (upper bound), each obfuscator with the U-Net reconstruction of its output and
its cost, each baseline at its paper strength or swept and calibrated to the first obfuscator's
utility, and the cheaper presets' attackers re-run for comparison. Each returns typed results
(``veil.audit.report``); ``veil.audit.runner`` assembles them into the report."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import torch
from torch import nn

from veil.adversaries.unet import reconstruct, reconstruction_quality, train_inverse
from veil.audit.attacks import attack, summarise
from veil.audit.config import AuditConfig
from veil.audit.frames import Transform, baseline_transform, obfuscator_transform
from veil.audit.prepare import Audit
from veil.audit.report import (
    BOXES,
    Calibrated,
    Cost,
    Curve,
    CurvePoint,
    MethodResult,
    PresetRow,
    Reconstruction,
    TaskResult,
    UtilityPoint,
)
from veil.audit.sweep import trace, weak_to_strong
from veil.audit.verdict import compare
from veil.data.codec import bytes_per_frame
from veil.errors import VeilError
from veil.evaluation.cost import obfuscator_cost
from veil.obfuscators.baselines import BASELINES, Baseline, build_spec


def _identity_line(identity: dict[str, TaskResult]) -> str:
    """Worst-case top-1 per protocol, with the AUC beside it where measured: "reid 0.507 (AUC 0.865)"."""
    return ", ".join(f"{p} {t.worst_case.value:.3f}" + (f" (AUC {t.figures['auc'].value:.3f})" if "auc" in t.figures
                                                        else "") for p, t in identity.items())


def say_entry(say, name: str, entry: MethodResult) -> None:
    ident = _identity_line(entry.identity)
    attrs = f", worst-case mA {entry.attributes.worst_case.value:.3f}" if entry.attributes is not None else ""
    sent = (f", {entry.upload_bytes_per_frame / 1000:.1f} kB per frame as {entry.codec}"
            if entry.upload_bytes_per_frame is not None else "")
    say(f"{name}: relative AP {entry.relative_ap:.3f}, worst-case identity top-1 {ident}{attrs}{sent}")


def baselines_of(config: AuditConfig, detector, sweep: bool = False) -> dict[str, Baseline]:
    """The config's baselines by method name: ``NAME`` at its own strength, ``NAME@STRENGTH`` at a
    fixed one (refused with ``sweep``, which calibrates every strength itself)."""
    names = list(config.baselines) if config.baselines is not None else BASELINES.names()
    fixed = [n for n in names if "@" in n]
    if sweep and fixed:
        raise VeilError(f"--sweep calibrates every baseline's strength, so {', '.join(fixed)} cannot keep a fixed "
                        "one: drop --sweep or the @STRENGTH")
    out = {}
    for name in names:
        b = build_spec(name)
        if b.needs_detector:
            b.detector = detector
        out[name] = b
    return out


Obfuscators = nn.Module | Mapping[str, nn.Module] | None


def named_obfuscators(obfuscators: Obfuscators) -> dict[str, nn.Module]:
    """None: none; one module: the method "obfuscator" (as before); a mapping: name -> module."""
    if obfuscators is None:
        return {}
    if isinstance(obfuscators, nn.Module):
        return {"obfuscator": obfuscators}
    named = dict(obfuscators)
    reserved = {"original", "reconstruction", BOXES} | set(BASELINES.names())
    clash = sorted(n for n in named if n in reserved or n.endswith(RECONSTRUCTION_SUFFIX))
    if clash:
        raise VeilError(f"obfuscator name(s) {', '.join(clash)} clash with the audit's own methods; rename them")
    return named


RECONSTRUCTION_SUFFIX = " (reconstruction)"


def reconstruction_method(name: str) -> str:
    """The method name of the U-Net reconstructions of obfuscator ``name``'s output."""
    return "reconstruction" if name == "obfuscator" else f"{name}{RECONSTRUCTION_SUFFIX}"


@dataclass
class Measured:
    """One stage's result: method entries (name -> entry), one grid frame per method, and the
    cheaper presets' rows (preset -> method -> row)."""

    methods: dict[str, MethodResult]
    grid: dict[str, torch.Tensor]
    presets: dict[str, dict[str, dict[str, PresetRow]]]


def measure_original(audit: Audit, grid_pos: int, say: Callable[[str], None]) -> Measured:
    """The original frames (the upper bound) and the boxes-only attack (the floor)."""
    original = audit.frames.view.images
    entry = audit.evaluate("reference", original, name="original")
    if audit.config.codec is not None:  # what a camera without Veil would upload; its figures stay lossless
        with audit.clock.stage("transform frames"):
            entry.codec, entry.upload_bytes_per_frame = audit.config.codec, bytes_per_frame(
                original, audit.config.codec)
    say_entry(say, "original", entry)
    floor = measure_boxes(audit)
    say(f"{BOXES} (the detector's boxes, no pixels): worst-case identity top-1 {_identity_line(floor.identity)}")
    return Measured({"original": entry, BOXES: floor}, {"original": original[grid_pos]},
                    compare_presets(audit, "original", original, entry, say))


def measure_boxes(audit: Audit) -> MethodResult:
    """The floor: identity and attributes from the boxes alone (``veil.audit.geometry``), which the
    cloud's detector outputs whatever the frames; its utility is the detector's own, relative AP 1."""
    with audit.clock.stage("attacks"):
        raw = audit.boxes()
    if audit.raw is not None:
        audit.raw[BOXES] = dict(raw)
    attributes = raw.get("attributes")
    return MethodResult(kind="floor", person_ap=audit.ap_original, relative_ap=1.0,
                        identity={p: summarise(pred, audit.config) for p, pred in raw.items() if p != "attributes"},
                        attributes=None if attributes is None else summarise(attributes, audit.config,
                                                                             audit.attributes.table.names))


def measure_obfuscator(audit: Audit, name: str, obfuscator: nn.Module, grid_pos: int,
                        say: Callable[[str], None]) -> tuple[Measured, Reconstruction, Cost]:
    """The obfuscator's entry, the U-Net reconstruction attack on its output, and its cost;
    only this obfuscator's frames are held, and dropped on return."""
    config = audit.config
    original = audit.frames.view.images
    obfuscator = obfuscator.to(audit.device).eval()
    obf, sent = audit.transform(obfuscator_transform(obfuscator))
    entry = audit.evaluate("obfuscator", obf, name=name, upload_bytes=sent)
    say_entry(say, name, entry)
    presets = compare_presets(audit, name, obf, entry, say)
    with audit.clock.stage("reconstruction attack (U-Net training)"):
        say(f"training a U-Net to invert {name} ({config.unet_steps} steps)")
        train_pos = audit.frames.positions["train"]
        unet = train_inverse(obf[train_pos], original[train_pos], steps=config.unet_steps, crop=config.unet_crop,
                             width=config.unet_width, seed=config.seed, device=audit.device)
        rec = reconstruct(unet, obf)
    test_pos = audit.frames.positions["test"]
    rec_name = reconstruction_method(name)
    reconstruction = Reconstruction(steps=config.unet_steps, method=rec_name,
                                    test=reconstruction_quality(rec[test_pos], original[test_pos]))
    rec_entry = audit.evaluate("reconstruction", rec, name=rec_name)
    say_entry(say, rec_name, rec_entry)
    with audit.clock.stage("cost (params, MACs, CPU latency)"):
        cost = Cost.model_validate(obfuscator_cost(obfuscator))
    say(f"{name}: {cost.parameters} parameters, {cost.macs / 1e6:.1f} M MACs, "
        f"{cost.latency_ms:.1f} ms per 640x480 frame (CPU, 1 thread)")
    measured = Measured({name: entry, rec_name: rec_entry}, {name: obf[grid_pos], rec_name: rec[grid_pos]}, presets)
    return measured, reconstruction, cost


def measure_baselines(audit: Audit, baselines: dict[str, Baseline], target: float | None, sweep: bool,
                       grid_pos: int, reference: dict[str, MethodResult],
                       say: Callable[[str], None]) -> tuple[Measured, dict[str, Curve]]:
    """Every baseline at its paper strength, or (``sweep``) traced and calibrated to ``target``."""
    config = audit.config
    methods: dict[str, MethodResult] = {}
    grid: dict[str, torch.Tensor] = {}
    curves: dict[str, Curve] = {}

    def add(name: str, entry: MethodResult, frames: torch.Tensor | None) -> None:
        methods[name] = entry
        if frames is not None:
            grid[name] = frames[grid_pos]
        say_entry(say, name, entry)

    for name, b in baselines.items():
        def transform(s: float, b: Baseline = b) -> Transform:
            return baseline_transform(b.with_strength(s), audit.same_detector)

        if not sweep:
            frames, sent = audit.transform(transform(b.strength))
            add(name, audit.evaluate("baseline", frames, strength=b.strength, name=name, upload_bytes=sent), frames)
            continue
        # Swept: probe utility everywhere (cheap), attack only the matched strength and the curve's far end.
        def probe(s: float, t: Callable[[float], Transform] = transform) -> float:
            return audit.relative_ap(t(s))

        with audit.clock.stage("sweep: utility probes"):
            curve = trace(b, probe, None, target, config.sweep_points, config.calibration_steps, config.ap_tolerance)
        points = {curve.none_strength: "original"}
        if curve.calibrated is not None and curve.calibrated != curve.none_strength:
            method = f"{name} (matched)"
            frames, sent = audit.transform(transform(curve.calibrated))
            add(method, audit.evaluate("baseline", frames, strength=curve.calibrated, name=method,
                                       upload_bytes=sent), frames)
            points[curve.calibrated] = method
        for s in curve.far_end:
            method = f"{name}@{s:.3g}"
            frames, sent = audit.transform(transform(s))
            add(method, audit.evaluate("baseline", frames, strength=s, attributes=False, name=method,
                                       transfer=False, upload_bytes=sent), None)
            points[s] = method
        known = {**reference, **methods}
        primary = config.protocols[0]
        result = Curve(stronger=curve.stronger, none_strength=curve.none_strength, target_relative_ap=curve.target,
                       utility=[UtilityPoint(strength=s, relative_ap=curve.utility[s])
                                for s in weak_to_strong(b, curve.utility)])
        for s in weak_to_strong(b, points):
            m = known[points[s]]
            w = m.identity[primary].worst_case
            result.points.append(CurvePoint(strength=s, relative_ap=m.relative_ap, method=points[s],
                                            identity_worst_case=w.value, identity_interval=w.interval))
        if curve.calibrated is not None and target is not None:
            m = known[points[curve.calibrated]]
            result.calibrated = Calibrated(strength=curve.calibrated, method=points[curve.calibrated],
                                           relative_ap=m.relative_ap, target_relative_ap=target,
                                           matched=abs(m.relative_ap - target) <= config.ap_tolerance)
            say(f"{name}: calibrated strength {curve.calibrated:.4g} -> relative AP {m.relative_ap:.3f} "
                f"(target {target:.3f})")
        curves[name] = result
    return Measured(methods, grid, {}), curves


def merge(parts: list[Measured]) -> Measured:
    out = Measured({}, {}, {})
    for part in parts:
        out.methods.update(part.methods)
        out.grid.update(part.grid)
        for other, rows in part.presets.items():
            out.presets.setdefault(other, {}).update(rows)
    return out


def cheaper(config: AuditConfig, other: str) -> AuditConfig:
    from veil.audit.config import PRESETS

    return replace(PRESETS[other], seeds=config.seeds, seed=config.seed, device=config.device,
                   bootstrap=config.bootstrap, level=config.level)


def compare_presets(audit: Audit, name: str, frames: torch.Tensor, mine: MethodResult,
                     say: Callable[[str], None]) -> dict[str, dict[str, dict[str, PresetRow]]]:
    """Re-run cheaper presets' attackers (same crops, labels and seeds) on one method's frames:
    a stronger preset must find at least as much as a cheaper one. Returns preset -> {name: row}."""
    out: dict = {}
    for other in audit.config.compare_presets:
        cheap = cheaper(audit.config, other)
        with audit.clock.stage(f"comparison with {other}"):
            result = attack(frames, audit.identity, audit.attributes, cheap, audit.pool)
        row: dict[str, PresetRow] = {}
        for p, r in result.identity.items():
            value = mine.identity[p].worst_case
            row[p] = PresetRow(worst_case=r.worst_case, this_preset=value.value,
                               at_least_as_high=value.value >= r.worst_case.value,
                               this_preset_is=compare(r.worst_case, value).replace("better", "higher")
                               .replace("worse", "lower"))
        if mine.attributes is not None and result.attributes is not None:
            ra = mine.attributes.worst_case
            row["attributes"] = PresetRow(worst_case=result.attributes.worst_case, this_preset=ra.value,
                                          at_least_as_high=ra.value >= result.attributes.worst_case.value)
        out[other] = {name: row}
        say(f"{other} preset's attackers on {name}: " + ", ".join(
            f"{p} {row[p].worst_case.value:.3f} (this preset {row[p].this_preset:.3f})" for p in result.identity))
    return out
