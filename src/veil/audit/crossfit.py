"""``veil audit --cross-fit K``: every identity in the footage, and no audited frame seen in training.

The quick audit sees only the val and test splits (16 s of vtest, 15 identities), so its
absolute figures carry intervals near +-0.24. Cross-fitting uses the whole clip: its time line is
cut into K contiguous folds; for each fold an obfuscator is trained on the OTHER folds by the
same recipe (preset, objective, seed), leaving out every frame within ``gap`` seconds of the
fold, and its output on this fold is attacked. The test crops of all folds are pooled into one
figure, bootstrapped over the pooled identities. Each audited frame was therefore unseen by the
obfuscator that produced it, and the figure measures the training recipe, not one checkpoint.

Everything is resumable: each fold's training run resumes from its last checkpoint, each
attacker fit of each fold and method is cached (``veil.audit.fit_cache``), and a finished fold is
read back whole (``veil.audit.fold_store``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from veil.audit import fold_store
from veil.audit.attacks import Predictions, attack_pool, pool, summarise, with_floor
from veil.audit.config import AuditConfig, resolve
from veil.audit.measure import baselines_of
from veil.audit.prepare import Clock, prepare
from veil.audit.report import (
    BOXES,
    AttributeLabels,
    AuditReport,
    Chance,
    CrossFit,
    IdentityChance,
    IdentityLabels,
    Labels,
    MethodResult,
    load_report,
)
from veil.audit.runner import assemble, finish, obfuscator_table
from veil.detectors import FrozenDetector
from veil.errors import VeilError
from veil.evaluation.privacy_metrics import identity_chance
from veil.io import read_json, write_json
from veil.training.config import TrainConfig

#: a finished fold's pooled inputs, beside its report.json (veil.audit.fold_store)
FOLD_STORE = "pooled-inputs.npz"


@dataclass(frozen=True)
class Fold:
    """One fold: the frames it audits (contiguous in time) and the frames its obfuscator trains on."""

    index: int
    audited: tuple[str, ...]
    training: tuple[str, ...]
    time_range: tuple[float, float]  # first and last audited frame (seconds, in its clip)


def plan_folds(records: list[dict], folds: int, gap: float) -> list[Fold]:
    """Cut the frames (ordered by clip, then time) into ``folds`` contiguous folds of equal frame
    count. A fold's obfuscator trains on every other frame except those of the same clip within
    ``gap`` seconds of an audited frame, so the gap holds at each boundary."""
    if folds < 2:
        raise VeilError(f"--cross-fit needs at least 2 folds, got {folds}")
    ordered = sorted(records, key=lambda r: (r.get("clip", 0), float(r["time"])))
    if len(ordered) < 2 * folds:
        raise VeilError(f"{len(ordered)} frames are too few for {folds} folds")
    bounds = np.linspace(0, len(ordered), folds + 1).round().astype(int)
    plan = []
    for k in range(folds):
        audited = ordered[bounds[k]:bounds[k + 1]]
        span: dict[int, tuple[float, float]] = {}  # clip -> audited time range
        for r in audited:
            lo, hi = span.get(r.get("clip", 0), (np.inf, -np.inf))
            span[r.get("clip", 0)] = (min(lo, float(r["time"])), max(hi, float(r["time"])))
        names = {r["name"] for r in audited}

        def far(r: dict, span: dict = span) -> bool:
            lo, hi = span.get(r.get("clip", 0), (np.inf, -np.inf))
            t = float(r["time"])
            return t < lo - gap or t > hi + gap

        training = tuple(r["name"] for r in ordered if r["name"] not in names and far(r))
        if not training:
            raise VeilError(f"fold {k} leaves no training frame outside its {gap} s gap")
        times = [float(r["time"]) for r in audited]
        plan.append(Fold(k, tuple(r["name"] for r in audited), training, (min(times), max(times))))
    return plan


def fold_dataset(src: Path, dst: Path, fold: Fold, val_share: float = 0.1) -> Path:
    """A dataset folder for one fold (frames linked, not copied): train and val are the fold's
    training frames (val: the last ``val_share`` of them, for the trainer's validation), test is
    the audited fold. Rewritten every time, so it always matches the plan."""
    manifest, labels = read_json(src / "manifest.json"), read_json(src / "labels.json")
    n_val = max(1, int(round(len(fold.training) * val_share)))
    splits = {"train": list(fold.training[:-n_val]), "val": list(fold.training[-n_val:]),
              "test": list(fold.audited)}
    split_of = {n: s for s, names in splits.items() for n in names}
    (dst / "frames").mkdir(parents=True, exist_ok=True)
    for name in split_of:
        link = dst / "frames" / name
        if not link.exists():
            os.symlink((src / "frames" / name).resolve(), link)
    write_json(dst / "labels.json", {n: v for n, v in labels.items() if n in split_of})
    frames = [{**r, "split": split_of[r["name"]]} for r in manifest["frames"] if r["name"] in split_of]
    write_json(dst / "manifest.json", {**manifest, "splits": splits, "frames": frames,
                                       "cross_fit": {"fold": fold.index, "source": str(src)}})
    return dst


def train_fold(dataset: Path, run_dir: Path, recipe: TrainConfig, device: str, detector: FrozenDetector,
               say: Callable[[str], None]) -> Path:
    """Train (or resume, or reuse) the fold's obfuscator by ``recipe``; its checkpoint path."""
    from veil.training.trainer import Trainer

    checkpoint = run_dir / "obfuscator.safetensors"
    trainer = Trainer(dataset, run_dir, recipe, device=device, detector=detector)
    if trainer.resume():
        say(f"{run_dir.parent.name}: resuming its training after epoch {trainer.epoch}")
    if trainer.epoch < recipe.epochs or not checkpoint.is_file():
        say(f"{run_dir.parent.name}: training {recipe.epochs} epochs on {len(trainer.train_set)} frames")
        trainer.fit(None)
    trainer.close()
    return checkpoint


def _digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()[:12]


#: audit settings added after fold stores were first written: they count in a fold's key only when set
ADDED_LATER = ("codec",)


def _settings(config: AuditConfig) -> dict:
    """The audit settings a fold's results depend on (fold stores written before a setting existed still resume)."""
    return {k: v for k, v in config.to_dict().items() if not (k in ADDED_LATER and v is None)}


#: settings that change no single attacker fit (one fit is one file per method, protocol, attacker and seed):
#: widening an audit (more baselines, protocols, attackers or seeds) reads back every fit already made
FIT_NEUTRAL = ("workers", "attackers", "baselines", "protocols", "seeds", "fuse_boxes", "transfer",
               "transfer_detectors", "compare_presets", "headline", "bootstrap", "level")


def _settings_digest(config: AuditConfig) -> str:
    """The attacker fits' cache key: every audit setting that changes the crops or how one attacker fits."""
    settings = {k: v for k, v in _settings(config).items() if k not in FIT_NEUTRAL}
    return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]


def cross_fit_audit(dataset_dir: str | Path, recipe: TrainConfig, out_dir: str | Path, detector: FrozenDetector,
                    preset: str | AuditConfig = "strong", folds: int = 2, gap: float | None = None,
                    overrides: dict | None = None, sweep: bool = False,
                    progress: Callable[[str], None] | None = None) -> AuditReport:
    """Audit the training ``recipe`` over ``folds`` folds of the whole clip; write the pooled
    report (report.json, report.html) to ``out_dir`` and each fold's work under ``out_dir/folds``."""
    from veil.training.state import load_models

    say = progress or (lambda _line: None)
    dataset_dir, out_dir = Path(dataset_dir), Path(out_dir)
    # every fold's audited frames are its test split: both protocols track people through it
    config = replace(resolve(preset, overrides), reid_splits=("test",), tracking_split="test")
    baselines_of(config, None, sweep)  # a bad baseline fails here, before any fold trains
    gap = config.time_gap if gap is None else gap
    if gap < config.time_gap:
        raise VeilError(f"the fold gap ({gap} s) must be at least the reid time gap ({config.time_gap} s)")
    plan = plan_folds(read_json(dataset_dir / "manifest.json")["frames"], folds, gap)
    clock = Clock()
    reports: list[AuditReport] = []
    raws: list[dict[str, dict[str, Predictions]]] = []
    ap_frames: list[int] = []
    checkpoints = []
    grid: dict[str, torch.Tensor] = {}
    detector = detector.to(config.device)
    for fold in plan:
        work = out_dir / "folds" / f"fold{fold.index}"
        say(f"fold {fold.index + 1}/{folds}: audits {len(fold.audited)} frames "
            f"({fold.time_range[0]:.1f}-{fold.time_range[1]:.1f} s), trains on {len(fold.training)}")
        ds = fold_dataset(dataset_dir, work / "dataset", fold)
        with clock.stage("training (per fold)"):
            checkpoint = train_fold(ds, work / "run", recipe, config.device, detector, say)
        checkpoints.append(str(checkpoint))
        # a finished fold is read back whole; any change of its checkpoint or settings audits it again
        # the headline figure only reads the pooled predictions: another one re-pools, it does not re-audit
        key = {"checkpoint": _digest(checkpoint),
               "config": {k: v for k, v in _settings(config).items() if k != "headline"}, "sweep": sweep,
               "detector": getattr(detector, "spec", None) or type(detector).__name__}
        done = fold_store.load(work / FOLD_STORE, key) if (work / "report.json").is_file() else None
        if done is not None:
            say(f"fold {fold.index + 1}/{folds}: finished before, read back")
            raw, n_ap, fold_grid = done
            if _add_attribute_floor(raw, ds, detector, config, say):
                fold_store.save(work / FOLD_STORE, key, raw, n_ap, fold_grid)
            reports.append(load_report(work))
            raws.append(raw)
            ap_frames.append(n_ap)
            grid = fold_grid or grid
            continue
        obfuscator = load_models(checkpoint)[0]
        torch.manual_seed(config.seed)
        audit = prepare(ds, detector, config, None, say)
        # attacker fits are kept per checkpoint AND per audit settings: another preset or codec in the same
        # --work must not read back fits made on other crops or frames
        audit.raw, audit.cache = {}, work / "attacks" / _digest(checkpoint) / _settings_digest(config)
        info = {"obfuscator": {"checkpoint": str(checkpoint), "obfuscator": recipe.obfuscator,
                               "obfuscator_args": recipe.obfuscator_args, "adversaries": recipe.adversaries}}
        with attack_pool(config) as audit.pool:
            report, grid = assemble(audit, ds, {"obfuscator": obfuscator}, info, detector, preset, sweep, say)
        for stage, seconds in audit.clock.seconds.items():
            clock.seconds[stage] = round(clock.seconds.get(stage, 0.0) + seconds, 2)
        report.write(work)  # each fold's own figures, for the curious (no verdict: the pooled one counts)
        fold_store.save(work / FOLD_STORE, key, audit.raw, len(audit.ap_positions), grid)
        reports.append(report)
        raws.append(audit.raw)
        ap_frames.append(len(audit.ap_positions))
    pooled = pool_folds(reports, raws, ap_frames, config)
    pooled.dataset = str(dataset_dir)
    pooled.cross_fit = CrossFit(
        folds=folds, gap_s=gap, recipe={**recipe.to_dict(), "checkpoints": checkpoints},
        fold_ranges_s=[f.time_range for f in plan],
        identities={p: d.identities for p, d in pooled.labels.identity.items()},
        test_crops={p: d.test_crops for p, d in pooled.labels.identity.items()})
    return finish(pooled, grid, config, clock, out_dir, say)


def _add_attribute_floor(raw: dict[str, dict[str, Predictions]], dataset: Path, detector: FrozenDetector,
                         config: AuditConfig, say: Callable[[str], None]) -> bool:
    """A fold stored before the attribute floor existed (veil.audit.geometry.attribute_predictions) gets it
    from its own labels, in seconds and with no attacker fit, instead of a re-audit: the floor's attribute
    predictions and, with ``fuse_boxes``, its attackers beside every method's (as a fresh audit joins them).
    False when the fold has it already (or measured no attributes)."""
    if BOXES not in raw or "attributes" in raw[BOXES] or "attributes" not in raw.get("original", {}):
        return False
    say("adding the attribute floor to a fold stored before it existed")
    floor = prepare(dataset, detector, config, None, say).boxes()["attributes"]
    raw[BOXES]["attributes"] = floor
    if config.fuse_boxes:
        for method, tasks in raw.items():
            if method != BOXES and "attributes" in tasks:
                tasks["attributes"] = with_floor(tasks["attributes"], floor)
    return True


def _pooled_method(name: str, reports: list[AuditReport], raws: list[dict], weights: np.ndarray,
                   config: AuditConfig) -> MethodResult:
    """One method over every fold: attacks pooled, utility averaged over folds by their AP frames."""
    ms = [r.methods[name] for r in reports]
    identity = {p: summarise(pool([raw[name][p] for raw in raws]), config) for p in ms[0].identity}
    attributes = None
    if all("attributes" in raw[name] for raw in raws):
        # each fold keeps the attributes balanced on its own attacker-train labels: pool the common ones
        kept = [r.labels.attributes.names for r in reports]
        common = [a for a in kept[0] if all(a in k for k in kept)]
        parts = [_columns(raw[name]["attributes"], [k.index(a) for a in common]) for raw, k in zip(raws, kept)]
        attributes = summarise(pool(parts), config, common)
    similarity = {k: float(np.mean([m.similarity_to_original[k] for m in ms])) for k in ms[0].similarity_to_original}

    def averaged(values: list[dict]) -> dict:  # per key, where every fold measured it (by the folds' AP frames)
        keys = [k for k in values[0] if all(isinstance(v.get(k), int | float) for v in values)]
        return {k: float(np.average([v[k] for v in values], weights=weights)) for k in keys}

    sent = [m.upload_bytes_per_frame for m in ms if m.upload_bytes_per_frame is not None]
    return MethodResult(kind=ms[0].kind, strength=ms[0].strength,
                        person_ap=float(np.average([m.person_ap for m in ms], weights=weights)),
                        relative_ap=float(np.average([m.relative_ap for m in ms], weights=weights)),
                        similarity_to_original=similarity, identity=identity, attributes=attributes,
                        relative_ap_by_detector=averaged([m.relative_ap_by_detector for m in ms]),
                        utility=averaged([m.utility for m in ms]), codec=ms[0].codec,
                        upload_bytes_per_frame=float(np.mean(sent)) if len(sent) == len(ms) else None)


def _columns(p: Predictions, keep: list[int]) -> Predictions:
    """Attribute predictions restricted to the attribute columns ``keep``."""
    return replace(p, truth=p.truth[:, keep], pred={n: [x[:, keep] for x in runs] for n, runs in p.pred.items()})


def pool_folds(reports: list[AuditReport], raws: list[dict], ap_frames: list[int], config: AuditConfig) -> AuditReport:
    """The folds' reports as one: every method measured in every fold, its crops pooled."""
    weights = np.asarray(ap_frames, float)
    names = [n for n in reports[0].methods if all(n in r.methods and n in raw for r, raw in zip(reports, raws))]
    methods = {n: _pooled_method(n, reports, raws, weights, config) for n in names}
    first = reports[0]
    identity_labels = {}
    for p, d in first.labels.identity.items():
        ds = [r.labels.identity[p] for r in reports]
        truth = pool([raw["original"][p] for raw in raws]).truth
        gaps = [x.min_train_to_test_gap_s for x in ds if x.min_train_to_test_gap_s is not None]
        identity_labels[p] = IdentityLabels(
            identities=sum(x.identities for x in ds), train_crops=sum(x.train_crops for x in ds),
            val_crops=sum(x.val_crops for x in ds), test_crops=sum(x.test_crops for x in ds),
            min_train_to_test_gap_s=min(gaps) if gaps else None,
            chance=IdentityChance.model_validate(identity_chance(truth)),
            splits=["test of each fold"], time_gap_s=d.time_gap_s, folds=len(reports))
    a = [r.labels.attributes for r in reports]
    common = [n for n in a[0].names if all(n in x.names for x in a)]
    attribute_labels = AttributeLabels(
        source=a[0].source, names=common,
        dropped_as_unbalanced=sorted({d for x in a for d in x.dropped_as_unbalanced}
                                     | ({n for x in a for n in x.names} - set(common))),
        train_crops=sum(x.train_crops for x in a), val_crops=sum(x.val_crops for x in a),
        test_crops=sum(x.test_crops for x in a), positive_rate=a[0].positive_rate)
    chance = Chance(identity={p: d.chance for p, d in identity_labels.items()},
                    attributes={k: float(np.mean([r.chance.attributes[k] for r in reports]))
                                for k in first.chance.attributes})
    primary = config.protocols[0]
    curves = {}
    for baseline, curve in first.curves.items():
        # fold 0's strengths (each fold calibrates its own), with the pooled figures where pooled
        points = []
        for point in curve.points:
            if point.method in methods:
                m = methods[point.method]
                w = m.identity[primary].worst_case
                points.append(point.model_copy(update={"relative_ap": m.relative_ap, "identity_worst_case": w.value,
                                                       "identity_interval": w.interval}))
        calibrated = curve.calibrated
        if calibrated is not None:
            calibrated = (calibrated.model_copy(update={"relative_ap": methods[calibrated.method].relative_ap})
                          if calibrated.method in methods else None)
        curves[baseline] = curve.model_copy(update={"points": points, "calibrated": calibrated})
    pooled = first.model_copy(update={
        "curves": curves, "comparison": {},  # the cheaper presets' rows are per fold: see each fold's report
        "methods": methods, "labels": Labels(identity=identity_labels, attributes=attribute_labels),
        "chance": chance, "person_ap_original": float(np.average([r.person_ap_original for r in reports],
                                                                   weights=weights)),
        "verdict": None, "config": {**config.to_dict(), "folds": len(reports)}})
    pooled.obfuscator_table = obfuscator_table(pooled)
    return pooled
