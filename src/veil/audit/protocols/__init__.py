"""Identity protocols of the audit. Importing this package registers the built-in ones."""

from veil.audit.protocols import reid, tracking  # noqa: F401  (registers)
from veil.audit.protocols.registry import PROTOCOLS

__all__ = ["PROTOCOLS"]
