"""Registry of frozen detectors."""

from __future__ import annotations

from veil.detectors.base import FrozenDetector
from veil.registry import Registry

DETECTORS: Registry[FrozenDetector] = Registry("detector")
