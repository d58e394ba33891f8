"""Which detector weights to load when a dataset manifest or a checkpoint records the ones it was made with.

Ultralytics ``.pt`` files are pickles, and unpickling runs code. So Veil loads a weights FILE only
from a path the user typed (``--detector-weights``) or from an installed package; a path read out
of a manifest or a checkpoint, which may have come from someone else, is never loaded. Named
weights that select one of an adapter's built-in sets ("default", "daimler") are not files and pass.
"""

from __future__ import annotations

from veil.detectors.base import FrozenDetector
from veil.errors import VeilError


def weights_to_load(recorded: str | None, typed: str | None, source: str) -> str | None:
    """The weights to build the recorded detector with: ``typed`` (the user's) if given, else
    ``recorded`` when it names built-in weights or none; a recorded file path is refused with the
    flag to pass. ``source`` names what recorded it, for the error ("the dataset ds/")."""
    if typed:
        return typed
    if recorded is None or ("/" not in recorded and "\\" not in recorded and "." not in recorded):
        return recorded  # None (the adapter's packaged weights), or a built-in set such as "daimler"
    raise VeilError(f"{source} was made with the detector weights {recorded}; Veil loads a weights file only "
                    f"from a path you type, as such files may run code when loaded: pass --detector-weights "
                    f"{recorded} if you trust it")


def build_recorded(name: str, recorded: str | None, typed: str | None, source: str) -> FrozenDetector:
    """The registry's detector ``name`` with the weights :func:`weights_to_load` allows (none: its default)."""
    from veil.detectors.registry import DETECTORS

    weights = weights_to_load(recorded, typed, source)
    return DETECTORS.build(name, **({"weights": weights} if weights else {}))
