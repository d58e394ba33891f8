"""Registry of training adversaries (the parties O plays against while it learns)."""

from __future__ import annotations

from veil.registry import Registry

TRAINING_ADVERSARIES: Registry = Registry("training adversary")
