"""The privacy audit: attack Veil's own output with attackers that never took part in training.

Modules, in pipeline order: ``config`` (presets), ``frames`` (the frame table and
transforms), ``labels`` + ``protocols`` (identity and attribute tasks), ``prepare`` (frames,
labels and the original AP, once), ``attacks`` (attackers, seeds, bootstrap intervals),
``sweep`` (utility-matched baselines), ``measure`` (every method), ``report`` (the typed report,
its schema and loader), ``verdict``, ``html`` (the page) and ``runner`` (puts them together).
Adding an attacker, a baseline or a protocol is one file in its registry.
"""

from veil.audit.config import PRESETS, AuditConfig

__all__ = ["PRESETS", "AuditConfig", "run_audit"]


def __getattr__(name: str):
    # The runner pulls in torch, the detectors and the attackers; importing it lazily keeps
    # ``veil.audit.config`` cheap, so the CLI refuses a bad option before loading any of that.
    if name == "run_audit":
        from veil.audit.runner import run_audit

        return run_audit
    raise AttributeError(f"module 'veil.audit' has no attribute {name!r}")
