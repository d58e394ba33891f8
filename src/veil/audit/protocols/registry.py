"""The registry of identity protocols: how pseudo-identities are labelled and split into
attacker-train and attacker-test. A protocol is one file with a decorated factory
``(frames: AuditFrames, config: AuditConfig) -> IdentityTask``."""

from __future__ import annotations

from veil.registry import Registry

PROTOCOLS: Registry = Registry("identity protocol")
