"""Attacker (h): multi-scale LBP texture + Lab colour moments + an RBF-kernel SVM.

Features: uniform LBP histograms at two scales (8 points radius 1, 16 points radius 2) of 4
horizontal stripes, and the mean, standard deviation and skewness of each CIE Lab channel
of 6 stripes, standardised. Classifier: scikit-learn SVC with an RBF kernel and balanced class
weights (one-vs-one for identity, one SVM per attribute). A smooth kernel decision boundary
over compact colour statistics, unlike the trees' bin-wise splits or the linear model on HOG.
"""

from __future__ import annotations

import numpy as np

from veil.adversaries.attackers.classical import SklearnAttacker
from veil.adversaries.attackers.features import colour_moments, lbp_histograms
from veil.adversaries.registry import ATTACKERS


class LbpSvmAttacker(SklearnAttacker):
    name = "lbp_svm"
    deterministic = True  # the seed changes nothing: the audit fits it once for all seeds

    def __init__(self, C: float = 10.0, texture_stripes: int = 4, colour_stripes: int = 6, **kwargs) -> None:
        super().__init__(**kwargs)
        self.C, self.texture_stripes, self.colour_stripes = C, texture_stripes, colour_stripes

    def _budget(self) -> dict:
        return {"model": "SVC(rbf)", "C": self.C, "gamma": "scale",
                "features": f"LBP(8,1)+LBP(16,2) histograms of {self.texture_stripes} stripes + "
                            f"Lab moments of {self.colour_stripes} stripes"}

    def features(self, x: np.ndarray) -> np.ndarray:
        return np.concatenate([lbp_histograms(x, self.texture_stripes, 8, 1),
                               lbp_histograms(x, self.texture_stripes, 16, 2),
                               colour_moments(x, self.colour_stripes)], 1)

    def model(self):
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC

        return make_pipeline(StandardScaler(), SVC(C=self.C, kernel="rbf", gamma="scale",
                                                   class_weight="balanced", random_state=self.seed))


@ATTACKERS.register("lbp_svm")
def lbp_svm(**kwargs) -> LbpSvmAttacker:
    return LbpSvmAttacker(**kwargs)
