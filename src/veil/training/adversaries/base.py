"""The interface every training adversary implements, and what the trainer hands it.

One training step of the trainer is:
    z = O(x)                                   (once)
    for each adversary: adversary.update(batch, z.detach())      its own step, O untouched
    L_O = a_obj * L_obj(z) + sum_k weight_k * adversary_k.o_term(batch, z)
    O steps on L_O                             (adversaries in eval mode, frozen)
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from torch import nn

from veil.detectors import Target
from veil.training.config import TrainConfig

if TYPE_CHECKING:
    from veil.data.dataset import FrameDataset


@dataclass
class Batch:
    """A training batch and where its pixels came from, so adversaries can place their own labels.

    ``frames``: positions in the training FrameDataset; ``offsets``: (x0, y0) of each random
    crop in the original frame; ``flipped``: whether each crop was then mirrored; ``clips``:
    for a temporal obfuscator, its input (B, T, 3, h, w), each clip ending with its frame in
    ``images`` (None for frame obfuscators, whose input is ``images``).
    """

    images: torch.Tensor
    targets: list[Target]
    frames: list[int]
    offsets: list[tuple[int, int]] = field(default_factory=list)
    flipped: list[bool] = field(default_factory=list)
    clips: torch.Tensor | None = None

    def to_crop_coordinates(self, i: int, boxes: torch.Tensor, min_visible: float = 0.4,
                            min_side: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Boxes of the ORIGINAL frame of image ``i`` in that image's coordinates (crop, then
        flip), and the mask of boxes with at least ``min_visible`` of their area still inside."""
        h, w = self.images.shape[-2:]
        x0, y0 = self.offsets[i] if self.offsets else (0, 0)
        boxes, keep = shift_and_clip(boxes, x0, y0, w, h, min_visible, min_side)
        if self.flipped and self.flipped[i]:
            boxes = torch.stack([w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0], boxes[:, 3]], dim=1)
        return boxes, keep


def shift_and_clip(boxes: torch.Tensor, x0: int, y0: int, w: int, h: int, min_visible: float,
                   min_side: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Move xyxy ``boxes`` into a ``w`` x ``h`` window at (x0, y0), clip them to it, and mark the
    ones that keep ``min_visible`` of their area and at least ``min_side`` pixels a side."""
    b = boxes - torch.tensor([x0, y0, x0, y0], dtype=boxes.dtype)
    clipped = torch.stack([b[:, 0].clamp(0, w), b[:, 1].clamp(0, h), b[:, 2].clamp(0, w), b[:, 3].clamp(0, h)], 1)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    inside = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    wide = (clipped[:, 2] - clipped[:, 0] >= min_side) & (clipped[:, 3] - clipped[:, 1] >= min_side)
    return clipped, (inside >= min_visible * area) & wide


@dataclass
class AdversaryContext:
    """What an adversary may use: the run's config, device, data, obfuscator and process group."""

    config: TrainConfig
    device: torch.device
    train_set: FrameDataset  # of the TRAIN split
    obfuscator: nn.Module  # the bare module (not the DDP wrapper)
    autocast: Callable[[], contextlib.AbstractContextManager]
    use_amp: bool = False
    rank: int = 0
    world_size: int = 1
    run_dir: Path | None = None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1 and dist.is_available() and dist.is_initialized()

    def wrap(self, module: nn.Module) -> nn.Module:
        """The module for its own update: DDP-wrapped under torchrun (gradients averaged), else itself."""
        if not self.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def mean_over_ranks(self, values: list[float]) -> list[float]:
        """Average per-rank numbers so every rank takes the same decision (restarts, skips)."""
        if not self.distributed or not values:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return (t / self.world_size).tolist()

    def optimizer(self, params) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, lr=self.config.lr, weight_decay=self.config.weight_decay)

    def scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device.type, enabled=self.use_amp and self.device.type == "cuda")


class TrainingAdversary(ABC):
    """A party that O trains against. Subclasses register with ``@TRAINING_ADVERSARIES.register``."""

    name: str = ""
    #: whether ``o_term`` reads O's output image (False: it penalises something inside O, as the
    #: rate term does its latent, so its gradient reaches O's weights but not its output)
    reads_output: bool = True

    def __init__(self, context: AdversaryContext, options: dict | None = None) -> None:  # noqa: ARG002
        self.ctx = context

    @abstractmethod
    def networks(self) -> dict[str, nn.Module]:
        """Its networks by name (moved to the device and put in train mode by the trainer)."""

    @abstractmethod
    def optimizers(self) -> list[torch.optim.Optimizer]:
        """Its optimizers (the trainer sets their learning rate every epoch)."""

    @abstractmethod
    def update(self, batch: Batch, z: torch.Tensor) -> dict[str, float]:
        """Its own training step on the obfuscated batch ``z`` (detached); returns log values."""

    @abstractmethod
    def o_term(self, batch: Batch, z: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The term it adds to L_O (O minimises weight * term), with gradients to ``z``; and log values.
        Its networks must not change here: eval mode, no gradients to their weights."""

    @abstractmethod
    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """Checkpoint tensors (keys unique to this adversary) and JSON-able state."""

    @abstractmethod
    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict, path: Path) -> None:
        """Restore what :meth:`state` returned."""

    def end_epoch(self, epoch: int) -> dict:  # noqa: ARG002
        """Extra log columns for the epoch that just ended."""
        return {}

    def deployable(self) -> dict[str, torch.Tensor]:
        """Tensors the deployable ``obfuscator`` checkpoint carries for evaluation (default none)."""
        return {}

    def unwrap(self) -> None:  # noqa: B027  (an optional hook: an adversary may wrap nothing)
        """Training is over: drop the DDP wrappers made by ``context.wrap`` (default none), so the
        process group can be left cleanly (``Trainer.close``)."""


def frozen(module: nn.Module) -> contextlib.AbstractContextManager:
    """Eval mode (BatchNorm statistics frozen) and no weight gradients inside; restores both after."""

    @contextlib.contextmanager
    def scope():
        was_training = module.training
        flags = [p.requires_grad for p in module.parameters()]
        module.eval()
        module.requires_grad_(False)
        try:
            yield module
        finally:
            for p, flag in zip(module.parameters(), flags):
                p.requires_grad_(flag)
            module.train(was_training)

    return scope()
