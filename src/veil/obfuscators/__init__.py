"""Learned obfuscators. Importing this package registers every built-in architecture."""

from veil.obfuscators import autoencoder, bdq, bottleneck, lensless, lowres, unet  # noqa: F401  (registers)
from veil.obfuscators.autoencoder import MobileNetAutoencoder
from veil.obfuscators.base import FrameStream, Obfuscator, clip_length
from veil.obfuscators.registry import OBFUSCATORS

__all__ = ["OBFUSCATORS", "FrameStream", "MobileNetAutoencoder", "Obfuscator", "clip_length"]
