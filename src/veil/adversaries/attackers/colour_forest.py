"""Attacker (g): colour and texture histograms of horizontal stripes + extremely randomised trees.

Features: joint HSV histograms (8 hue x 3 saturation x 3 value bins) of 6 horizontal stripes
(head, shoulders, torso, hips, legs, feet at a person crop's proportions) and uniform LBP
texture histograms (8 points, radius 1) of 3 stripes. Classifier: scikit-learn ExtraTrees
with balanced class weights, one multi-output forest for all attributes. Trees split on
single bins ("much red in stripe 2"), a different inductive bias from the linear and kernel
classical attackers.
"""

from __future__ import annotations

import numpy as np

from veil.adversaries.attackers.classical import SklearnAttacker
from veil.adversaries.attackers.features import hsv_histograms, lbp_histograms
from veil.adversaries.registry import ATTACKERS


class ColourForestAttacker(SklearnAttacker):
    name = "colour_forest"
    multi_output = True

    def __init__(self, trees: int = 300, colour_stripes: int = 6, texture_stripes: int = 3, **kwargs) -> None:
        super().__init__(**kwargs)
        self.trees, self.colour_stripes, self.texture_stripes = trees, colour_stripes, texture_stripes

    def _budget(self) -> dict:
        return {"model": "ExtraTreesClassifier", "trees": self.trees,
                "features": f"HSV 8x3x3 histograms of {self.colour_stripes} stripes + "
                            f"LBP(8,1) histograms of {self.texture_stripes} stripes"}

    def features(self, x: np.ndarray) -> np.ndarray:
        return np.concatenate([hsv_histograms(x, self.colour_stripes), lbp_histograms(x, self.texture_stripes)], 1)

    def model(self):
        from sklearn.ensemble import ExtraTreesClassifier

        return ExtraTreesClassifier(n_estimators=self.trees, max_features="sqrt", class_weight="balanced",
                                    random_state=self.seed, n_jobs=1)


@ATTACKERS.register("colour_forest")
def colour_forest(**kwargs) -> ColourForestAttacker:
    return ColourForestAttacker(**kwargs)
