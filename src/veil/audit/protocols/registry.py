"""The registry of identity protocols: how pseudo-identities are labelled and split into
attacker-train and attacker-test. A protocol is one file with a decorated class that says which
dataset splits it reads (``splits(config)``, loaded whole) and labels them
(``identities(frames, config) -> IdentityTask``)."""

from __future__ import annotations

from veil.registry import Registry

PROTOCOLS: Registry = Registry("identity protocol")
