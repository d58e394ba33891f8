"""Registry of learned obfuscator architectures (and their deobfuscator adversaries)."""

from __future__ import annotations

from torch import nn

from veil.registry import Registry

OBFUSCATORS: Registry[nn.Module] = Registry("obfuscator")
