"""Registries of adversaries: deobfuscators (reconstruct the original) and attackers
(recognise identity or attributes from obfuscated crops)."""

from __future__ import annotations

from torch import nn

from veil.registry import Registry

DEOBFUSCATORS: Registry[nn.Module] = Registry("deobfuscator")

# Attackers are plain objects with fit/predict (see veil.adversaries.attackers.base.Attacker);
# typed loosely here so the registry module stays free of the attacker package's imports.
ATTACKERS: Registry[object] = Registry("attacker")
