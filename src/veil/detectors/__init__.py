"""Frozen detectors. Importing this package registers every built-in adapter.

The Ultralytics adapter imports ``ultralytics`` only when a YOLO detector is built, so the
core works without the AGPL-licensed extra installed. The HOG adapter needs OpenCV's HOG
(OpenCV 5: the contrib build) only when it is built.
"""

from veil.detectors import hog, torchvision_detectors, ultralytics_yolo  # noqa: F401  (registers)
from veil.detectors.base import Detections, FrozenDetector, Target
from veil.detectors.recorded import build_recorded, weights_to_load
from veil.detectors.registry import DETECTORS

__all__ = ["DETECTORS", "Detections", "FrozenDetector", "Target", "build_recorded", "weights_to_load"]
