"""Helpers shared by the obfuscator tests: inputs of the right kind, and an ONNX round trip."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from veil.obfuscators import OBFUSCATORS, clip_length

# Every registered obfuscator with its defaults, plus the variants that build other parameters.
CONFIGS = [(name, {}) for name in OBFUSCATORS.names()] + [
    ("bdq", {"variant": "frame+motion"}),
    ("lensless", {"binary": True}),
    # the bottleneck levers: a 1/16 latent of 2 levels, an unquantised colour one, and two levers on mobilenet_ae
    ("bottleneck", {"stride": 16, "latent": 4, "levels": 2}),
    ("bottleneck", {"grey": False, "levels": None, "blocks": 0}),
    ("mobilenet_ae", {"grey": True, "levels": 4}),
]
IDS = [name + "".join(f"-{k}={v}" for k, v in args.items()) for name, args in CONFIGS]


def build(name: str, args: dict, seed: int = 0):
    torch.manual_seed(seed)
    return OBFUSCATORS.build(name, **args)


def frames_for(model, batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Random input of the kind ``model`` takes: frames (B, 3, H, W) or clips (B, T, 3, H, W)."""
    gen = torch.Generator().manual_seed(seed)
    t = clip_length(model)
    shape = (batch, 3, height, width) if t == 1 else (batch, t, 3, height, width)
    return torch.rand(shape, generator=gen)


def export_onnx(model, example: torch.Tensor, path: Path, opset: int = 18) -> None:
    """torch.onnx.export (dynamo) with dynamic batch, height and width, as ``veil export`` does."""
    h = example.dim() - 2
    dims = {0: torch.export.Dim("batch"), h: torch.export.Dim("height"), h + 1: torch.export.Dim("width")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (example,), None, input_names=["frames"], output_names=["obfuscated"],
                                    opset_version=opset, dynamic_shapes=(dims,), dynamo=True, verbose=False)
    program.save(str(path), external_data=False)
