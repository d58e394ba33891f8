"""Attackers of the privacy audit (wu-2018 3.4: N unseen models). Importing this package
registers every built-in one in ``ATTACKERS``; adding one is one file here."""

from veil.adversaries.attackers import (  # noqa: F401  (registers)
    colour_forest,
    detector_features,
    efficientnet_lite0,
    efficientnet_lite0_knn,
    fused,
    hog_linear,
    lbp_svm,
    mobilenetv3,
    resnet18,
    small_cnn,
)
from veil.adversaries.attackers.base import AUGMENTS, FAMILIES, TASKS, Attacker, Task, TorchAttacker

__all__ = ["AUGMENTS", "FAMILIES", "TASKS", "Attacker", "Task", "TorchAttacker"]
