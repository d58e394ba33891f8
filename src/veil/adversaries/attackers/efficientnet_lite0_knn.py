"""Attacker (f): frozen ImageNet features + k-nearest neighbours (no training of the network).

The pooled 1280-d features of the pretrained EfficientNet-Lite0 (see efficientnet_lite0.py for
the weights and their licence), L2-normalised, classified by a k-NN vote with cosine distance
(scikit-learn). Identity: distance-weighted vote. Attributes: per attribute, the weighted
fraction of positive neighbours against that attribute's training prior, the decision
threshold that maximises balanced accuracy (mA) rather than plain accuracy. Identity scores
are the distance-weighted vote shares of the k neighbours; the embedding is the normalised
feature vector itself.

A different kind of adversary from the fine-tuned ones: nothing is fitted to the obfuscated
crops but the neighbour set, so it cannot overfit a short training budget.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from veil.adversaries.attackers.base import Attacker
from veil.adversaries.attackers.efficientnet_lite0 import imagenet_features
from veil.adversaries.registry import ATTACKERS

if TYPE_CHECKING:
    from sklearn.neighbors import KNeighborsClassifier


class EfficientNetLite0KnnAttacker(Attacker):
    name = "efficientnet_lite0_knn"
    deterministic = True  # the seed changes nothing: the audit fits it once for all seeds
    family = "frozen_features"

    def __init__(self, k: int = 7, upscale: float = 1.0, feature_batch: int = 256, seed: int = 0,
                 device: str | torch.device = "cpu", **_unused) -> None:
        # **_unused: accepts the trained attackers' options (epochs, ...); nothing here is trained.
        # upscale: 1.5x costs 2.4x the CPU and gained nothing consistent on vtest at 48x96 (top-1
        # 0.599 vs 0.606 with 24 identities, 0.664 vs 0.636 with 12), so the default is 1.
        super().__init__(seed)
        self.k, self.upscale, self.feature_batch = k, upscale, feature_batch
        self.device = torch.device(device)
        self.knn: KNeighborsClassifier | None = None
        self.prior: np.ndarray | None = None

    def _budget(self) -> dict:
        return {"k": self.k, "metric": "cosine", "upscale": self.upscale,
                "features": "EfficientNet-Lite0 pooled 1280-d"}

    def _embed(self, x: np.ndarray) -> np.ndarray:
        """L2-normalised pooled features of uint8 crops."""
        return imagenet_features(x, self.device, self.feature_batch, self.upscale)

    def _fit(self, x: np.ndarray, y: np.ndarray, _validation) -> None:  # nothing to select
        from sklearn.neighbors import KNeighborsClassifier

        f = self._embed(x)
        k = min(self.k, len(x))
        knn = KNeighborsClassifier(n_neighbors=k, metric="cosine", weights="distance", algorithm="brute")
        self.knn = knn.fit(f, y if self.task == "identity" else y.astype(int))
        if self.task == "attributes":
            self.prior = y.mean(0)

    def _fitted(self) -> KNeighborsClassifier:
        assert self.knn is not None, "predicting before fit"  # Attacker._ready refuses that first
        return self.knn

    def _scores(self, x: np.ndarray) -> np.ndarray:
        return self._fitted().predict_proba(self._embed(x))

    def _predict(self, x: np.ndarray) -> np.ndarray:
        knn = self._fitted()
        assert self.prior is not None  # fit on the attributes task sets it
        probas, classes_per = knn.predict_proba(self._embed(x)), knn.classes_
        if not knn.outputs_2d_:  # a single attribute: scikit-learn drops the list
            probas, classes_per = [probas], [classes_per]
        out = np.zeros((len(x), len(probas)), np.uint8)
        for j, (proba, classes) in enumerate(zip(probas, classes_per)):
            p1 = proba[:, list(classes).index(1)] if 1 in classes else np.zeros(len(x))
            # balanced-accuracy decision: positive when more likely than the prior says
            out[:, j] = (p1 > self.prior[j]) | (self.prior[j] >= 1)
        return out


@ATTACKERS.register("efficientnet_lite0_knn")
def efficientnet_lite0_knn(**kwargs) -> EfficientNetLite0KnnAttacker:
    return EfficientNetLite0KnnAttacker(**kwargs)
