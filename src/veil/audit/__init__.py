"""The privacy audit: attack Veil's own output with attackers that never took part in training.

Modules, in pipeline order: ``config`` (presets), ``frames`` (the frame table and
transforms), ``labels`` + ``protocols`` (identity and attribute tasks), ``attacks`` (attackers,
seeds, bootstrap intervals), ``sweep`` (utility-matched baselines), ``verdict``, ``report``
(HTML) and ``runner`` (puts them together). Adding an attacker, a baseline or a protocol is
one file in its registry.
"""

from veil.audit.config import PRESETS, AuditConfig
from veil.audit.runner import run_audit

__all__ = ["PRESETS", "AuditConfig", "run_audit"]
