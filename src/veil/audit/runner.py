"""``veil audit``: attack transformed video as an adversary would (wu-2018 3.4,
de-coninck-2024 4.2-4.3) and compare obfuscators with each other and with classic baselines.

The frames and labels are prepared once; then every method (original frames = upper bound,
each obfuscator, U-Net reconstructions of its output, each baseline) transforms the audit's
frame table, cuts person crops at the ORIGINAL pseudo-label boxes, and runs every attacker of
every task on them (veil.audit.attacks) with the same seeds. Utility is the frozen detector's
person AP relative to the original frames; each obfuscator's parameters, MACs and CPU latency
are measured too (veil.evaluation.cost). With ``sweep`` each baseline is traced over strengths and
attacked where its utility matches the FIRST obfuscator's (veil.audit.sweep). Each stage
returns its results; this module only puts them together.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

import veil
from veil.adversaries.unet import reconstruct, reconstruction_quality, train_inverse
from veil.audit.attacks import attack, attack_pool, attacker_names
from veil.audit.config import AuditConfig, resolve
from veil.evaluation.cost import obfuscator_cost
from veil.audit.frames import (
    AuditFrames,
    FrameView,
    Transform,
    baseline_transform,
    evenly,
    obfuscator_transform,
    transform_frames,
)
from veil.audit.labels import AttributeTask, IdentityTask, attribute_task
from veil.audit.protocols import PROTOCOLS
from veil.audit.sweep import trace, weak_to_strong
from veil.audit.verdict import compare, drop_replicates, verdict
from veil.detectors.fingerprint import fingerprint
from veil.errors import VeilError
from veil.evaluation.utility import detection_ap
from veil.io import atomic_path, read_json, write_json
from veil.obfuscators.baselines import BASELINES, Baseline

log = logging.getLogger("veil.audit")


class Clock:
    """Seconds per stage, accumulated."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.start = time.perf_counter()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 2)


@dataclass
class Audit:
    """What every method is measured against: frames, labels, the detector and its AP frames."""

    config: AuditConfig
    frames: AuditFrames
    identity: dict[str, IdentityTask]
    attributes: AttributeTask
    detector: nn.Module
    ap_positions: torch.Tensor  # positions of the AP frames in the frame table
    ap_view: FrameView  # those frames (original images, pseudo-labels), cut once
    same_detector: bool  # the pseudo-labels are this detector's boxes: detect-then-anonymise may reuse them
    clock: Clock
    ap_original: float = float("nan")
    pool: Executor | None = None  # where attacker fits run (veil.audit.attacks.attack_pool)

    @property
    def device(self) -> torch.device:
        return torch.device(self.config.device)

    def transform(self, transform: Transform | None) -> torch.Tensor:
        with self.clock.stage("transform frames"):
            return transform_frames(transform, self.frames.view, device=self.device)

    def person_ap(self, ap_frames: torch.Tensor) -> float:
        with self.clock.stage("utility (person AP)"):
            return detection_ap(self.detector, self.ap_view.with_images(ap_frames), None, device=self.device)

    def relative_ap(self, transform: Transform) -> float:
        """Relative person AP under ``transform``; transforms the AP frames only (cheap)."""
        with self.clock.stage("transform frames"):
            frames = transform_frames(transform, self.ap_view, device=self.device)
        return self.person_ap(frames) / self.ap_original

    def evaluate(self, kind: str, frames: torch.Tensor, strength: float | None = None, attributes: bool = True,
                 config: AuditConfig | None = None) -> dict:
        """Utility, similarity and the attacks on one method's transformed frame table."""
        config = config or self.config
        ap_frames = frames[self.ap_positions]
        ap = self.person_ap(ap_frames) if kind != "reference" else self.ap_original
        entry = {"kind": kind, "strength": strength, "person_ap": ap, "relative_ap": ap / self.ap_original}
        with self.clock.stage("similarity"):
            entry["similarity_to_original"] = reconstruction_quality(ap_frames, self.ap_view.images)
        with self.clock.stage("attacks"):
            entry.update(attack(frames, self.identity, self.attributes if attributes else None, config, self.pool))
        return entry


def _same_detector(detector, manifest: dict) -> bool:
    """The dataset's pseudo-labels are this detector's boxes: same weights (by hash, not by file
    name), same pseudo-label threshold. Datasets without a recorded hash never match."""
    meta = manifest.get("detector", {})
    if "fingerprint" not in meta:
        return False
    return meta["fingerprint"] == fingerprint(detector) and math.isclose(
        float(meta.get("pseudo_label_threshold", -1)), float(getattr(detector, "pseudo_label_threshold", -2)))


def prepare(dataset_dir: str | Path, detector, config: AuditConfig, user_csv: str | Path | None,
            say: Callable[[str], None]) -> Audit:
    """Load the frames, label identities and attributes, and measure the original AP."""
    clock = Clock()
    dataset_dir = Path(dataset_dir)
    manifest = read_json(dataset_dir / "manifest.json")
    protocols = {p: PROTOCOLS.build(p) for p in config.protocols}
    needed = {"train": config.attribute_train_frames, "test": None}
    for protocol in protocols.values():
        for split in protocol.splits(config):
            needed[split] = None  # a protocol tracks people through a whole split, never a subsample
    for split in needed:
        if not manifest["splits"].get(split):
            raise VeilError(f"the audit needs frames in the {split} split of {dataset_dir}")
    with clock.stage("load"):
        say("loading frames")
        frames = AuditFrames.load(dataset_dir, needed)
    with clock.stage("labels"):
        say("tracking pseudo-identities and computing attributes on original frames")
        identity = {p: protocol.identities(frames, config) for p, protocol in protocols.items()}
        attributes = attribute_task(frames, config, user_csv)
    test_pos = frames.positions["test"]
    ap_positions = torch.as_tensor(test_pos[evenly(len(test_pos), config.ap_frames)])
    audit = Audit(config, frames, identity, attributes, detector, ap_positions,
                  frames.view.subset(ap_positions.numpy()), _same_detector(detector, manifest), clock)
    audit.ap_original = audit.person_ap(audit.ap_view.images)
    if not audit.ap_original > 0:
        raise VeilError("the detector finds no pseudo-labelled person on the original test frames (AP 0)")
    for p, task in identity.items():
        d = task.description
        say(f"{p}: {d['identities']} identities, {d['train_crops']} train / {d['val_crops']} val / "
            f"{d['test_crops']} test crops")
    return audit


def _say_entry(say, name: str, entry: dict) -> None:
    ident = ", ".join(f"{p} {v['worst_case']['value']:.3f}" for p, v in entry["identity"].items())
    attrs = f", worst-case mA {entry['attributes']['worst_case']['value']:.3f}" if "attributes" in entry else ""
    say(f"{name}: relative AP {entry['relative_ap']:.3f}, worst-case identity top-1 {ident}{attrs}")


def _baselines(config: AuditConfig, detector) -> dict[str, Baseline]:
    names = list(config.baselines) if config.baselines is not None else BASELINES.names()
    out = {}
    for name in names:
        b = BASELINES.build(name)
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
    reserved = {"original", "reconstruction"} | set(BASELINES.names())
    clash = sorted(n for n in named if n in reserved or n.endswith(RECONSTRUCTION_SUFFIX))
    if clash:
        raise VeilError(f"obfuscator name(s) {', '.join(clash)} clash with the audit's own methods; rename them")
    return named


RECONSTRUCTION_SUFFIX = " (reconstruction)"


def reconstruction_method(name: str) -> str:
    """The method name of the U-Net reconstructions of obfuscator ``name``'s output."""
    return "reconstruction" if name == "obfuscator" else f"{name}{RECONSTRUCTION_SUFFIX}"


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
) -> dict:
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
    say = progress or log.info
    torch.manual_seed(config.seed)
    detector = detector.to(config.device)
    audit = prepare(dataset_dir, detector, config, user_attributes_csv, say)
    with attack_pool(config) as audit.pool:
        return _run(audit, dataset_dir, named, dict(info or {}), Path(out_dir), detector, preset, sweep, say)


@dataclass
class Measured:
    """One stage's result: method entries (name -> entry), one grid frame per method, and the
    cheaper presets' rows (preset -> method -> row)."""

    methods: dict[str, dict]
    grid: dict[str, torch.Tensor]
    presets: dict[str, dict[str, dict]]


def _measure_original(audit: Audit, grid_pos: int, say: Callable[[str], None]) -> Measured:
    original = audit.frames.view.images
    entry = audit.evaluate("reference", original)
    _say_entry(say, "original", entry)
    return Measured({"original": entry}, {"original": original[grid_pos]},
                    _compare_presets(audit, "original", original, entry, say))


def _measure_obfuscator(audit: Audit, name: str, obfuscator: nn.Module, grid_pos: int,
                        say: Callable[[str], None]) -> tuple[Measured, dict]:
    """The obfuscator's entry, the U-Net reconstruction attack on its output, and its cost;
    only this obfuscator's frames are held, and dropped on return."""
    config = audit.config
    original = audit.frames.view.images
    obfuscator = obfuscator.to(audit.device).eval()
    obf = audit.transform(obfuscator_transform(obfuscator))
    entry = audit.evaluate("obfuscator", obf)
    _say_entry(say, name, entry)
    presets = _compare_presets(audit, name, obf, entry, say)
    with audit.clock.stage("reconstruction attack (U-Net training)"):
        say(f"training a U-Net to invert {name} ({config.unet_steps} steps)")
        train_pos = audit.frames.positions["train"]
        unet = train_inverse(obf[train_pos], original[train_pos], steps=config.unet_steps, crop=config.unet_crop,
                             width=config.unet_width, seed=config.seed, device=audit.device)
        rec = reconstruct(unet, obf)
    test_pos = audit.frames.positions["test"]
    rec_name = reconstruction_method(name)
    reconstruction = {"steps": config.unet_steps, "method": rec_name,
                      "test": reconstruction_quality(rec[test_pos], original[test_pos])}
    rec_entry = audit.evaluate("reconstruction", rec)
    _say_entry(say, rec_name, rec_entry)
    with audit.clock.stage("cost (params, MACs, CPU latency)"):
        cost = obfuscator_cost(obfuscator)
    say(f"{name}: {cost['parameters']} parameters, {cost['macs'] / 1e6:.1f} M MACs, "
        f"{cost['latency_ms']:.1f} ms per 640x480 frame (CPU, 1 thread)")
    measured = Measured({name: entry, rec_name: rec_entry}, {name: obf[grid_pos], rec_name: rec[grid_pos]}, presets)
    return measured, {"reconstruction": reconstruction, "cost": cost}


def _measure_baselines(audit: Audit, baselines: dict[str, Baseline], target: float | None, sweep: bool,
                       grid_pos: int, reference: dict, say: Callable[[str], None]) -> tuple[Measured, dict]:
    """Every baseline at its paper strength, or (``sweep``) traced and calibrated to ``target``."""
    config = audit.config
    methods: dict[str, dict] = {}
    grid: dict[str, torch.Tensor] = {}
    curves: dict[str, dict] = {}

    def add(name: str, entry: dict, frames: torch.Tensor | None) -> None:
        methods[name] = entry
        if frames is not None:
            grid[name] = frames[grid_pos]
        _say_entry(say, name, entry)

    for name, b in baselines.items():
        def transform(s: float, b: Baseline = b) -> Transform:
            return baseline_transform(b.with_strength(s), audit.same_detector)

        if not sweep:
            frames = audit.transform(transform(b.strength))
            add(name, audit.evaluate("baseline", frames, strength=b.strength), frames)
            continue
        # Swept: probe utility everywhere (cheap), attack only the matched strength and the curve's far end.
        with audit.clock.stage("sweep: utility probes"):
            curve = trace(b, lambda s, t=transform: audit.relative_ap(t(s)), None, target, config.sweep_points,
                          config.calibration_steps, config.ap_tolerance)
        points = {curve.none_strength: "original"}
        if curve.calibrated is not None and curve.calibrated != curve.none_strength:
            method = f"{name} (matched)"
            frames = audit.transform(transform(curve.calibrated))
            add(method, audit.evaluate("baseline", frames, strength=curve.calibrated), frames)
            points[curve.calibrated] = method
        for s in curve.far_end:
            method = f"{name}@{s:.3g}"
            add(method, audit.evaluate("baseline", audit.transform(transform(s)), strength=s, attributes=False), None)
            points[s] = method
        known = {**reference, **methods}
        result = curve.to_dict(b)
        primary = config.protocols[0]
        result["points"] = [{"strength": s, "relative_ap": known[m]["relative_ap"], "method": m,
                             "identity_worst_case": known[m]["identity"][primary]["worst_case"]["value"],
                             "identity_interval": known[m]["identity"][primary]["worst_case"]["interval"]}
                            for s, m in ((s, points[s]) for s in weak_to_strong(b, points))]
        if curve.calibrated is not None:
            m = known[points[curve.calibrated]]
            result["calibrated"] = {"strength": curve.calibrated, "method": points[curve.calibrated],
                                    "relative_ap": m["relative_ap"], "target_relative_ap": target,
                                    "matched": abs(m["relative_ap"] - target) <= config.ap_tolerance}
            say(f"{name}: calibrated strength {curve.calibrated:.4g} -> relative AP {m['relative_ap']:.3f} "
                f"(target {target:.3f})")
        curves[name] = result
    return Measured(methods, grid, {}), curves


def _merge(parts: list[Measured]) -> Measured:
    out = Measured({}, {}, {})
    for part in parts:
        out.methods.update(part.methods)
        out.grid.update(part.grid)
        for other, rows in part.presets.items():
            out.presets.setdefault(other, {}).update(rows)
    return out


def _run(audit: Audit, dataset_dir, obfuscators: dict[str, nn.Module], info: dict[str, dict], out_dir: Path,
         detector, preset, sweep: bool, say: Callable[[str], None]) -> dict:
    config = audit.config
    grid_pos = int(audit.ap_positions[len(audit.ap_positions) // 2])
    parts = [_measure_original(audit, grid_pos, say)]
    per_obfuscator: dict[str, dict] = {}
    for name, module in obfuscators.items():
        measured, extra = _measure_obfuscator(audit, name, module, grid_pos, say)
        parts.append(measured)
        per_obfuscator[name] = {**extra, "info": info.get(name, {})}
    first = next(iter(obfuscators), None)
    target = parts[1].methods[first]["relative_ap"] if first is not None else None
    baselines = _baselines(config, detector)
    measured, curves = _measure_baselines(audit, baselines, target, sweep, grid_pos, parts[0].methods, say)
    parts.append(measured)
    merged = _merge(parts)
    methods = merged.methods
    report = {
        "format": "veil-audit", "veil_version": veil.__version__, "dataset": str(dataset_dir),
        "preset": preset if isinstance(preset, str) else "custom", "config": config.to_dict(), "sweep": bool(sweep),
        "protocols": list(config.protocols),
        "labels": {"identity": {p: t.description for p, t in audit.identity.items()},
                   "attributes": audit.attributes.describe()},
        "attackers": attacker_names(config),
        "chance": {"identity": {p: t.description["chance"] for p, t in audit.identity.items()},
                   "attributes": audit.attributes.chance()},
        "person_ap_original": audit.ap_original, "same_detector": audit.same_detector,
        "methods": methods,
        "reconstruction": per_obfuscator[first]["reconstruction"] if first is not None else None,
        "obfuscators": {name: {"method": name, **v} for name, v in per_obfuscator.items()},
        "sweep_target": first if sweep else None,
        "baselines": {n: b.describe() for n, b in baselines.items()}, "curves": curves,
        "comparison": {other: {"attackers": attacker_names(_cheaper(config, other)), "methods": rows}
                       for other, rows in merged.presets.items()},
    }
    report["obfuscator_table"] = obfuscator_table(report)
    report["verdict"] = verdict(report)
    drop_replicates(report)  # the verdict has read them; the report keeps figures and intervals
    with audit.clock.stage("report"):
        from veil.audit.report import frame_grid_jpeg, render_html

        jpeg = frame_grid_jpeg(merged.grid)
        with atomic_path(out_dir / "frame_grid.jpg") as tmp:
            tmp.write_bytes(jpeg)
        report["stage_seconds"] = dict(audit.clock.seconds)  # the HTML shows every stage before this one
        with atomic_path(out_dir / "report.html") as tmp:
            tmp.write_text(render_html(report, jpeg))
    report["stage_seconds"] = {**audit.clock.seconds, "total": round(time.perf_counter() - audit.clock.start, 2)}
    write_json(out_dir / "report.json", report)
    say(f"report written to {out_dir / 'report.html'}")
    return report


def obfuscator_table(report: dict) -> list[dict]:
    """One row per audited obfuscator: utility, worst-case privacy with intervals, and cost."""
    rows = []
    for name, o in report["obfuscators"].items():
        m = report["methods"][name]
        row = {"method": name, "relative_ap": m["relative_ap"],
               "identity": {p: {"value": m["identity"][p]["worst_case"]["value"],
                                "interval": m["identity"][p]["worst_case"]["interval"]} for p in report["protocols"]},
               "attributes_mA": ({"value": m["attributes"]["worst_case"]["value"],
                                  "interval": m["attributes"]["worst_case"]["interval"]}
                                 if "attributes" in m else None),
               "reconstruction": o["reconstruction"]["test"],
               "parameters": o["cost"]["parameters"], "macs": o["cost"]["macs"],
               "latency_ms": o["cost"]["latency_ms"], **o.get("info", {})}
        rows.append(row)
    return rows


def _cheaper(config: AuditConfig, other: str) -> AuditConfig:
    from veil.audit.config import PRESETS

    return replace(PRESETS[other], seeds=config.seeds, seed=config.seed, device=config.device,
                   bootstrap=config.bootstrap, level=config.level)


def _compare_presets(audit: Audit, name: str, frames: torch.Tensor, mine: dict,
                     say: Callable[[str], None]) -> dict[str, dict[str, dict]]:
    """Re-run cheaper presets' attackers (same crops, labels and seeds) on one method's frames:
    a stronger preset must find at least as much as a cheaper one. Returns preset -> {name: row}."""
    out: dict = {}
    for other in audit.config.compare_presets:
        cheap = _cheaper(audit.config, other)
        with audit.clock.stage(f"comparison with {other}"):
            result = attack(frames, audit.identity, audit.attributes, cheap, audit.pool)
        row = {}
        for p, r in result["identity"].items():
            value = mine["identity"][p]["worst_case"]
            row[p] = {"worst_case": r["worst_case"], "this_preset": value["value"],
                      "at_least_as_high": value["value"] >= r["worst_case"]["value"],
                      "this_preset_is": compare(r["worst_case"], value).replace("better", "higher")
                      .replace("worse", "lower")}
        ra = mine["attributes"]["worst_case"]
        row["attributes"] = {"worst_case": result["attributes"]["worst_case"], "this_preset": ra["value"],
                             "at_least_as_high": ra["value"] >= result["attributes"]["worst_case"]["value"]}
        out[other] = {name: row}
        say(f"{other} preset's attackers on {name}: " + ", ".join(
            f"{p} {row[p]['worst_case']['value']:.3f} (this preset {row[p]['this_preset']:.3f})"
            for p in result["identity"]))
    return out
