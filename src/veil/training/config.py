"""Training configuration. Defaults follow de-coninck-2024 section 4."""

from __future__ import annotations

from dataclasses import InitVar, asdict, dataclass, field, fields

from veil.errors import VeilError

#: settings a resumed run may change: how long it runs and how often it validates
RESUMABLE_CHANGES = ("epochs", "val_every", "amp", "snapshot_every")
#: the run's subfolder of kept snapshots (RUN/snapshots/epochNNN.safetensors); the audit names them by it
SNAPSHOTS = "snapshots"


@dataclass
class TrainConfig:
    obfuscator: str = "mobilenet_ae"
    # keyword arguments of the obfuscator's factory (``OBFUSCATORS.build(obfuscator, **args)``)
    obfuscator_args: dict = field(default_factory=dict)
    # the one argument configs had before obfuscator_args: accepted, and folded into them
    obfuscator_width: InitVar[float | None] = None
    deobfuscator: str = "conv_ae"
    deobfuscator_width: float = 1.0
    detector: str = "yolo"
    detector_weights: str | None = None
    detector_person_classes: list[int] | None = None  # None: the detector's own rule
    epochs: int = 30
    lr: float = 1e-3
    lr_drop: float = 0.5  # share of the epochs before lr is divided by 10 (the paper: halfway)
    weight_decay: float = 1e-6
    a_obj: float = 1.0
    # Training adversaries and the weight of the term each adds to L_O (de-coninck-2024's
    # reconstruction adversary D with a_rec = 1 by default); see veil.training.adversaries.
    adversaries: dict[str, float] = field(default_factory=lambda: {"reconstruction": 1.0})
    adversary_options: dict[str, dict] = field(default_factory=dict)  # per adversary name
    batch_size: int = 4  # per process; under torchrun the global batch is this times the world size
    crop: int | None = None  # square random crops at full scale; None trains on whole frames
    steps_per_epoch: int | None = None  # None: one pass over the training frames
    val_every: int = 1  # epochs between validation AP measurements (0: never)
    snapshot_every: int = 0  # epochs between kept snapshots/epochNNN.safetensors, to audit training (0: none)
    seed: int = 0
    amp: str = "auto"  # auto (CUDA only), on, off

    def __post_init__(self, obfuscator_width: float | None) -> None:
        if obfuscator_width is not None and obfuscator_width != 1.0 and "width" not in self.obfuscator_args:
            self.obfuscator_args = {**self.obfuscator_args, "width": obfuscator_width}
        if not 0.0 <= self.lr_drop <= 1.0:
            raise VeilError(f"lr_drop is a share of the epochs, in [0, 1]; got {self.lr_drop}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "obfuscator_width" in data:  # checkpoints before obfuscator_args
            values["obfuscator_width"] = data["obfuscator_width"]
        if "adversaries" not in data and "a_rec" in data:  # checkpoints before adversaries were pluggable
            values["adversaries"] = {"reconstruction": float(data["a_rec"])}
        return cls(**values)

    def differences(self, other: TrainConfig) -> list[str]:
        """``name: saved -> now`` for every setting that a resumed run may not change."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{k} {mine[k]!r} -> {theirs[k]!r}" for k in mine
                if k not in RESUMABLE_CHANGES and mine[k] != theirs[k]]


def parse_adversaries(specs: list[str]) -> dict[str, float]:
    """``["reconstruction:1", "budget:2"]`` -> ``{"reconstruction": 1.0, "budget": 2.0}`` (weight 1 if omitted)."""
    out: dict[str, float] = {}
    for spec in specs:
        name, _, weight = spec.partition(":")
        try:
            out[name.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise VeilError(f"--adversary must look like NAME or NAME:WEIGHT, got {spec!r}") from None
    return out


def parse_value(text: str):
    """A command-line value: JSON when it parses (numbers, booleans, lists), else the text itself."""
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_options(specs: list[str]) -> dict[str, dict]:
    """``["budget.models=3"]`` -> ``{"budget": {"models": 3}}``; values are read as JSON when they parse."""
    out: dict[str, dict] = {}
    for spec in specs:
        key, eq, value = spec.partition("=")
        adversary, dot, option = key.partition(".")
        if not (eq and dot and adversary and option):
            raise VeilError(f"--adversary-option must look like ADVERSARY.OPTION=VALUE, got {spec!r}")
        out.setdefault(adversary.strip(), {})[option.strip()] = parse_value(value)
    return out


def parse_arguments(specs: list[str]) -> dict:
    """``["width=0.5", "k=2"]`` -> ``{"width": 0.5, "k": 2}`` (--obfuscator-arg); values as in parse_options."""
    out: dict = {}
    for spec in specs:
        key, eq, value = spec.partition("=")
        if not (eq and key.strip()):
            raise VeilError(f"--obfuscator-arg must look like KEY=VALUE, got {spec!r}")
        out[key.strip()] = parse_value(value)
    return out
