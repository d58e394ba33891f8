"""Training configuration. Defaults follow de-coninck-2024 section 4."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass
class TrainConfig:
    obfuscator: str = "mobilenet_ae"
    obfuscator_width: float = 1.0
    deobfuscator: str = "conv_ae"
    deobfuscator_width: float = 1.0
    detector: str = "yolo"
    detector_weights: str | None = None
    epochs: int = 30
    lr: float = 1e-3  # divided by 10 halfway, as in the paper
    weight_decay: float = 1e-6
    a_obj: float = 1.0
    a_rec: float = 1.0
    batch_size: int = 4
    crop: int | None = None  # square random crops at full scale; None trains on whole frames
    steps_per_epoch: int | None = None  # None: one pass over the training frames
    val_every: int = 1  # epochs between validation AP measurements (0: never)
    seed: int = 0
    amp: str = "auto"  # auto (CUDA only), on, off

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
