"""Attacker (e): classical features + linear model.

Features: HOG of the grey crop (skimage, 9 orientations, 8x8-pixel cells, 2x2 blocks) and
HSV colour histograms (8 hue x 3 saturation x 3 value bins) of the upper and lower halves,
standardised; classifier: scikit-learn LogisticRegression with balanced class weights
(one per attribute for the multi-label task).
"""

from __future__ import annotations

import numpy as np

from veil.adversaries.attackers.classical import SklearnAttacker
from veil.adversaries.attackers.features import hsv_histograms
from veil.adversaries.registry import ATTACKERS


def hog_features(crops: np.ndarray) -> np.ndarray:
    """HOG of each grey crop -> (N, D)."""
    from skimage.color import rgb2gray
    from skimage.feature import hog

    h = crops.shape[2]
    cell = max(4, min(8, h // 8))  # small crops still get a few cells
    grey = rgb2gray(crops.transpose(0, 2, 3, 1))
    return np.asarray([hog(g, orientations=9, pixels_per_cell=(cell, cell), cells_per_block=(2, 2),
                           feature_vector=True) for g in grey], np.float32)


class HogLinearAttacker(SklearnAttacker):
    name = "hog_linear"
    deterministic = True  # the seed changes nothing: the audit fits it once for all seeds

    def __init__(self, C: float = 0.1, max_iter: int = 300, **kwargs) -> None:
        super().__init__(**kwargs)
        self.C, self.max_iter = C, max_iter

    def _budget(self) -> dict:
        return {"model": "LogisticRegression", "C": self.C, "max_iter": self.max_iter,
                "features": "HOG + HSV 8x3x3 histograms of 2 stripes"}

    def features(self, x: np.ndarray) -> np.ndarray:
        return np.concatenate([hog_features(x), hsv_histograms(x, stripes=2)], 1)

    def model(self):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=self.max_iter,
                                                                  class_weight="balanced", random_state=self.seed))


@ATTACKERS.register("hog_linear")
def hog_linear(**kwargs) -> HogLinearAttacker:
    return HogLinearAttacker(**kwargs)
