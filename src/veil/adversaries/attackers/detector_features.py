"""Attacker (i): the cloud operator's own detector, reused as a re-identification backbone.

Whoever runs the utility detector on Veil's output holds its weights anyway. This attacker
embeds each crop with that frozen detector's backbone (by default the YOLOv8s of
``DETECTORS.build("yolo")``): the crop runs through the backbone, and the feature maps of
the chosen stages are globally average-pooled over the crop, i.e. pooled at the person's box,
and concatenated. The default stages are the three the detector's own neck reads: P3/8, P4/16
and P5/32 (the C2f outputs of YOLOv8's layers 4, 6 and 8; 128 + 256 + 512 channels for the
"s" model). A linear head (logistic regression on standardised features, balanced class
weights) or a cosine k-nearest-neighbour vote classifies them. Nothing of the detector is trained.

On 39 vtest identities at 40x80 (467 attacker-train, 394 attacker-test crops, original frames)
top-1 was 0.566 with these stages, 0.551 with P4 + P5 only, 0.495 with SPPF alone, 0.536 with the
k-NN head; hog_linear scored 0.609 on the same crops.

It needs the optional ``yolo`` extra (ultralytics); the detector is built lazily, at the first
fit, so that listing or configuring attackers costs nothing.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from veil.adversaries.attackers.classical import SklearnAttacker
from veil.adversaries.registry import ATTACKERS
from veil.errors import VeilError

HEADS = ("linear", "knn")


def backbone_layers(detector) -> torch.nn.Sequential:
    """The chain of an Ultralytics model's layers up to its first multi-input layer (the backbone)."""
    if not hasattr(detector.model, "model"):
        raise VeilError(f"detector_features needs an Ultralytics YOLO detector, not {detector.name}")
    layers = []
    for layer in detector.model.model:
        if getattr(layer, "f", -1) != -1:  # a layer fed by an earlier one: the neck starts here
            break
        layers.append(layer)
    return torch.nn.Sequential(*layers)


@lru_cache(maxsize=2)
def _frozen_backbone(detector: str, weights: str | None, device: str) -> torch.nn.Sequential:
    """One frozen backbone per process and detector: every fit of an audit worker shares it (it is
    only ever run in inference mode, so sharing cannot change it)."""
    from veil.detectors import DETECTORS

    built = DETECTORS.build(detector, **({"weights": weights} if weights else {}))
    return backbone_layers(built).to(device).eval()


class DetectorFeaturesAttacker(SklearnAttacker):
    name = "detector_features"
    family = "frozen_features"
    deterministic = True  # frozen features; the head's solver is seeded and converges the same way

    def __init__(self, detector: str = "yolo", weights: str | None = None, layers: tuple[int, ...] = (4, 6, 8),
                 head: str = "linear", C: float = 0.05, max_iter: int = 300, k: int = 7, upscale: float = 1.0,
                 feature_batch: int = 128, device: str | torch.device = "cpu", **kwargs) -> None:
        super().__init__(**kwargs)
        if head not in HEADS:
            raise VeilError(f"unknown detector_features head {head!r} (known: {', '.join(HEADS)})")
        if not layers or min(layers) < 0:
            raise VeilError(f"layers must name backbone stages (0 and up), got {layers}")
        self.detector_name, self.weights, self.layers = detector, weights, tuple(int(i) for i in layers)
        self.head, self.C, self.max_iter, self.k, self.upscale = head, C, max_iter, k, upscale
        self.feature_batch, self.device = feature_batch, torch.device(device)
        if detector == "yolo":  # fail at construction, not hours into an audit, when the extra is missing
            try:
                import ultralytics  # noqa: F401
            except ImportError:
                raise VeilError("the detector_features attacker needs the YOLO extra: pip install 'veil[yolo]'") \
                    from None

    def _budget(self) -> dict:
        head = (f"LogisticRegression(C={self.C}, max_iter={self.max_iter})" if self.head == "linear"
                else f"{self.k}-NN cosine")
        return {"model": head, "detector": self.detector_name, "weights": self.weights,
                "features": f"frozen detector backbone, layers {list(self.layers)} average-pooled over the crop",
                "upscale": self.upscale}

    def backbone(self) -> torch.nn.Sequential:
        """The frozen detector's backbone up to the last chosen stage, built at first use."""
        backbone = _frozen_backbone(self.detector_name, self.weights, str(self.device))
        if max(self.layers) >= len(backbone):
            raise VeilError(f"layers {list(self.layers)} reach past the detector's {len(backbone)}-layer backbone")
        return backbone[: max(self.layers) + 1]

    @torch.inference_mode()
    def features(self, x: np.ndarray) -> np.ndarray:
        """Concatenated average-pooled feature maps (N, D) of the chosen backbone stages."""
        net = self.backbone()
        out = []
        for start in range(0, len(x), self.feature_batch):
            xb = torch.from_numpy(x[start : start + self.feature_batch]).to(self.device).float().div_(255)
            if self.upscale != 1:
                xb = F.interpolate(xb, scale_factor=self.upscale, mode="bilinear", align_corners=False)
            # the detector's input convention (RGB in [0, 1]); a backbone alone takes any size, no padding
            pooled = []
            for i, layer in enumerate(net):
                xb = layer(xb)
                if i in self.layers:
                    pooled.append(xb.mean((-2, -1)))
            out.append(torch.cat(pooled, 1).cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)

    def model(self):
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if self.head == "knn":
            from sklearn.neighbors import KNeighborsClassifier

            knn = KNeighborsClassifier(n_neighbors=self.k, metric="cosine", weights="distance", algorithm="brute")
            return make_pipeline(StandardScaler(), knn)
        from sklearn.linear_model import LogisticRegression

        return make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=self.max_iter,
                                                                  class_weight="balanced", random_state=self.seed))

    def _fit(self, x: np.ndarray, y: np.ndarray, validation) -> None:
        if self.head == "knn" and len(x) < self.k:  # fewer crops than neighbours: use them all
            self.k = len(x)
        super()._fit(x, y, validation)


@ATTACKERS.register("detector_features")
def detector_features(**kwargs) -> DetectorFeaturesAttacker:
    return DetectorFeaturesAttacker(**kwargs)
