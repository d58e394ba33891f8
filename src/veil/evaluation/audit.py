"""The privacy audit: attack transformed video as an adversary would (wu-2018 3.4,
de-coninck-2024 4.2-4.3) and compare the obfuscator with classic baselines at equal utility.

For every method (original frames = upper bound, the obfuscator, U-Net reconstructions of
its output, each baseline) the audit transforms whole frames, cuts person crops at the
ORIGINAL pseudo-label boxes, trains every registered attacker on transformed crops with
labels from the originals and evaluates on unseen transformed crops:

* identity: ByteTrack pseudo-identities of the identity split (default "test"), each
  identity's crops split by time into attacker-train / attacker-test; top-1 accuracy;
* attributes: pseudo-attributes (or a user CSV), train on train-split crops, test on
  test-split crops; mA and instance-level metrics.

The worst case over attackers (A_b^N) is the privacy figure; utility is the frozen
detector's person AP relative to original frames. With ``sweep`` each baseline is traced
over strengths and calibrated to the obfuscator's relative AP.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

import veil
from veil.adversaries.attackers import Attacker
from veil.adversaries.registry import ATTACKERS
from veil.adversaries.unet import reconstruct, reconstruction_quality, train_inverse
from veil.data.attributes import AttributeTable, drop_unbalanced, load_user_attributes, pseudo_attributes
from veil.data.crops import CropSet, all_crops, cut_crops
from veil.data.dataset import FrameDataset
from veil.data.identities import build_identities
from veil.errors import VeilError
from veil.evaluation.frames import (
    FrameView,
    Transform,
    baseline_transform,
    evenly,
    obfuscator_transform,
    transform_frames,
)
from veil.evaluation.privacy_metrics import attribute_chance, attribute_metrics, identity_chance, top1_accuracy
from veil.evaluation.sweep import sweep_baseline
from veil.evaluation.utility import detection_ap
from veil.io import atomic_path, write_json
from veil.obfuscators.baselines import BASELINES, Baseline

log = logging.getLogger("veil.audit")


@dataclass
class AuditConfig:
    """Budget and protocol of one audit; see PRESETS."""

    crop_size: tuple[int, int] = (32, 64)  # (width, height) every crop is resized to
    epochs: int = 3
    batch_size: int = 32
    attackers: tuple[str, ...] | None = None  # None: every registered attacker
    baselines: tuple[str, ...] | None = None  # None: every registered baseline
    identity_split: str = "test"
    min_track: int = 8
    train_fraction: float = 0.6
    attribute_train_frames: int | None = 32  # evenly spaced train-split frames (None: all)
    max_attribute_train: int | None = 192
    max_attribute_test: int | None = 192
    ap_frames: int | None = 12  # evenly spaced test frames for person AP (None: all)
    unet_steps: int = 100
    unet_crop: int = 96
    unet_width: float = 0.5
    sweep_points: int | None = 1  # identity-attacked sweep strengths per baseline, strongest first (None: all)
    calibration_steps: int = 8  # extra utility probes to home in on the obfuscator's relative AP
    ap_tolerance: float = 0.02  # "within 2 AP points"
    seed: int = 0
    device: str = "cpu"

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, AuditConfig] = {
    "fast": AuditConfig(),
    "full": AuditConfig(crop_size=(64, 128), epochs=12, attribute_train_frames=None, max_attribute_train=3000,
                        max_attribute_test=None, ap_frames=None, unet_steps=2000, unet_crop=128, unet_width=1.0,
                        sweep_points=None, calibration_steps=10),
}


# --------------------------------------------------------------------------- attacks

@dataclass
class AttackData:
    """Crops and labels of both attack tasks (positions into the audit's frame views)."""

    identity: CropSet
    attr_train: CropSet
    attr_test: CropSet
    attributes_train: AttributeTable
    attributes_test: AttributeTable
    attribute_source: str = "pseudo"
    extra: dict = field(default_factory=dict)


def _attackers(config: AuditConfig) -> list[str]:
    names = list(config.attackers) if config.attackers else ATTACKERS.names()
    unknown = [n for n in names if n not in ATTACKERS]
    if unknown:
        raise VeilError(f"unknown attacker(s): {', '.join(unknown)} (known: {', '.join(ATTACKERS.names())})")
    return names


def _build_attacker(name: str, config: AuditConfig) -> Attacker:
    return ATTACKERS.build(name, epochs=config.epochs, batch_size=config.batch_size, seed=config.seed,
                           device=config.device)


def identity_attack(frames: torch.Tensor, crops: CropSet, config: AuditConfig) -> dict:
    """Top-1 of every attacker on later crops of each pseudo-identity, worst case over attackers."""
    x = cut_crops(frames, crops, config.crop_size)
    train, test = crops.split == "train", crops.split == "test"
    per = {}
    for name in _attackers(config):
        attacker = _build_attacker(name, config).fit(x[train], crops.identity[train], "identity")
        per[name] = top1_accuracy(attacker.predict(x[test]), crops.identity[test])
    worst = max(per, key=per.get)
    return {"per_attacker": per, "worst_case": per[worst], "worst_attacker": worst}


def attribute_attack(train_frames: torch.Tensor, test_frames: torch.Tensor, data: AttackData,
                     config: AuditConfig) -> dict:
    """mA and instance metrics of every attacker; the worst case is the attacker with the highest mA."""
    x_train = cut_crops(train_frames, data.attr_train, config.crop_size)
    x_test = cut_crops(test_frames, data.attr_test, config.crop_size)
    y_train, y_test = data.attributes_train.values, data.attributes_test.values
    per = {}
    for name in _attackers(config):
        attacker = _build_attacker(name, config).fit(x_train, y_train, "attributes")
        per[name] = attribute_metrics(attacker.predict(x_test), y_test)
    worst = max(per, key=lambda n: per[n]["mA"])
    return {"per_attacker": per, "worst_case": per[worst], "worst_attacker": worst}


# --------------------------------------------------------------------------- audit

class _Clock:
    """Seconds per stage, accumulated."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.prefix = ""  # stages run during the sweep are booked as "sweep: <stage>"
        self.start = time.perf_counter()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        name = self.prefix + name
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 2)


def _resolve_config(preset: str | AuditConfig, overrides: dict | None) -> AuditConfig:
    if isinstance(preset, AuditConfig):
        config = preset
    elif preset in PRESETS:
        config = PRESETS[preset]
    else:
        raise VeilError(f"unknown audit preset {preset!r} (known: {', '.join(PRESETS)})")
    return replace(config, **(overrides or {}))


def _sample(crops: CropSet, k: int | None, seed: int) -> CropSet:
    if k is None or len(crops) <= k:
        return crops
    keep = np.sort(np.random.default_rng(seed).choice(len(crops), k, replace=False))
    return crops.subset(keep)


def _labels(train: FrameView, test: FrameView, ident: FrameView, config: AuditConfig,
            user_csv: str | Path | None) -> AttackData:
    identity = build_identities(ident, min_track=config.min_track, train_fraction=config.train_fraction)
    attr_train = _sample(all_crops(train), config.max_attribute_train, config.seed)
    attr_test = _sample(all_crops(test), config.max_attribute_test, config.seed + 1)
    if user_csv is None:
        table_train = pseudo_attributes(train.images, attr_train)
        table_test = pseudo_attributes(test.images, attr_test)
        source = "pseudo"
    else:
        table_train, keep_train = load_user_attributes(user_csv, attr_train, train.names)
        table_test, keep_test = load_user_attributes(user_csv, attr_test, test.names)
        attr_train, attr_test = attr_train.subset(keep_train), attr_test.subset(keep_test)
        source = str(user_csv)
    both = drop_unbalanced(AttributeTable(table_train.names, np.concatenate([table_train.values, table_test.values])))
    keep = [table_train.names.index(n) for n in both.names]
    if not keep:
        raise VeilError("every attribute is more than 99% one value; no attribute attack is possible")
    table_train = AttributeTable(both.names, table_train.values[:, keep])
    table_test = AttributeTable(both.names, table_test.values[:, keep])
    return AttackData(identity, attr_train, attr_test, table_train, table_test, source)


class AuditRun:
    """The state of one audit: frames, labels, the detector, and every method evaluated so far.

    ``methods`` maps a method name to its entry (relative AP, similarity, identity and
    attribute attacks); ``grid`` holds one test frame per method for the report.
    """

    def __init__(self, dataset_dir: str | Path, detector, config: AuditConfig,
                 user_attributes_csv: str | Path | None, say: Callable[[str], None]) -> None:
        self.config, self.detector, self.say = config, detector, say
        self.clock = _Clock()
        self.device = torch.device(config.device)
        with self.clock.stage("load"):
            say("loading frames")
            train_ds = FrameDataset(dataset_dir, "train")
            test_ds = FrameDataset(dataset_dir, "test")
            if len(train_ds) == 0 or len(test_ds) == 0:
                raise VeilError("the audit needs frames in both the train and the test split")
            self.train = FrameView.of(train_ds).subset(evenly(len(train_ds), config.attribute_train_frames))
            self.test = FrameView.of(test_ds)
            self.ident = (self.test if config.identity_split == "test"
                          else FrameView.of(FrameDataset(dataset_dir, config.identity_split)))
            self.ap_pos = evenly(len(self.test), config.ap_frames)
            self.ap_view = self.test.subset(self.ap_pos)
            det_meta = train_ds.manifest.get("detector", {})
            # detect-then-anonymise may reuse the pseudo-labels when they are this detector's boxes
            self.same_detector = (
                getattr(detector, "name", None) in (det_meta.get("name"), det_meta.get("id"))
                and math.isclose(float(det_meta.get("pseudo_label_threshold", -1)),
                                 float(getattr(detector, "pseudo_label_threshold", -2))))
        with self.clock.stage("labels"):
            say("tracking pseudo-identities and computing attributes on original frames")
            self.data = _labels(self.train, self.test, self.ident, config, user_attributes_csv)
        self.methods: dict[str, dict] = {}
        self.grid: dict[str, torch.Tensor] = {}
        self.grid_pos = int(self.ap_pos[len(self.ap_pos) // 2])
        self.ap_original = self.ap(self.ap_view.images)
        if not self.ap_original > 0:
            raise VeilError("the detector finds no pseudo-labelled person on the original test frames (AP 0)")

    def chance(self) -> dict:
        id_test = self.data.identity.identity[self.data.identity.split == "test"]
        by_identity = identity_chance(id_test)
        return {"identity_top1": by_identity["majority"], "identity_uniform": by_identity["uniform"],
                "attributes": attribute_chance(self.data.attributes_train.values, self.data.attributes_test.values)}

    def ap(self, ap_frames: torch.Tensor) -> float:
        """Person AP of the frozen detector on transformed AP frames (uint8, ``ap_view`` order)."""
        with self.clock.stage("utility (person AP)"):
            return detection_ap(self.detector, self.ap_view.with_images(ap_frames), None, device=self.device)

    def frames(self, transform: Transform | None) -> dict[str, torch.Tensor]:
        """Transformed uint8 frames of the attribute-train, test and identity views."""
        with self.clock.stage("transform frames"):
            out = {"train": transform_frames(transform, self.train, device=self.device),
                   "test": transform_frames(transform, self.test, device=self.device)}
            out["ident"] = (out["test"] if self.ident is self.test
                            else transform_frames(transform, self.ident, device=self.device))
        return out

    def relative_ap(self, transform: Transform) -> float:
        """Relative person AP under ``transform`` (transforms the AP frames only: cheap)."""
        with self.clock.stage("transform frames"):
            frames = transform_frames(transform, self.ap_view, device=self.device)
        return self.ap(frames) / self.ap_original

    def evaluate(self, name: str, kind: str, frames: dict[str, torch.Tensor], strength: float | None = None,
                 attributes: bool = True, grid: bool = True) -> dict:
        """Utility, similarity and the attacks on one method's frames; stored in ``methods``."""
        ap = self.ap_original if name == "original" else self.ap(frames["test"][self.ap_pos])
        entry = {"kind": kind, "strength": strength, "person_ap": ap, "relative_ap": ap / self.ap_original}
        with self.clock.stage("similarity"):
            entry["similarity_to_original"] = reconstruction_quality(frames["test"][self.ap_pos], self.ap_view.images)
        with self.clock.stage("identity attack"):
            entry["identity"] = identity_attack(frames["ident"], self.data.identity, self.config)
        self.methods[name] = entry
        if attributes:
            self.attack_attributes(name, frames)
        self.say(f"{name}: relative AP {entry['relative_ap']:.3f}, worst-case identity top-1 "
                 f"{entry['identity']['worst_case']:.3f}"
                 + (f", worst-case mA {entry['attributes']['worst_case']['mA']:.3f}" if attributes else ""))
        if grid:
            self.grid[name] = frames["test"][self.grid_pos]
        return entry

    def attack_attributes(self, name: str, frames: dict[str, torch.Tensor]) -> dict:
        """The attribute attack on one method's frames, added to its entry."""
        with self.clock.stage("attribute attack"):
            result = attribute_attack(frames["train"], frames["test"], self.data, self.config)
        self.methods[name]["attributes"] = result
        return result


def run_audit(
    dataset_dir: str | Path,
    obfuscator: nn.Module | None,
    out_dir: str | Path,
    detector,
    preset: str | AuditConfig = "fast",
    sweep: bool = False,
    user_attributes_csv: str | Path | None = None,
    overrides: dict | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Run the privacy audit of ``obfuscator`` (None: original frames and baselines only) on
    the prepared dataset ``dataset_dir``; write ``report.json``, ``report.html`` and
    ``frame_grid.jpg`` to ``out_dir`` and return the report dict.

    ``preset``: "fast" (CPU minutes) or "full", or an AuditConfig; ``overrides``: AuditConfig
    fields to change; ``sweep``: trace each baseline over strengths and calibrate it to the
    obfuscator's relative AP; ``user_attributes_csv``: attribute labels replacing the
    pseudo-attributes; ``progress``: called with one line per step.
    """
    config = _resolve_config(preset, overrides)
    torch.manual_seed(config.seed)
    run = AuditRun(dataset_dir, detector, config, user_attributes_csv, progress or log.info)
    out_dir = Path(out_dir)

    run.evaluate("original", "reference", {"train": run.train.images, "test": run.test.images,
                                           "ident": run.ident.images})
    reconstruction: dict | None = None
    if obfuscator is not None:
        obfuscator = obfuscator.to(run.device).eval()
        obf = run.frames(obfuscator_transform(obfuscator))
        run.evaluate("obfuscator", "obfuscator", obf)
        with run.clock.stage("reconstruction attack (U-Net training)"):
            run.say(f"training a U-Net to invert the obfuscator ({config.unet_steps} steps)")
            unet = train_inverse(obf["train"], run.train.images, steps=config.unet_steps, crop=config.unet_crop,
                                 width=config.unet_width, seed=config.seed, device=run.device)
            rec = {k: reconstruct(unet, v) for k, v in obf.items() if k != "ident"}
            rec["ident"] = rec["test"] if run.ident is run.test else reconstruct(unet, obf["ident"])
        reconstruction = {"steps": config.unet_steps, "test": reconstruction_quality(rec["test"], run.test.images)}
        run.evaluate("reconstruction", "reconstruction", rec)
        del obf, rec

    baseline_names = list(config.baselines) if config.baselines is not None else BASELINES.names()
    baselines: dict[str, Baseline] = {}
    for name in baseline_names:
        b = BASELINES.build(name)
        if b.needs_detector:
            b.detector = detector
        baselines[name] = b
        # with a sweep the attributes are attacked at the matched strength, the fair comparison
        run.evaluate(name, "baseline", run.frames(baseline_transform(b, run.same_detector)), strength=b.strength,
                     attributes=not sweep)

    curves: dict[str, dict] = {}
    if sweep:
        target = run.methods["obfuscator"]["relative_ap"] if "obfuscator" in run.methods else None
        run.clock.prefix = "sweep: "
        for name, b in baselines.items():
            curves[name] = sweep_baseline(run, name, b, target)
        run.clock.prefix = ""

    data = run.data
    report = {
        "format": "veil-audit",
        "veil_version": veil.__version__,
        "dataset": str(dataset_dir),
        "preset": preset if isinstance(preset, str) else "custom",
        "config": config.to_dict(),
        "sweep": bool(sweep),
        "labels": {
            "identity": {"split": config.identity_split, "identities": int(len(np.unique(data.identity.identity))),
                         "train_crops": int((data.identity.split == "train").sum()),
                         "test_crops": int((data.identity.split == "test").sum()), "min_track": config.min_track},
            "attributes": {"source": data.attribute_source, "names": data.attributes_train.names,
                           "train_crops": len(data.attr_train), "test_crops": len(data.attr_test),
                           "positive_rate": dict(zip(data.attributes_train.names,
                                                     np.round(data.attributes_train.values.mean(0), 4).tolist()))},
        },
        "attackers": _attackers(config),
        "chance": run.chance(),
        "person_ap_original": run.ap_original,
        "methods": run.methods,
        "reconstruction": reconstruction,
        "baselines": {n: b.describe() for n, b in baselines.items()},
        "curves": curves,
    }
    report["verdict"] = verdict(report)
    clock = run.clock
    with clock.stage("report"):
        from veil.evaluation.report import frame_grid_jpeg, render_html

        grid = frame_grid_jpeg(run.grid)
        with atomic_path(out_dir / "frame_grid.jpg") as tmp:
            tmp.write_bytes(grid)
        report["stage_seconds"] = dict(clock.seconds)  # the HTML shows every stage before this one
        with atomic_path(out_dir / "report.html") as tmp:
            tmp.write_text(render_html(report, grid))
    report["stage_seconds"] = {**clock.seconds, "total": round(time.perf_counter() - clock.start, 2)}
    write_json(out_dir / "report.json", report)
    run.say(f"report written to {out_dir / 'report.html'}")
    return report


def verdict(report: dict) -> dict:
    """The issue's acceptance figures: original far above chance; obfuscator below every
    classic baseline in worst-case identity accuracy (at matched utility when swept)."""
    methods, chance = report["methods"], report["chance"]["identity_top1"]
    out: dict = {"identity_chance": chance,
                 "original_identity_worst_case": methods["original"]["identity"]["worst_case"]}
    out["original_above_chance"] = out["original_identity_worst_case"] - chance
    if "obfuscator" not in methods:
        return out
    obf = methods["obfuscator"]["identity"]["worst_case"]
    compare = {}
    for name in report["baselines"]:
        cal = report["curves"].get(name, {}).get("calibrated")
        m = methods[cal["method"]] if cal else methods[name]
        compare[name] = {"identity_worst_case": m["identity"]["worst_case"], "relative_ap": m["relative_ap"],
                         "utility_matched": bool(cal and cal["matched"])}
    out["obfuscator_identity_worst_case"] = obf
    out["obfuscator_relative_ap"] = methods["obfuscator"]["relative_ap"]
    out["baselines"] = compare
    out["obfuscator_beats_every_baseline"] = all(obf < c["identity_worst_case"] for c in compare.values())
    out["every_baseline_matched"] = bool(report["sweep"]) and all(c["utility_matched"] for c in compare.values())
    return out
