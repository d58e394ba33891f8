"""Attackers of the privacy audit (wu-2018 3.4: N unseen models). Importing this package
registers every built-in one in ``ATTACKERS``; adding one is one file here."""

from veil.adversaries.attackers import (  # noqa: F401  (registers)
    efficientnet_lite0,
    hog_linear,
    mobilenetv3,
    resnet18,
    small_cnn,
)
from veil.adversaries.attackers.base import TASKS, Attacker, Task, TorchAttacker

__all__ = ["TASKS", "Attacker", "Task", "TorchAttacker"]
