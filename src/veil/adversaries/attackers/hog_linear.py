"""Attacker (e): classical features + linear model.

Features: HOG of the grey crop (skimage, 9 orientations, 8x8-pixel cells, 2x2 blocks) and
HSV colour histograms (8 hue x 3 saturation x 3 value bins) of the upper and lower halves,
standardised; classifier: scikit-learn LogisticRegression with balanced class weights
(one per attribute for the multi-label task).
"""

from __future__ import annotations

import warnings

import numpy as np

from veil.adversaries.attackers.base import Attacker
from veil.adversaries.registry import ATTACKERS

HSV_BINS = (8, 3, 3)


def colour_histogram(hsv: np.ndarray) -> np.ndarray:
    """Normalised joint HSV histogram of an (h, w, 3) HSV image in [0, 1]."""
    hist, _ = np.histogramdd(hsv.reshape(-1, 3), bins=HSV_BINS, range=((0, 1),) * 3)
    return (hist / max(hist.sum(), 1)).ravel()


def features(crops: np.ndarray) -> np.ndarray:
    """HOG + upper/lower colour histograms of uint8 (N, 3, h, w) crops -> (N, D)."""
    from skimage.color import rgb2gray, rgb2hsv  # the audit extra: imported only when used
    from skimage.feature import hog

    out = []
    for crop in crops:
        rgb = crop.transpose(1, 2, 0)
        h = rgb.shape[0]
        cell = max(4, min(8, h // 8))  # small crops still get a few cells
        hog_f = hog(rgb2gray(rgb), orientations=9, pixels_per_cell=(cell, cell), cells_per_block=(2, 2),
                    feature_vector=True)
        hsv = rgb2hsv(rgb)
        out.append(np.concatenate([hog_f, colour_histogram(hsv[: h // 2]), colour_histogram(hsv[h // 2 :])]))
    return np.asarray(out, np.float32)


class _Constant:
    """Stand-in model for an attribute with a single value in the training labels."""

    def __init__(self, value: int) -> None:
        self.value = value

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.full(len(x), self.value)


class HogLinearAttacker(Attacker):
    name = "hog_linear"

    def __init__(self, C: float = 0.1, max_iter: int = 300, seed: int = 0, **_unused) -> None:
        # **_unused: accepts the neural attackers' training options (epochs, ...) and ignores them
        super().__init__()
        self.C, self.max_iter, self.seed = C, max_iter, seed
        self.models: list = []

    def _model(self):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=self.max_iter,
                                                                  class_weight="balanced", random_state=self.seed))

    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:
        f = features(x)
        columns = [y] if self.task == "identity" else [y[:, j].astype(int) for j in range(y.shape[1])]
        from sklearn.exceptions import ConvergenceWarning

        self.models = []
        with warnings.catch_warnings():
            # max_iter is this attacker's training budget, like the epochs of the neural ones
            warnings.simplefilter("ignore", ConvergenceWarning)
            for col in columns:
                values = np.unique(col)
                self.models.append(_Constant(int(values[0])) if len(values) < 2 else self._model().fit(f, col))

    def _predict(self, x: np.ndarray) -> np.ndarray:
        f = features(x)
        preds = [m.predict(f) for m in self.models]
        return preds[0] if self.task == "identity" else np.stack(preds, 1)


@ATTACKERS.register("hog_linear")
def hog_linear(**kwargs) -> HogLinearAttacker:
    return HogLinearAttacker(**kwargs)
