"""The budget adversary's options (``--adversary-options`` / a preset's ``budget`` block), validated."""

from __future__ import annotations

from dataclasses import dataclass, fields

from veil.errors import VeilError
from veil.training.adversaries.budget.models import ARCHITECTURES


@dataclass
class BudgetOptions:
    models: int = 3  # M
    architectures: tuple[str, ...] = ("mobilenet_v2", "shufflenet_v2", "mnasnet")  # cycled over the M models
    width: float = 0.5  # model i has width * (1 + 0.5 * (i // len(architectures)))
    crop_height: int = 96
    crop_width: int = 48
    warmup_steps: int = 0  # O trains without this adversary first, so the budget models start on a readable O(X)
    restart_every: int = 100  # steps between restarts (round robin); 0: never
    plateau_steps: int = 0  # restart a model whose mean CE over this many steps stopped falling; 0: off
    plateau_tolerance: float = 0.01  # "stopped falling": by less than this fraction
    accuracy_threshold: float = 0.7  # frozen-O training stops at this held-back accuracy...
    patience: int = 2  # ...or after this many passes without a rise...
    max_passes: int = 20  # ...or after this many passes over the crops
    restart_batch: int = 32  # crops per step of frozen-O training (per process)
    min_track: int = 8  # shorter ByteTrack tracks are not identities
    train_fraction: float = 0.6  # earliest share of each track trains the models; the rest is held back
    min_visible: float = 0.6  # a crop counts only if this share of its box is inside the random crop
    identities_csv: str | None = None  # frame,x1,y1,x2,y2,identity rows instead of ByteTrack
    heldout_every: int = 1  # epochs between held-back accuracy measurements for the log; 0: never

    @classmethod
    def from_dict(cls, data: dict | None) -> BudgetOptions:
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise VeilError(f"unknown budget option(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        if "architectures" in data:
            archs = data["architectures"]
            data["architectures"] = tuple(archs.split(",") if isinstance(archs, str) else archs)
            bad = [a for a in data["architectures"] if a not in ARCHITECTURES]
            if bad:
                raise VeilError(f"unknown budget architecture(s) {bad} (known: {', '.join(ARCHITECTURES)})")
        options = cls(**data)
        if options.models < 1:
            raise VeilError("budget.models must be at least 1")
        return options
