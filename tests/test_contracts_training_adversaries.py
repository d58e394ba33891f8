"""The training-adversary contract (veil.training.adversaries.base), checked on every registered one.

Parametrised over ``TRAINING_ADVERSARIES.names()``, so a new adversary gets every check with no new
test code, on a real prepared vtest dataset and a real obfuscator: built from the registry with its
networks and optimizers, its own update trains its networks and leaves O alone, its term in L_O
carries a gradient to O's output (and through it to O) but none to its own networks, the same seed
builds the same adversary, its state survives a safetensors + JSON round trip, and a bad option is a
VeilError.
"""

import contextlib
import json
import math

import pytest
import torch

from veil.data.dataset import FrameDataset
from veil.errors import VeilError
from veil.io import load_checkpoint, save_checkpoint
from veil.obfuscators import OBFUSCATORS
from veil.training.adversaries import TRAINING_ADVERSARIES, AdversaryContext, Batch
from veil.training.config import TrainConfig

# Small settings where an adversary has them (a new one is checked with its defaults).
OPTIONS = {"budget": {"models": 2, "architectures": ["mobilenet_v2", "colour_stripes"], "width": 0.1,
                      "crop_height": 16, "crop_width": 8, "max_passes": 1, "restart_batch": 64, "heldout_every": 0,
                      "min_track": 5}}
CONFIG = TrainConfig(deobfuscator_width=0.25, seed=3)
# The obfuscator an adversary is checked on, where it needs more than a plain one (the rate term reads
# a quantised latent).
OBFUSCATOR = {"rate": ("bottleneck", {})}


@pytest.fixture(scope="module")
def train_set(dataset):
    return FrameDataset(dataset, "train")


@pytest.fixture(scope="module")
def batch(train_set):
    images, targets = train_set.batch([0, 7])
    return Batch(images, targets, frames=[0, 7], offsets=[(0, 0), (0, 0)], flipped=[False, True])


def build(name: str, train_set, obfuscator=None, options=None):
    torch.manual_seed(0)
    kind, args = OBFUSCATOR.get(name, ("mobilenet_ae", {"width": 0.25}))
    obfuscator = obfuscator or OBFUSCATORS.build(kind, **args).train()
    context = AdversaryContext(CONFIG, torch.device("cpu"), train_set, obfuscator, contextlib.nullcontext)
    return TRAINING_ADVERSARIES.build(name, context=context, options=OPTIONS.get(name) if options is None else options)


def weights(modules: dict) -> dict[str, torch.Tensor]:
    return {f"{n}.{k}": v.detach().clone() for n, m in modules.items() for k, v in m.state_dict().items()}


@pytest.fixture(scope="module", params=TRAINING_ADVERSARIES.names())
def stepped(request, train_set, batch):
    """An adversary after one update on the batch (as the trainer runs it), with what changed."""
    adversary = build(request.param, train_set)
    o = adversary.ctx.obfuscator
    with torch.no_grad():
        z = o(batch.images)  # in train mode, as the trainer runs it (BatchNorm statistics move here)
    o_before = weights({"o": o})
    before = weights(adversary.networks())
    log = adversary.update(batch, z.detach())
    return {"name": request.param, "adversary": adversary, "log": log, "before": before, "o_before": o_before}


def test_builds_with_its_networks_and_their_optimizers(stepped):
    adversary = stepped["adversary"]
    assert adversary.name == stepped["name"]
    networks = adversary.networks()
    assert all(isinstance(m, torch.nn.Module) for m in networks.values())
    optimised = {id(p) for opt in adversary.optimizers() for g in opt.param_groups for p in g["params"]}
    assert all(id(p) in optimised for m in networks.values() for p in m.parameters())
    # an adversary without networks (a pure penalty, like the rate term) has nothing to optimise either
    assert bool(networks) == bool(optimised)


def test_update_trains_its_networks_and_leaves_o_alone(stepped):
    adversary, log = stepped["adversary"], stepped["log"]
    assert all(isinstance(v, float) and math.isfinite(v) for v in log.values())
    assert log or not adversary.networks()  # an update that trains something reports it
    after = weights(adversary.networks())
    if after:  # a pure penalty has no networks to train
        assert any(not torch.equal(v, after[k]) for k, v in stepped["before"].items())
    o_after = weights({"o": adversary.ctx.obfuscator})
    assert all(torch.equal(v, o_after[k]) for k, v in stepped["o_before"].items()), "O changed in the update"


def test_o_term_reaches_o_and_not_the_adversarys_networks(stepped, batch):
    adversary = stepped["adversary"]
    o = adversary.ctx.obfuscator
    o.zero_grad(set_to_none=True)
    for m in adversary.networks().values():
        m.zero_grad(set_to_none=True)
    frozen_before = weights(adversary.networks())
    training = {n: m.training for n, m in adversary.networks().items()}
    z = o(batch.images)
    z.retain_grad()
    term, log = adversary.o_term(batch, z)
    assert term.ndim == 0 and torch.isfinite(term) and all(math.isfinite(v) for v in log.values())
    term.backward()
    # the term reaches O: through its output, or (the rate term) through the latent it penalises
    assert sum(p.grad.abs().sum() for p in o.parameters() if p.grad is not None) > 0
    assert z.grad is None or torch.isfinite(z.grad).all()
    assert z.grad is not None or not adversary.reads_output
    for m in adversary.networks().values():
        assert all(p.grad is None or p.grad.abs().sum() == 0 for p in m.parameters())
    after = weights(adversary.networks())
    assert all(torch.equal(v, after[k]) for k, v in frozen_before.items()), "o_term changed the adversary"
    assert {n: m.training for n, m in adversary.networks().items()} == training


def test_the_same_seed_builds_the_same_adversary(stepped, train_set):
    a = build(stepped["name"], train_set).state()[0]
    b = build(stepped["name"], train_set).state()[0]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_state_round_trips_through_a_checkpoint(stepped, train_set, batch, tmp_path):
    adversary = stepped["adversary"]
    tensors, meta = adversary.state()
    path = tmp_path / "adversary.safetensors"
    save_checkpoint(path, tensors, {"format": "veil-checkpoint", "state": json.loads(json.dumps(meta))})
    loaded_tensors, loaded_meta = load_checkpoint(path)
    fresh = build(stepped["name"], train_set, obfuscator=adversary.ctx.obfuscator)
    fresh.load_state(loaded_tensors, loaded_meta["state"], path)
    again = fresh.state()[0]
    assert again.keys() == tensors.keys() and all(torch.equal(tensors[k], again[k]) for k in tensors)
    with torch.no_grad():
        z = adversary.ctx.obfuscator(batch.images)
        assert torch.equal(adversary.o_term(batch, z)[0], fresh.o_term(batch, z)[0])


@pytest.mark.parametrize("name", TRAINING_ADVERSARIES.names())
def test_an_unknown_option_is_a_veil_error(name, train_set):
    with pytest.raises(VeilError):
        build(name, train_set, options={"no_such_option": 1})


def test_an_unknown_adversary_is_a_veil_error():
    with pytest.raises(VeilError, match="unknown training adversary 'nope'"):
        TRAINING_ADVERSARIES.build("nope", context=None)
