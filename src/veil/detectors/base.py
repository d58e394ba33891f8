"""The frozen-detector interface every adapter implements.

A detector takes RGB images in [0, 1] (B, 3, H, W), returns person boxes in pixel
coordinates of that input, and returns its own training loss against pseudo-label targets
with gradients flowing to the input image, never to its weights. A detector that cannot give a
loss (``trainable = False``, e.g. HOG) evaluates obfuscators but cannot train one: its ``loss``
raises a VeilError.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Detections:
    """Person detections of one image: xyxy boxes (N, 4), scores (N,), native class ids (N,)."""

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor

    def above(self, threshold: float) -> Detections:
        keep = self.scores >= threshold
        return Detections(self.boxes[keep], self.scores[keep], self.labels[keep])


@dataclass
class Target:
    """Pseudo-label target of one image: xyxy boxes (N, 4) and native class ids (N,)."""

    boxes: torch.Tensor
    labels: torch.Tensor


class FrozenDetector(nn.Module, ABC):
    """Base class: holds a frozen model; ``train()`` never unfreezes weights or BN statistics."""

    #: confidence at or above which a detection becomes a pseudo-label
    pseudo_label_threshold: float = 0.5
    #: whether ``loss`` exists (gradients to the input): an obfuscator can train against this detector
    trainable: bool = True

    def __init__(self, model: nn.Module, name: str, spec: dict | None = None) -> None:
        super().__init__()
        self.model = model
        self.name = name
        #: how to build this detector again: registry name and weights
        self.spec = spec or {"name": name, "weights": None}
        self.model.requires_grad_(False)
        self.model.eval()

    def train(self, mode: bool = True) -> FrozenDetector:  # noqa: ARG002
        # Obfuscator training calls .train() on everything; the detector must stay frozen.
        return super().train(False)

    @abstractmethod
    def detect(self, images: torch.Tensor, conf: float = 0.001) -> list[Detections]:
        """Person detections at or above ``conf`` for each image."""

    @abstractmethod
    def loss(self, images: torch.Tensor, targets: list[Target]) -> torch.Tensor:
        """The detector's own training loss (scalar, mean over the batch); a VeilError where
        ``trainable`` is False."""
