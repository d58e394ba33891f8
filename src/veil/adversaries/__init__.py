"""Adversaries. Importing this package registers every built-in one."""

from veil.adversaries import attackers, deobfuscator, unet  # noqa: F401  (registers)
from veil.adversaries.registry import ATTACKERS, DEOBFUSCATORS

__all__ = ["ATTACKERS", "DEOBFUSCATORS"]
