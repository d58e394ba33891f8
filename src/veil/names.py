"""Names that cross the edge-to-cloud boundary. Both the edge agent and the service check a
camera name by this one rule, and neither imports the other's package to do it."""

from __future__ import annotations

import re

from veil.errors import VeilError

CAMERA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_camera_name(name: str) -> str:
    """``name`` unchanged, or VeilError if it is not 1-64 letters, digits, '.', '_' or '-'."""
    if not CAMERA_NAME.fullmatch(name):
        raise VeilError(f"camera name must be 1-64 letters, digits, '.', '_' or '-', got {name!r}")
    return name
