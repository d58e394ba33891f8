"""The rate term (veil.training.adversaries.rate) and the latent entropy it rests on."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch

from veil.errors import VeilError
from veil.obfuscators import OBFUSCATORS
from veil.obfuscators.latent import channel_entropy, soft_channel_entropy
from veil.training.adversaries import TRAINING_ADVERSARIES, AdversaryContext
from veil.training.config import TrainConfig


def test_channel_entropy_counts_bits_per_value():
    uniform = (torch.arange(4).float() / 3).repeat(2, 1, 5, 1).permute(0, 1, 3, 2)  # each level equally often
    constant = torch.full((2, 1, 4, 5), 1 / 3)
    q = torch.cat([uniform, constant], 1)
    torch.testing.assert_close(channel_entropy(q, 4), torch.tensor([2.0, 0.0]))
    # the soft proxy tracks it on rounded values, and its gradient reaches the latent
    u = q.clone().requires_grad_()
    soft = soft_channel_entropy(u, 4, bandwidth=0.2)
    assert abs(soft[0].item() - 2.0) < 0.05 and soft[1].item() < 0.05
    soft.sum().backward()
    assert u.grad.abs().sum() > 0


def _context(obfuscator, name="bottleneck", args=None):
    config = TrainConfig(obfuscator=name, obfuscator_args=args or {}, adversaries={"rate": 1.0})
    return AdversaryContext(config, torch.device("cpu"), None, obfuscator, contextlib.nullcontext)


def test_the_rate_term_alone_drives_the_latent_entropy_down():
    torch.manual_seed(0)
    obfuscator = OBFUSCATORS.build("bottleneck").train()
    rate = TRAINING_ADVERSARIES.build("rate", context=_context(obfuscator), options={"bandwidth": 0.5})
    assert rate.networks() == {} and rate.optimizers() == [] and rate.state() == ({}, {})
    opt = torch.optim.Adam(obfuscator.parameters(), lr=1e-2)
    x = torch.rand(4, 3, 64, 64)
    logs = []
    for _ in range(25):
        z = obfuscator(x)
        term, log = rate.o_term(None, z)
        opt.zero_grad()
        term.backward()
        opt.step()
        logs.append(log)
    first, last = logs[0], logs[-1]
    assert 0 < first["rate_bits_per_value"] <= 2.0
    assert last["rate_bits_per_value"] < 0.5 * first["rate_bits_per_value"]
    # bits per 640x480 frame: per-channel entropies x the 60 x 80 latent positions
    assert first["rate_bits_per_frame_640x480"] <= 8 * 60 * 80 * 2
    assert first["rate_bits_per_frame_640x480"] == pytest.approx(first["rate_bits_per_value"] * 8 * 60 * 80, rel=1e-5)


def test_the_rate_term_needs_a_quantised_latent():
    with pytest.raises(VeilError, match="needs an obfuscator with a quantised latent"):
        TRAINING_ADVERSARIES.build("rate", context=_context(OBFUSCATORS.build("mobilenet_ae"), "mobilenet_ae"))
    ok = OBFUSCATORS.build("mobilenet_ae", levels=4)
    TRAINING_ADVERSARIES.build("rate", context=_context(ok, "mobilenet_ae", {"levels": 4}))
    with pytest.raises(VeilError, match="unknown rate option"):
        TRAINING_ADVERSARIES.build("rate", context=_context(ok, "mobilenet_ae", {"levels": 4}), options={"beta": 1})


def test_a_bottleneck_trains_with_the_rate_term_and_logs_its_bits(dataset, yolo, tmp_path):
    """A real (smoke) run: the detector's loss plus the rate term, without reconstruction."""
    from veil.training.presets import make_config
    from veil.training.state import load_models
    from veil.training.trainer import Trainer

    config = make_config("smoke", dataset, epochs=1, steps_per_epoch=2, obfuscator="bottleneck",
                         obfuscator_args={"stride": 16, "latent": 4}, adversaries={"rate": 0.5})
    history = Trainer(dataset, tmp_path / "run", config, detector=yolo).fit().history
    row = history[-1]
    assert 0 <= row["rate_bits_per_value"] <= 2.0 and row["loss_obj"] > 0
    assert 0 <= row["rate_bits_per_frame_640x480"] <= 4 * 30 * 40 * 2
    obfuscator, deobfuscator, meta = load_models(tmp_path / "run" / "obfuscator.safetensors")
    assert deobfuscator is None and meta["config"]["adversaries"] == {"rate": 0.5}
    assert obfuscator.latent_bits_per_frame((640, 480)) == 4 * 30 * 40 * math.log2(4)
