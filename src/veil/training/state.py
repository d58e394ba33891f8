"""Turning models and optimizers into safetensors + JSON checkpoints and back.

A run folder holds ``last.safetensors/.json`` (everything needed to resume) and
``obfuscator.safetensors/.json`` (what deployment and evaluation need: O, and D when the run
trained the reconstruction adversary). Key names are those of the first release, so every
checkpoint written since still loads.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

import veil
from veil.adversaries import DEOBFUSCATORS
from veil.errors import VeilError
from veil.io import load_checkpoint, save_checkpoint
from veil.obfuscators import OBFUSCATORS
from veil.training.config import TrainConfig


def flatten_optimizer(prefix: str, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Split an optimizer state dict into tensors (for safetensors) and JSON-able rest."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, entry in state["state"].items():
        for key, value in entry.items():
            name = f"{prefix}.state.{idx}.{key}"
            if torch.is_tensor(value):
                tensors[name] = value
            else:
                scalars[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer(prefix: str, tensors: dict, meta: dict) -> dict:
    state: dict[int, dict] = {}
    lead = f"{prefix}.state."
    items = list(tensors.items()) + list(meta["scalars"].items())
    for name, value in items:
        if name.startswith(lead):
            idx, key = name[len(lead) :].split(".", 1)
            state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def prefixed(prefix: str, module: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in module.state_dict().items()}


def take(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    lead = prefix + "."
    return {k[len(lead) :]: v for k, v in tensors.items() if k.startswith(lead)}


def load_into(module: nn.Module, state: dict[str, torch.Tensor], what: str, path: Path) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise VeilError(f"checkpoint {path} does not match the {what} architecture: {first}") from None


def save_models(path: Path, config: TrainConfig, obfuscator: nn.Module, deobfuscator: nn.Module | None = None,
                extra: dict | None = None, tensors: dict[str, torch.Tensor] | None = None) -> None:
    """The deployable checkpoint: O, D if given, and any further ``tensors`` (e.g. an adversary's)."""
    tensors = {**prefixed("obfuscator", obfuscator), **(tensors or {})}
    if deobfuscator is not None:
        tensors.update(prefixed("deobfuscator", deobfuscator))
    meta = {"format": "veil-checkpoint", "kind": "models", "veil_version": veil.__version__,
            "config": config.to_dict(), **(extra or {})}
    save_checkpoint(path, tensors, meta)


def build_obfuscator(config: TrainConfig) -> nn.Module:
    """O as ``config`` names it, with its arguments; a name or argument its factory refuses is a VeilError."""
    try:
        return OBFUSCATORS.build(config.obfuscator, **config.obfuscator_args)
    except (TypeError, ValueError) as exc:
        given = ", ".join(f"{k}={v!r}" for k, v in config.obfuscator_args.items()) or "no arguments"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise VeilError(f"obfuscator {config.obfuscator!r} cannot be built with {given}: {first}") from None


def build_models(config: TrainConfig) -> tuple[nn.Module, nn.Module]:
    obfuscator = build_obfuscator(config)
    deobfuscator = DEOBFUSCATORS.build(config.deobfuscator, width=config.deobfuscator_width)
    return obfuscator, deobfuscator


def load_models(path: str | Path) -> tuple[nn.Module, nn.Module | None, dict]:
    """Load O and D (eval mode) from an ``obfuscator`` or ``last`` checkpoint; returns meta too.

    D is None for a run that trained without the reconstruction adversary."""
    path = Path(path)
    tensors, meta = load_checkpoint(path)
    if "config" not in meta:
        raise VeilError(f"checkpoint {path} has no training config")
    config = TrainConfig.from_dict(meta["config"])
    obfuscator, deobfuscator = build_models(config)
    load_into(obfuscator, take("obfuscator", tensors), "obfuscator", path)
    d_state = take("deobfuscator", tensors)
    if not d_state:
        return obfuscator.eval(), None, meta
    load_into(deobfuscator, d_state, "deobfuscator", path)
    return obfuscator.eval(), deobfuscator.eval(), meta
