"""Helpers shared by the ``veil`` sub-commands. Every sub-command module imports from here and
from ``veil.cli.progress``, never from ``veil.cli.main`` or from another sub-command, so the CLI
has no import cycle. Each helper turns an option string into a checked value or a VeilError."""

from __future__ import annotations

from veil.errors import VeilError


def build_detector(name: str, weights: str | None, device: str = "cpu", person_classes: list[int] | None = None):
    """The registry's detector ``name`` on ``device`` (weights: a path the user typed, or its default)."""
    from veil.detectors import DETECTORS

    kwargs: dict = {"weights": weights} if weights else {}
    if person_classes is not None:
        kwargs["person_classes"] = person_classes
    return DETECTORS.build(name, **kwargs).to(device)


def pick_device(name: str) -> str:
    """``auto`` -> cuda where available, else cpu; an explicit cuda without one is refused."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise VeilError("--device cuda asked for, but no CUDA device is available")
    return name


def parse_person_classes(text: str | None) -> list[int] | None:
    """``"0,2"`` -> ``[0, 2]``."""
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise VeilError(f"--person-classes must be class ids like 0 or 0,2, got {text!r}") from None


def parse_baselines(text: str) -> tuple[str, ...]:
    """``"gaussian_blur,grey_downsample@2"`` -> baseline specs (checked: a registered name, at its
    own strength or a fixed one after ``@``); ``"none"`` -> no baselines."""
    from veil.obfuscators.baselines import BASELINES, parse_spec

    if text.strip().lower() == "none":
        return ()
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n.partition("@")[0] not in BASELINES]
    if not names or unknown:
        raise VeilError(f"--baselines must be NAME,NAME@STRENGTH or none; unknown: {', '.join(unknown) or text!r} "
                        f"(known: {', '.join(BASELINES.names())})")
    for n in names:
        parse_spec(n)
    return names
