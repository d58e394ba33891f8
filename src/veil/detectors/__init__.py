"""Frozen detectors. Importing this package registers every built-in adapter.

The Ultralytics adapter imports ``ultralytics`` only when a YOLO detector is built, so the
core works without the AGPL-licensed extra installed.
"""

from veil.detectors import torchvision_detectors, ultralytics_yolo  # noqa: F401  (registers)
from veil.detectors.base import Detections, FrozenDetector, Target
from veil.detectors.registry import DETECTORS

__all__ = ["DETECTORS", "Detections", "FrozenDetector", "Target"]
