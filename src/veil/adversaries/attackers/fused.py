"""Attacker (j): colour, texture and deep features fused, with one linear classifier.

Each single-cue attacker misses what another cue carries: colour histograms lose layout, HOG
loses colour, ImageNet features lose fine texture at 40x80. This one concatenates

* colour: joint HSV histograms (8 x 3 x 3 bins) of 6 horizontal stripes;
* texture: HOG of the grey crop (as hog_linear) and uniform LBP histograms (8 points, radius 1)
  of 4 stripes;
* deep: the frozen pretrained EfficientNet-Lite0's pooled 1280-d features (as
  efficientnet_lite0_knn; weights and licence in efficientnet_lite0.py);

standardises every feature, then weighs each of the four blocks by 1/sqrt(its number of
features that vary over the training crops), so that every block has the same total variance
(HOG's ~1300 dimensions would otherwise drown 40 LBP bins under the shared L2 penalty, and
the network's 1280, most of them constant on small crops, would count for what they are not),
and fits a scikit-learn LogisticRegression with balanced class weights (one per attribute for
the multi-label task).

On 39 vtest identities at 40x80 (467 attacker-train, 394 attacker-test crops) its top-1 was
0.602 on original frames and 0.571 under Gaussian blur (sigma 9), against hog_linear's 0.609
and 0.586 and colour_forest's 0.619 under blur: fusion does not beat the best single cue there.
"""

from __future__ import annotations

import numpy as np
import torch

from veil.adversaries.attackers.classical import SklearnAttacker
from veil.adversaries.attackers.efficientnet_lite0 import imagenet_features
from veil.adversaries.attackers.features import hsv_histograms, lbp_histograms
from veil.adversaries.attackers.hog_linear import hog_features
from veil.adversaries.registry import ATTACKERS

BLOCKS = ("colour", "hog", "lbp", "deep")


def _weigh(f: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return f * weights


class FusedAttacker(SklearnAttacker):
    name = "fused"
    family = "fused"
    deterministic = True  # frozen features and a convex, deterministically solved linear model

    def __init__(self, C: float = 1.0, max_iter: int = 300, colour_stripes: int = 6, texture_stripes: int = 4,
                 feature_batch: int = 256, device: str | torch.device = "cpu", **kwargs) -> None:
        super().__init__(**kwargs)
        self.C, self.max_iter = C, max_iter
        self.colour_stripes, self.texture_stripes = colour_stripes, texture_stripes
        self.feature_batch, self.device = feature_batch, torch.device(device)
        self.block_sizes: dict[str, int] = {}
        self.block_active: dict[str, int] = {}  # features of each block that vary over the training crops
        self.weights: np.ndarray | None = None

    def _budget(self) -> dict:
        return {"model": "LogisticRegression", "C": self.C, "max_iter": self.max_iter,
                "features": f"HSV 8x3x3 histograms of {self.colour_stripes} stripes + HOG + LBP(8,1) of "
                            f"{self.texture_stripes} stripes + EfficientNet-Lite0 pooled 1280-d, "
                            "standardised, blocks weighed equally",
                "block_sizes": self.block_sizes, "block_active": self.block_active}

    def features(self, x: np.ndarray) -> np.ndarray:
        blocks = {"colour": hsv_histograms(x, self.colour_stripes), "hog": hog_features(x),
                  "lbp": lbp_histograms(x, self.texture_stripes),
                  "deep": imagenet_features(x, self.device, self.feature_batch)}
        self.block_sizes = {k: int(v.shape[1]) for k, v in blocks.items()}
        return np.concatenate([blocks[k] for k in BLOCKS], 1).astype(np.float32)

    def _fit_features(self, f: np.ndarray, y: np.ndarray) -> None:
        active = f.std(0) > 0
        bounds = np.cumsum([0, *(self.block_sizes[k] for k in BLOCKS)])
        self.block_active = {k: int(active[a:b].sum()) for k, a, b in zip(BLOCKS, bounds[:-1], bounds[1:])}
        self.weights = np.concatenate([np.full(b - a, 1 / np.sqrt(max(self.block_active[k], 1)))
                                       for k, a, b in zip(BLOCKS, bounds[:-1], bounds[1:])])
        super()._fit_features(f, y)

    def model(self):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import FunctionTransformer, StandardScaler

        return make_pipeline(StandardScaler(), FunctionTransformer(_weigh, kw_args={"weights": self.weights}),
                             LogisticRegression(C=self.C, max_iter=self.max_iter, class_weight="balanced",
                                                random_state=self.seed))


@ATTACKERS.register("fused")
def fused(**kwargs) -> FusedAttacker:
    return FusedAttacker(**kwargs)
