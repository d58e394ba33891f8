"""The audit report as types: what ``veil audit`` measured, its verdicts, and how it is stored.

Every reader (the HTML page, the CLI, the demo, the experiments, the benches and the tests)
goes through these models, never through string keys of a nested dict, so a change to the
report's shape is a type error where it is read rather than a silent ``KeyError`` or ``None``.

``report.json`` carries ``format`` and ``version``; ``report.schema.json`` beside it is the JSON
Schema of this version. :func:`load_report` reads this version and the untyped version 2 that
came before it (the same shape without the fields added since), and refuses anything else with
one clear error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from veil.errors import VeilError
from veil.io import read_json, write_json

FORMAT = "veil-audit"
#: 2: the untyped nested dict (until 2026-12); 3: these models (typed, with a schema)
VERSION = 3
READABLE_VERSIONS = (2, 3)

Outcome = Literal["better", "worse", "not distinguishable"]
# "floor": the boxes-only attack (veil.audit.geometry), no frames at all; BOXES is its method name
Kind = Literal["reference", "obfuscator", "reconstruction", "baseline", "floor"]
BOXES = "boxes only"


class _Model(BaseModel):
    # Reports of version 2 carry a few keys these models dropped; ignore them rather than fail.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Paired(BaseModel):
    """A figure's bootstrap replicates, kept in memory for the paired verdict and never written:
    ``resample`` fingerprints the draws, so only figures from the same resamples are paired."""

    resample: str
    replicates: Any  # np.ndarray (B,)


class Figure(_Model):
    """One figure: the mean over seeds with its 95% cluster-bootstrap interval."""

    value: float
    interval: tuple[float, float]
    per_seed: list[float] = Field(default_factory=list)
    std: float = 0.0
    max: float | None = None
    #: for a worst case over attackers: the winning attacker of each seed
    attackers: list[str] | None = None
    _paired: Paired | None = PrivateAttr(default=None)

    @property
    def paired(self) -> Paired | None:
        return self._paired

    def with_replicates(self, resample: str, replicates: np.ndarray) -> Figure:
        self._paired = Paired(resample=resample, replicates=np.asarray(replicates, dtype=float))
        return self

    @property
    def width(self) -> float:
        return self.interval[1] - self.interval[0]


class AttackerResult(_Model):
    """One attacker's figures on one task: identity top-1 (and the reid figures), or attribute mA."""

    top1: Figure | None = None
    mA: Figure | None = None
    budget: dict[str, Any] = Field(default_factory=dict)
    instance_accuracy: float | None = None
    instance_precision: float | None = None
    instance_recall: float | None = None
    instance_f1: float | None = None
    #: identity only (version 3): figure name (see IDENTITY_FIGURES) -> figure
    figures: dict[str, Figure] = Field(default_factory=dict)

    @property
    def main(self) -> Figure:
        figure = self.top1 if self.top1 is not None else self.mA
        if figure is None:
            raise VeilError("an attacker result without top-1 or mA")
        return figure


#: The identity figures beside top-1 (issue 17), each a worst case over attackers, higher = leakier.
IDENTITY_FIGURES = {
    "top1": "top-1 over test crops (pooled)",
    "top1_per_identity": "top-1 averaged per identity (long tracks do not dominate)",
    "rank1": "rank-1 of the query-vs-gallery ranking (cosine on the attacker's scores)",
    "mAP": "mean average precision of that ranking",
    "auc": "verification ROC AUC of each query's same/different gallery pairs, averaged over queries",
    "video_top1": "top-1 after pooling the attacker's scores over each test track (video-level attack)",
}

#: Each identity figure's name in a sentence.
FIGURE_LABELS = {"top1": "top-1", "top1_per_identity": "top-1 per identity", "rank1": "rank-1", "mAP": "mAP",
                 "auc": "verification AUC", "video_top1": "video-level top-1"}


def figure_label(name: str) -> str:
    """An identity figure's name in a sentence ("auc" -> "verification AUC")."""
    return FIGURE_LABELS.get(name, name)


class TaskResult(_Model):
    """Every attacker on one task for one method, and the worst case over them (taken per seed)."""

    metric: Literal["top1", "mA"]
    per_attacker: dict[str, AttackerResult]
    worst_case: Figure
    winner: str
    test_crops: int
    groups: int
    #: identity (version 3): worst case over attackers of every figure in IDENTITY_FIGURES
    figures: dict[str, Figure] = Field(default_factory=dict)
    #: chance level of each figure in ``figures``
    chance: dict[str, float] = Field(default_factory=dict)
    #: attributes: the winner's balanced accuracy on each attribute, mean over seeds (chance 0.5 each)
    per_attribute: dict[str, float] = Field(default_factory=dict)

    def figure(self, name: str = "top1") -> Figure:
        """The worst case of ``name`` (top-1 is ``worst_case`` itself)."""
        if name in ("top1", "mA"):
            return self.worst_case
        if name not in self.figures:
            raise VeilError(f"this report has no {name!r} identity figure (it has: top1, {', '.join(self.figures)})")
        return self.figures[name]


class MethodResult(_Model):
    """One method (original frames, an obfuscator, a reconstruction or a baseline) measured."""

    kind: Kind
    strength: float | None = None
    person_ap: float
    relative_ap: float
    similarity_to_original: dict[str, float] = Field(default_factory=dict)
    identity: dict[str, TaskResult]
    attributes: TaskResult | None = None
    #: version 3, where measured: relative AP under each offline detector (pseudo-labels from each)
    relative_ap_by_detector: dict[str, float] = Field(default_factory=dict)
    #: version 3, where measured: people-count error, tracking agreement, face leak
    utility: dict[str, Any] = Field(default_factory=dict)
    #: with ``--codec``: the codec every figure above was measured after, and the mean bytes of one
    #: uploaded frame (the original's: what a camera without Veil would upload, never re-encoded for its figures)
    codec: str | None = None
    upload_bytes_per_frame: float | None = None


class IdentityChance(_Model):
    majority: float
    uniform: float


class IdentityLabels(_Model):
    """How one identity protocol labelled the footage."""

    identities: int
    train_crops: int
    val_crops: int
    test_crops: int
    min_train_to_test_gap_s: float | None = None
    chance: IdentityChance
    splits: list[str] = Field(default_factory=list)
    time_gap_s: float = 0.0
    folds: int = 1


class AttributeLabels(_Model):
    source: str
    names: list[str] = Field(default_factory=list)
    dropped_as_unbalanced: list[str] = Field(default_factory=list)
    train_crops: int
    val_crops: int
    test_crops: int
    positive_rate: dict[str, float] = Field(default_factory=dict)


class Labels(_Model):
    identity: dict[str, IdentityLabels]
    attributes: AttributeLabels


class Chance(_Model):
    identity: dict[str, IdentityChance]
    attributes: dict[str, float]


class Reconstruction(_Model):
    steps: int
    method: str
    test: dict[str, float]


class Cost(_Model):
    parameters: int
    macs: int
    mac_counter: str = ""
    frame_size: list[int] = Field(default_factory=list)
    latency_ms: float
    latency: dict[str, Any] = Field(default_factory=dict)


class ObfuscatorInfo(_Model):
    """What the report quotes about one audited obfuscator besides its figures."""

    method: str
    reconstruction: Reconstruction
    cost: Cost
    info: dict[str, Any] = Field(default_factory=dict)


class UtilityPoint(_Model):
    strength: float
    relative_ap: float


class CurvePoint(_Model):
    strength: float
    relative_ap: float
    method: str
    identity_worst_case: float
    identity_interval: tuple[float, float]


class Calibrated(_Model):
    strength: float
    method: str
    relative_ap: float
    target_relative_ap: float
    matched: bool


class Curve(_Model):
    """A baseline traced over its strengths and calibrated to the first obfuscator's utility."""

    stronger: str
    none_strength: float
    target_relative_ap: float | None = None
    utility: list[UtilityPoint] = Field(default_factory=list)
    points: list[CurvePoint] = Field(default_factory=list)
    calibrated: Calibrated | None = None


class PresetRow(_Model):
    """A cheaper preset's attackers re-run on one method: the stronger preset must find as much."""

    worst_case: Figure
    this_preset: float
    at_least_as_high: bool
    this_preset_is: str | None = None


class PresetComparison(_Model):
    attackers: list[str]
    methods: dict[str, dict[str, PresetRow]]  # method -> protocol or "attributes" -> row


class Difference(_Model):
    """A paired difference A - B with its 95% interval, and the smallest difference this audit
    could detect at its size (two-sided alpha 0.05, 80% power, from the paired bootstrap's SE)."""

    value: float
    interval: tuple[float, float]
    detectable: float | None = None


class BaselineComparison(_Model):
    identity: float
    interval: tuple[float, float]
    relative_ap: float
    obfuscator_is: Outcome
    difference: Difference | None = None


class ProtocolVerdict(_Model):
    """One obfuscator on one identity protocol (and figure) against chance, the original and baselines."""

    figure: str = "top1"
    value: float
    interval: tuple[float, float]
    vs_chance: str
    vs_original: Outcome
    original_difference: Difference | None = None
    #: against the boxes-only floor (veil.audit.geometry): "worse" = more identity than the boxes alone give
    vs_boxes: Outcome | None = None
    boxes_difference: Difference | None = None
    baselines: dict[str, BaselineComparison] = Field(default_factory=dict)
    better_than_every_baseline: bool = False
    worse_than_any_baseline: bool = False


class AttributeVerdict(_Model):
    value: float
    interval: tuple[float, float]
    vs_original: Outcome
    baselines: dict[str, Outcome] = Field(default_factory=dict)
    differences: dict[str, Difference | None] = Field(default_factory=dict)
    #: against the attribute floor (the boxes alone): "worse" = more attributes than the boxes alone give
    vs_boxes: Outcome | None = None
    boxes_difference: Difference | None = None


class ObfuscatorVerdict(_Model):
    relative_ap: float
    protocols: dict[str, ProtocolVerdict]
    attributes: AttributeVerdict | None = None


class ProtocolSummary(_Model):
    """The verdict table's row for one protocol: the original against chance, and the first
    obfuscator's figures where there is one."""

    chance: float
    original: float
    original_interval: tuple[float, float]
    original_vs_chance: str
    #: the boxes-only floor, and whether the original frames identify people beyond it ("worse")
    boxes: float | None = None
    boxes_interval: tuple[float, float] | None = None
    original_vs_boxes: Outcome | None = None
    original_boxes_difference: Difference | None = None
    obfuscator: ProtocolVerdict | None = None


class AttributeSummary(_Model):
    original_mA: float
    obfuscator: AttributeVerdict
    #: the attribute floor: mA from the detector's boxes alone (veil.audit.geometry), where measured
    boxes_mA: float | None = None
    boxes_interval: tuple[float, float] | None = None


class PairRow(_Model):
    a: str
    b: str
    relative_ap_a_minus_b: float
    identity: dict[str, Outcome]
    identity_difference: dict[str, Difference | None] = Field(default_factory=dict)
    attributes: Outcome | None = None
    attributes_difference: Difference | None = None


class PairsSummary(_Model):
    comparisons: int
    distinguishable: int
    expected_by_chance: float


class Verdict(_Model):
    """Per protocol the original against chance; the FIRST obfuscator (the one baselines are
    calibrated to) against chance, the original and every baseline; the obfuscators pairwise;
    and the plain-language summary that opens the report."""

    protocols: dict[str, ProtocolSummary]
    attributes: AttributeSummary | None = None
    obfuscator: str | None = None
    obfuscator_relative_ap: float | None = None
    every_baseline_matched: bool = False
    headline_figure: str = "top1"
    obfuscators: dict[str, ObfuscatorVerdict] = Field(default_factory=dict)
    pairs: list[PairRow] = Field(default_factory=list)
    pairs_summary: PairsSummary | None = None
    summary: list[str] = Field(default_factory=list)


class ObfuscatorRow(_Model):
    """One row of the obfuscators-compared table."""

    method: str
    relative_ap: float
    identity: dict[str, Figure]
    attributes_mA: Figure | None = None
    reconstruction: dict[str, float]
    parameters: int
    macs: int
    latency_ms: float
    obfuscator: str | None = None
    obfuscator_args: dict[str, Any] | None = None
    adversaries: dict[str, Any] | None = None
    checkpoint: str | None = None
    epoch: int | None = None


class CrossFit(_Model):
    """How a cross-fitted audit was run: the figure measures a training recipe, not one checkpoint."""

    folds: int
    gap_s: float
    recipe: dict[str, Any]
    fold_ranges_s: list[tuple[float, float]]
    identities: dict[str, int]  # protocol -> pooled identities
    test_crops: dict[str, int]  # protocol -> pooled test crops
    note: str = ("Each audited frame was transformed by an obfuscator trained on the other folds only; the figure "
                 "measures the training recipe (preset, objective, seed), not one checkpoint.")


class AuditReport(_Model):
    """Everything one ``veil audit`` measured."""

    format: Literal["veil-audit"] = "veil-audit"
    version: int = VERSION
    veil_version: str
    dataset: str
    preset: str
    config: dict[str, Any]
    sweep: bool = False
    protocols: list[str]
    labels: Labels
    attackers: list[str]
    chance: Chance
    person_ap_original: float
    same_detector: bool = False
    methods: dict[str, MethodResult]
    reconstruction: Reconstruction | None = None
    obfuscators: dict[str, ObfuscatorInfo] = Field(default_factory=dict)
    sweep_target: str | None = None
    baselines: dict[str, dict[str, Any]] = Field(default_factory=dict)
    curves: dict[str, Curve] = Field(default_factory=dict)
    comparison: dict[str, PresetComparison] = Field(default_factory=dict)
    obfuscator_table: list[ObfuscatorRow] = Field(default_factory=list)
    verdict: Verdict | None = None
    cross_fit: CrossFit | None = None
    detectors: list[str] = Field(default_factory=list)  # the detectors of relative_ap_by_detector
    stage_seconds: dict[str, float] = Field(default_factory=dict)

    # --- reading -------------------------------------------------------------------------
    def identity(self, method: str, protocol: str, figure: str = "top1") -> Figure:
        """The worst-case identity figure of ``method`` under ``protocol``."""
        return self.method(method).identity[protocol].figure(figure)

    def attributes(self, method: str) -> Figure | None:
        """The worst-case attribute mA of ``method``, where measured."""
        m = self.method(method)
        return m.attributes.worst_case if m.attributes is not None else None

    def method(self, name: str) -> MethodResult:
        if name not in self.methods:
            raise VeilError(f"the report has no method {name!r} (it has: {', '.join(self.methods)})")
        return self.methods[name]

    def matched(self, baseline: str) -> str:
        """The method name of ``baseline`` as compared: its calibrated point when swept."""
        curve = self.curves.get(baseline)
        return curve.calibrated.method if curve is not None and curve.calibrated is not None else baseline

    def identity_chance(self, protocol: str, figure: str = "top1") -> float:
        """Chance level of an identity figure (top-1: always guessing the majority identity)."""
        if figure == "top1":
            return self.labels.identity[protocol].chance.majority
        return self.methods["original"].identity[protocol].chance.get(figure, float("nan"))

    # --- writing -------------------------------------------------------------------------
    def to_json(self) -> dict:
        return self.model_dump(mode="json")

    def write(self, out_dir: str | Path) -> Path:
        """``report.json`` and its ``report.schema.json``, each written atomically."""
        out_dir = Path(out_dir)
        write_json(out_dir / "report.schema.json", schema())
        path = out_dir / "report.json"
        write_json(path, self.to_json())
        return path


def schema() -> dict:
    """The JSON Schema of this version's report."""
    return AuditReport.model_json_schema()


def parse_report(data: dict, source: str = "report") -> AuditReport:
    """A report from its JSON form; VeilError for anything this version cannot read."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise VeilError(f"{source} is not a veil audit report (no format {FORMAT!r})")
    version = data.get("version", 2)  # version 2 wrote no version field
    if version not in READABLE_VERSIONS:
        raise VeilError(f"{source} is a version {version} audit report; this veil reads versions "
                        f"{', '.join(map(str, READABLE_VERSIONS))}: re-run the audit")
    data = {**data, "version": version}
    if version == 2:
        # Version 2's verdict had another shape: its figures are read as they are and its verdict is
        # left out (``veil.audit.verdict.verdict(report)`` reads one again from the figures, by their
        # intervals, since the paired replicates were never stored).
        data.pop("verdict", None)
    try:
        report = AuditReport.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise VeilError(f"{source} is a version {version} audit report this veil cannot read "
                        f"({where}: {first['msg']}): re-run the audit") from None
    return report


def load_report(path: str | Path) -> AuditReport:
    """Read ``report.json`` (or the ``report.json`` in a folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    try:
        data = read_json(path)
    except json.JSONDecodeError as exc:
        raise VeilError(f"{path} is not JSON ({exc.msg} at line {exc.lineno})") from None
    return parse_report(data, str(path))
