"""torchvision detection models (COCO, person = label 1) as frozen Veil detectors.

Weights come from a local file (safetensors, or a state dict read with
``torch.load(weights_only=True)``), from torchvision's own cache (``weights="default"``,
which downloads only if the cache is empty), or are random (``weights=None``, for tests).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import torch
from torch import nn
from torchvision.models import detection as tvd

from veil.detectors.base import Detections, FrozenDetector, Target
from veil.detectors.registry import DETECTORS
from veil.errors import VeilError

COCO_PERSON = 1


@contextlib.contextmanager
def _loss_mode(model: nn.Module) -> Iterator[None]:
    """torchvision returns losses only in training mode; keep BN statistics frozen anyway."""
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
    try:
        yield
    finally:
        model.eval()


def _load_state(model: nn.Module, weights: str) -> None:
    path = Path(weights)
    if not path.is_file():
        raise VeilError(f"detector weights not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (any unreadable file is the same user error)
        raise VeilError(f"cannot read detector weights {path}: {exc}") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise VeilError(
            f"detector weights {path} do not fit this architecture "
            f"({len(missing)} missing, {len(unexpected)} unexpected keys)"
        )


class TorchvisionDetector(FrozenDetector):
    """Adapter for torchvision's Faster R-CNN, RetinaNet and SSD families."""

    pseudo_label_threshold = 0.9  # de-coninck-2024 keeps Faster R-CNN boxes at >= 0.9

    def detect(self, images: torch.Tensor, conf: float = 0.001) -> list[Detections]:
        with torch.no_grad():
            outputs = self.model(list(images))
        result = []
        for out in outputs:
            keep = (out["labels"] == COCO_PERSON) & (out["scores"] >= conf)
            result.append(Detections(out["boxes"][keep], out["scores"][keep], out["labels"][keep]))
        return result

    def loss(self, images: torch.Tensor, targets: list[Target]) -> torch.Tensor:
        tv_targets = [
            {
                "boxes": t.boxes.to(images.device, torch.float32),
                "labels": torch.full((len(t.boxes),), COCO_PERSON, dtype=torch.int64, device=images.device),
            }
            for t in targets
        ]
        with _loss_mode(self.model):
            losses = self.model(list(images), tv_targets)
        return sum(losses.values())


def _build(builder, name: str, weights: str | None = "default", **kwargs) -> TorchvisionDetector:
    if weights == "default":
        # Resolves from torchvision's cache (TORCH_HOME); downloads only if it is empty.
        model = builder(weights="DEFAULT", **kwargs)
    else:
        model = builder(weights=None, weights_backbone=None, num_classes=91, **kwargs)
        if weights is not None:
            _load_state(model, weights)
    return TorchvisionDetector(model, name, {"name": name, "weights": weights})


_BUILDERS = {
    "fasterrcnn_resnet50_fpn": tvd.fasterrcnn_resnet50_fpn,
    "fasterrcnn_resnet50_fpn_v2": tvd.fasterrcnn_resnet50_fpn_v2,
    "fasterrcnn_mobilenet_v3_large_fpn": tvd.fasterrcnn_mobilenet_v3_large_fpn,
    "fasterrcnn_mobilenet_v3_large_320_fpn": tvd.fasterrcnn_mobilenet_v3_large_320_fpn,
    "retinanet_resnet50_fpn": tvd.retinanet_resnet50_fpn,
    "ssdlite320_mobilenet_v3_large": tvd.ssdlite320_mobilenet_v3_large,
}

for _name, _builder in _BUILDERS.items():
    DETECTORS.register(_name)(partial(_build, _builder, _name))
