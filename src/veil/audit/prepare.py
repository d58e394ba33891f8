"""Preparing an audit: load the frames, label identities and attributes on the ORIGINAL frames,
and measure the frozen detector's AP on them. ``Audit`` is what every method is then measured
against (``veil.audit.measure``)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from veil.adversaries.unet import reconstruction_quality
from veil.audit.attacks import Predictions, attack
from veil.audit.config import AuditConfig
from veil.audit.fit_cache import slug
from veil.audit.frames import AuditFrames, FrameView, Transform, evenly, transform_frames
from veil.audit.geometry import attribute_predictions, box_predictions
from veil.audit.labels import AttributeTask, IdentityTask, attribute_task
from veil.audit.protocols import PROTOCOLS
from veil.audit.report import Kind, MethodResult
from veil.data.codec import round_trip
from veil.detectors import Detections, FrozenDetector
from veil.detectors.fingerprint import fingerprint
from veil.errors import VeilError
from veil.evaluation.ap import average_precision
from veil.evaluation.utility import detection_ap
from veil.io import read_json


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


@dataclass(frozen=True)
class TransferReference:
    """The detectors' view of the original frames, shared by every method's transfer figures."""

    own: list[Detections]  # the audit's detector on the whole test split at the ranking confidence
    ranked: dict[str, list[Detections]]  # per detector, on the AP frames at the ranking confidence
    counted: list[Detections]  # the audit's detector on the AP frames at its pseudo-label threshold
    tracked: list[Detections]  # the same on the whole test split, in time order
    faces: list[np.ndarray]  # CenterFace's faces on the AP frames


@dataclass
class Audit:
    """What every method is measured against: frames, labels, the detector and its AP frames."""

    config: AuditConfig
    frames: AuditFrames
    identity: dict[str, IdentityTask]
    attributes: AttributeTask
    detector: FrozenDetector
    ap_positions: torch.Tensor  # positions of the AP frames in the frame table
    ap_view: FrameView  # those frames (original images, pseudo-labels), cut once
    same_detector: bool  # the pseudo-labels are this detector's boxes: detect-then-anonymise may reuse them
    clock: Clock
    ap_original: float = float("nan")
    pool: Executor | None = None  # where attacker fits run (veil.audit.attacks.attack_pool)
    #: a cross-fitted audit keeps every method's raw predictions (name -> task -> Predictions) to pool
    #: them over folds, and caches each attacker fit under ``cache`` so a stopped run resumes
    raw: dict[str, dict[str, Predictions]] | None = None
    cache: Path | None = None
    #: with ``config.transfer``: every detector utility is measured under, by name (the audit's own first)
    detectors: dict[str, FrozenDetector] = field(default_factory=dict)
    _reference: TransferReference | None = None
    _boxes: dict[str, Predictions] | None = None

    def boxes(self) -> dict[str, Predictions]:
        """The boxes-only attack (veil.audit.geometry), made once: on every identity protocol, and on the
        attributes under the key "attributes" (the attribute floor), as a method's attacks are keyed."""
        if self._boxes is None:
            height, width = self.frames.view.images.shape[-2:]
            size = (int(width), int(height))
            self._boxes = {p: box_predictions(task, size, self.config) for p, task in self.identity.items()}
            if self.attributes is not None:
                self._boxes["attributes"] = attribute_predictions(self.attributes, size, self.config)
        return self._boxes

    @property
    def device(self) -> torch.device:
        return torch.device(self.config.device)

    def transform(self, transform: Transform | None) -> tuple[torch.Tensor, float | None]:
        """The frame table after ``transform`` and, with ``config.codec``, after the edge's codec as the
        cloud decodes it; and the bytes one frame costs to upload (None without a codec)."""
        with self.clock.stage("transform frames"):
            return self.upload(transform_frames(transform, self.frames.view, device=self.device))

    def upload(self, frames: torch.Tensor) -> tuple[torch.Tensor, float | None]:
        """``frames`` as the cloud receives them, and their mean encoded bytes (None without a codec)."""
        if self.config.codec is None:
            return frames, None
        return round_trip(frames, self.config.codec)

    def person_ap(self, ap_frames: torch.Tensor) -> float:
        with self.clock.stage("utility (person AP)"):
            return detection_ap(self.detector, self.ap_view.with_images(ap_frames), None, device=self.device)

    def person_ap_of(self, found: list[Detections]) -> float:
        """Person AP of detections already made on the AP frames, against their pseudo-labels."""
        return average_precision([(d.boxes, d.scores) for d in found], [t.boxes for t in self.ap_view.targets])

    def relative_ap(self, transform: Transform) -> float:
        """Relative person AP under ``transform``; transforms the AP frames only (cheap)."""
        with self.clock.stage("transform frames"):
            frames, _ = self.upload(transform_frames(transform, self.ap_view, device=self.device))
        return self.person_ap(frames) / self.ap_original

    def own_detections(self, frames: torch.Tensor) -> list[Detections]:
        """The audit's detector on the test split of the frame table ``frames`` (time order), at the
        ranking confidence. The AP frames are among them, and the detector contract makes a cut at a
        higher confidence the same as detecting at it, so this one pass serves person AP, the people
        count, the tracks and the detector's own transfer AP (each was a pass of its own)."""
        from veil.evaluation.transfer import RANKING_CONF, detect_all

        with self.clock.stage("utility (person AP)"):
            return detect_all(self.detector, frames[self.test_positions], RANKING_CONF)

    @cached_property
    def ap_in_test(self) -> list[int]:
        """Where each AP frame sits in the test split (both are fixed when the audit is prepared)."""
        index = {int(p): i for i, p in enumerate(self.test_positions)}
        return [index[int(p)] for p in self.ap_positions]

    def evaluate(self, kind: Kind, frames: torch.Tensor, strength: float | None = None, attributes: bool = True,
                 config: AuditConfig | None = None, name: str = "", transfer: bool = True,
                 upload_bytes: float | None = None) -> MethodResult:
        """Utility, similarity and the attacks on one method's transformed frame table. ``transfer``:
        also the utility under every detector (with ``config.transfer``; never for a reconstruction,
        which is an attack, and not for a sweep curve's far end, a point of the curve).
        ``upload_bytes``: what one of these frames cost through the codec (from ``transform``)."""
        config = config or self.config
        ap_frames = frames[self.ap_positions]
        measured = config.transfer and transfer and kind != "reconstruction"
        found = None
        if measured:  # the reference (the original frames) reads the transfer reference's pass, made once
            found = self.transfer_reference().own if kind == "reference" else self.own_detections(frames)
        if kind == "reference":
            ap = self.ap_original
        elif found is not None:
            ap = self.person_ap_of([found[i] for i in self.ap_in_test])
        else:
            ap = self.person_ap(ap_frames)
        with self.clock.stage("similarity"):
            similarity = reconstruction_quality(ap_frames, self.ap_view.images)
        with self.clock.stage("attacks"):
            cache = self.cache / slug(name) if self.cache is not None and name else None
            attacked = attack(frames, self.identity, self.attributes if attributes else None, config, self.pool,
                              cache, self.boxes() if config.fuse_boxes else None)
        if self.raw is not None and name:
            self.raw[name] = attacked.raw
        by_detector, utility = self.transfer(frames, found) if found is not None else ({}, {})
        return MethodResult(kind=kind, strength=strength, person_ap=ap, relative_ap=ap / self.ap_original,
                            similarity_to_original=similarity, identity=attacked.identity,
                            attributes=attacked.attributes, relative_ap_by_detector=by_detector, utility=utility,
                            codec=config.codec if upload_bytes is not None else None,
                            upload_bytes_per_frame=upload_bytes)

    def transfer(self, frames: torch.Tensor, found: list[Detections]) -> tuple[dict[str, float], dict]:
        """Utility that transfers, on one method's frames: relative AP under every detector (each
        with its own pseudo-labels on the originals, on the AP frames), the people-count error and
        CenterFace's face leak on the AP frames, and ByteTrack's agreement over the test split.
        ``found``: the audit's detector on these frames' test split (``own_detections``)."""
        from veil.evaluation.faces import face_leak
        from veil.evaluation.tracking import track_agreement
        from veil.evaluation.transfer import count_error, relative_ap_by_detector

        ref = self.transfer_reference()  # outside the stage: its own pass is clocked as person AP
        with self.clock.stage("utility across detectors"):
            ap_frames = frames[self.ap_positions]
            cut = self.detector.pseudo_label_threshold
            on_ap = [found[i] for i in self.ap_in_test]
            by_detector = relative_ap_by_detector(self.ap_view.images, ap_frames, self.detectors,
                                                  on_original=ref.ranked, on_transformed={self.own_name: on_ap})
            count = count_error(self.ap_view.images, ap_frames, self.detector, on_original=ref.counted,
                                on_transformed=[d.above(cut) for d in on_ap])
            tracks = {**track_agreement(ref.tracked, [d.above(cut) for d in found], self.fps), "threshold": cut}
            faces = face_leak(self.ap_view.images, ap_frames, on_original=ref.faces)
        utility = {"count_mae": count["mae"], "count_relative_error": count["relative_error"],
                   "idf1": tracks.get("idf1"), "hota": tracks.get("hota"), "mota": tracks.get("mota"),
                   "faces_original": faces["faces_original"], "faces_kept": faces["fraction_found_again"]}
        return by_detector, utility

    @property
    def own_name(self) -> str:
        """The audit's own detector's name among ``detectors``."""
        return next(n for n, d in self.detectors.items() if d is self.detector)

    def transfer_reference(self) -> TransferReference:
        """Every detector's detections on the ORIGINAL frames, made once per audit: each method's
        transfer figures compare against the same originals."""
        if self._reference is None:
            from veil.evaluation.faces import detect_faces
            from veil.evaluation.transfer import RANKING_CONF, detect_all

            originals = self.ap_view.images
            cut = self.detector.pseudo_label_threshold
            own = self.own_detections(self.frames.view.images)
            on_ap = [own[i] for i in self.ap_in_test]
            self._reference = TransferReference(
                own=own,
                ranked={n: on_ap if d is self.detector else detect_all(d, originals, RANKING_CONF)
                        for n, d in self.detectors.items()},
                counted=[d.above(cut) for d in on_ap],
                tracked=[d.above(cut) for d in own],
                faces=detect_faces(originals))
        return self._reference

    @property
    def test_positions(self) -> torch.Tensor:
        return torch.as_tensor(self.frames.positions["test"])

    @property
    def fps(self) -> float:
        return float(self.frames.view.manifest.get("fps", 5.0))


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
    if config.transfer:
        from veil.detectors import DETECTORS

        own = str((getattr(detector, "spec", None) or {}).get("name") or getattr(detector, "name", "detector"))
        audit.detectors = {own: detector,  # by registry name: "yolo", not "yolo:best.pt"
                           **{n: DETECTORS.build(n) for n in config.transfer_detectors}}
    audit.ap_original = audit.person_ap(audit.ap_view.images)
    if not audit.ap_original > 0:
        raise VeilError("the detector finds no pseudo-labelled person on the original test frames (AP 0)")
    for p, task in identity.items():
        d = task.description
        say(f"{p}: {d['identities']} identities, {d['train_crops']} train / {d['val_crops']} val / "
            f"{d['test_crops']} test crops")
    return audit
