"""The structural levers (veil.obfuscators.bottleneck, .latent): colour removal, a narrow
quantised latent whose bound in bits matches its real shape, per-frame noise, an ONNX export
that quantises exactly as PyTorch does, and checkpoints saved before the levers still loading.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tests.obfuscators.conftest import build, export_onnx, frames_for
from veil.evaluation.cost import obfuscator_cost
from veil.obfuscators import OBFUSCATORS
from veil.obfuscators.latent import LatentQuantiser

OLD_CHECKPOINT = Path(__file__).parent / "data" / "mobilenet_ae-before-levers.safetensors"

GREY = [("bottleneck", {}), ("bottleneck", {"stride": 16, "latent": 4}), ("mobilenet_ae", {"grey": True})]
QUANTISED = [("bottleneck", {}), ("bottleneck", {"stride": 16, "latent": 4, "levels": 2}),
             ("bottleneck", {"latent": 3, "levels": 5, "grey": False}), ("mobilenet_ae", {"levels": 4})]


def _perturbed(name: str, args: dict, seed: int = 0) -> nn.Module:
    """A model off its initial weights (BatchNorm statistics included), as a trained one would be."""
    model = build(name, args, seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.mark.parametrize(("name", "args"), GREY)
def test_colour_removal_outputs_three_identical_channels(name, args):
    model = _perturbed(name, args)
    x = frames_for(model, 2, 45, 70)
    for training in (True, False):
        y = model.train(training)(x)
        assert y.shape == (2, 3, 45, 70)
        assert torch.equal(y[:, 0], y[:, 1]) and torch.equal(y[:, 0], y[:, 2])
    colour = build("bottleneck", {"grey": False}).eval()(x)
    assert not torch.equal(colour[:, 0], colour[:, 1])


@pytest.mark.parametrize(("name", "args"), QUANTISED)
@pytest.mark.parametrize("size", [(640, 480), (101, 77)])
def test_bits_per_frame_match_the_real_latent_shape_and_levels(name, args, size):
    model = _perturbed(name, args).eval()
    w, h = size
    with torch.no_grad():
        q = model.quantiser(model.latent_features(torch.rand(1, 3, h, w)))
    levels = model.levels
    stride = model.stride
    assert q.shape == (1, model.latent_channels, math.ceil(h / stride), math.ceil(w / stride))
    grid = torch.arange(levels) / (levels - 1)
    assert torch.isin(q, grid).all(), "every latent value is one of the levels"
    assert len(q.unique()) <= levels
    assert model.latent_bits_per_frame(size) == q.numel() * math.log2(levels)


def test_default_bottleneck_bound_at_640x480():
    model = OBFUSCATORS.build("bottleneck")
    assert model.latent_bits_per_frame((640, 480)) == 8 * 60 * 80 * 2  # 8 channels at 1/8, 4 levels
    assert OBFUSCATORS.build("bottleneck", stride=16, latent=4).latent_bits_per_frame((640, 480)) == 4 * 30 * 40 * 2
    assert OBFUSCATORS.build("bottleneck", levels=None).latent_bits_per_frame((640, 480)) is None
    assert OBFUSCATORS.build("mobilenet_ae").latent_bits_per_frame((640, 480)) is None
    assert "4 levels (2 bits)" in model.transmitted and "on the camera" in model.transmitted


def test_quantiser_is_straight_through_and_exact_in_both_modes():
    quantiser = LatentQuantiser(levels=4)
    features = torch.randn(2, 3, 5, 7, requires_grad=True)
    q = quantiser.train()(features)
    assert torch.equal(q, quantiser.eval()(features)), "training sees exactly what the camera produces"
    assert torch.isin(q, torch.tensor([0, 1 / 3, 2 / 3, 1])).all()
    q.sum().backward()
    u = torch.sigmoid(features.detach())
    torch.testing.assert_close(features.grad, u * (1 - u))  # the sigmoid's gradient: rounding passes it through
    assert LatentQuantiser(levels=None)(features).equal(torch.sigmoid(features))


def test_rate_hook_keeps_the_latent_only_while_training():
    model = build("bottleneck", {}).train()
    model(torch.rand(1, 3, 32, 48))
    kept = model.quantiser.last_latent
    assert kept is not None and kept.shape == (1, 8, 4, 6) and kept.requires_grad
    model.quantiser.last_latent = None
    with torch.no_grad():
        model.eval()(torch.rand(1, 3, 32, 48))
    assert model.quantiser.last_latent is None


def test_a_just_trained_bottleneck_can_be_copied_and_costed():
    # the kept latent belongs to the last step's graph, which deepcopy refuses; the audit's and
    # bench_train's cost figure copy the model they are given (a cross-fit fold's, just trained)
    model = build("bottleneck", {}).train()
    model(torch.rand(1, 3, 32, 48)).mean().backward()
    assert model.quantiser.last_latent is not None
    copied = copy.deepcopy(model)
    assert copied.quantiser.last_latent is None and model.quantiser.last_latent is not None
    assert obfuscator_cost(model, size=(48, 32), repeats=1)["macs"] > 0


def test_latent_noise_is_per_frame_seeded_and_keeps_the_bound():
    model = _perturbed("bottleneck", {"noise": 0.2}).eval()
    gen = model.quantiser.generator = torch.Generator().manual_seed(3)
    x = torch.rand(1, 3, 48, 64).repeat(2, 1, 1, 1)  # the same frame twice in one batch
    with torch.no_grad():
        first = model(x)
        gen.manual_seed(3)
        again = model(x)
        q = model.encode(x)
    assert torch.equal(first, again), "a seeded generator reproduces the draws"
    assert not torch.equal(first[0], first[1]), "each frame gets its own draws"
    assert torch.isin(q, torch.arange(4) / 3).all(), "noise comes before rounding: still 4 levels"
    clean = _perturbed("bottleneck", {}).eval()
    with torch.no_grad():
        assert not torch.equal(first, clean(x))
        assert torch.equal(clean(x)[0], clean(x)[1])


def test_latent_noise_needs_a_quantised_latent_and_bad_levers_are_refused():
    for name, args in [("bottleneck", {"stride": 12}), ("bottleneck", {"stride": 4}), ("bottleneck", {"levels": 1}),
                       ("bottleneck", {"noise": -0.1}), ("bottleneck", {"latent": 0}),
                       ("mobilenet_ae", {"noise": 0.1})]:
        with pytest.raises(ValueError):
            OBFUSCATORS.build(name, **args)


class _Latent(nn.Module):
    """The obfuscator's output, and its latent before and after rounding, as one graph to export
    (one export per model: the dynamo exporter takes seconds each)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features = self.model.latent_features(x)
        return self.model(x), torch.sigmoid(features), self.model.quantiser(features)


@pytest.mark.parametrize(("name", "args"), QUANTISED)
def test_onnx_quantises_real_frames_exactly_as_pytorch(name, args, tmp_path):
    """On real vtest frames the exported latent equals PyTorch's level for level, and so does the output."""
    ort = pytest.importorskip("onnxruntime")
    from veil.deployment.export import vtest_frames
    from veil.deployment.runtime import to_input

    model = _perturbed(name, args).eval()
    x = torch.from_numpy(to_input(vtest_frames((50, 150, 250), (320, 240))))
    export_onnx(_Latent(model).eval(), x[:2], tmp_path / "model.onnx")
    y, u, q = ort.InferenceSession(str(tmp_path / "model.onnx")).run(None, {"frames": x.numpy()})
    with torch.no_grad():
        y_torch, u_torch, q_torch = _Latent(model)(x)
    levels = model.levels
    assert np.isin(q, np.arange(levels, dtype=np.float32) / np.float32(levels - 1)).all()
    np.testing.assert_allclose(u, u_torch.numpy(), atol=1e-5, rtol=0)
    # a value within float error of a rounding boundary may fall either way; none else may differ
    scaled = u_torch.numpy() * (levels - 1)
    near_boundary = np.abs(scaled - np.floor(scaled) - 0.5) < 1e-4
    differ = q != q_torch.numpy()
    assert not (differ & ~near_boundary).any()
    assert differ.mean() < 1e-3
    if not differ.any():
        np.testing.assert_allclose(y, y_torch.numpy(), atol=1e-5, rtol=0)


def test_checkpoint_saved_before_the_levers_loads_and_gives_the_same_output():
    """A mobilenet_ae checkpoint written by the code before grey/levels existed (its config
    has only ``width``): it loads into today's code and reproduces the output saved with it."""
    from veil.io import load_checkpoint
    from veil.training.state import load_models

    obfuscator, deobfuscator, meta = load_models(OLD_CHECKPOINT)
    assert meta["config"]["obfuscator_args"] == {"width": 0.5} and deobfuscator is None
    assert not obfuscator.grey and obfuscator.levels is None
    tensors, _ = load_checkpoint(OLD_CHECKPOINT)
    with torch.no_grad():
        assert torch.equal(obfuscator(tensors["test_input"]), tensors["test_output"])
