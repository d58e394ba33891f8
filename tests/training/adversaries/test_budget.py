"""wu-2018's budget adversary: its loss by hand, crops that carry O's gradient, real restarts."""

import contextlib
import math

import pytest
import torch

from veil.data.dataset import FrameDataset
from veil.obfuscators import OBFUSCATORS
from veil.training.adversaries import AdversaryContext, Batch
from veil.training.adversaries.budget import BudgetAdversary, cut, ensemble_budget_loss, negative_entropy
from veil.training.config import TrainConfig

TINY = {"models": 2, "architectures": ["mobilenet_v2", "shufflenet_v2"], "width": 0.1, "crop_height": 16,
        "crop_width": 8, "max_passes": 2, "restart_batch": 64, "heldout_every": 0}


def test_negative_entropy_and_the_max_over_the_ensemble_by_hand():
    uniform_and_skewed = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])  # p = (1/2, 1/2) and (3/4, 1/4)
    by_hand = (2 * 0.5 * math.log(0.5) + 0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / 2
    assert negative_entropy(uniform_and_skewed).item() == pytest.approx(by_hand, abs=1e-6)  # -0.627741

    confident = torch.tensor([[10.0, -10.0]], requires_grad=True)  # p ~ (1, 0): negative entropy ~ 0
    unsure = torch.zeros(1, 4, requires_grad=True)  # uniform over 4: -log 4
    term, each = ensemble_budget_loss([uniform_and_skewed, confident, unsure])
    assert each.tolist() == pytest.approx([by_hand, 0.0, -math.log(4)], abs=1e-6)
    assert term.item() == pytest.approx(0.0, abs=1e-6)  # eq. 3: the most confident model's
    term.backward()
    assert unsure.grad.abs().sum() == 0 and confident.grad.abs().sum() > 0  # only that model is pushed


def test_gradients_reach_o_through_crops_that_follow_the_random_crop_and_flip():
    torch.manual_seed(0)
    obfuscator = OBFUSCATORS.build("mobilenet_ae", width=0.25)
    x = torch.rand(1, 3, 64, 96)
    batch = Batch(x, [], frames=[0], offsets=[(10, 5)], flipped=[True])
    # a person at x 20-40, y 10-50 of the original frame; the crop starts at (10, 5), then mirrors
    boxes, keep = batch.to_crop_coordinates(0, torch.tensor([[20.0, 10, 40, 50]]))
    assert keep.tolist() == [True] and boxes.tolist() == [[66.0, 5, 86, 45]]
    z = obfuscator(x)
    z.retain_grad()
    classifier = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 8, 5))
    negative_entropy(classifier(cut(z, [boxes], (16, 8)))).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in obfuscator.parameters())
    assert sum(p.grad.abs().sum() for p in obfuscator.parameters()) > 0
    inside = z.grad[..., 5:45, 66:86].abs().sum()
    assert inside > 0 and z.grad.abs().sum() == pytest.approx(inside.item(), rel=1e-6)  # nothing outside the box


@pytest.fixture(scope="module")
def adversary(dataset):
    torch.manual_seed(0)
    train = FrameDataset(dataset, "train")
    obfuscator = OBFUSCATORS.build("mobilenet_ae", width=0.25).train()
    context = AdversaryContext(TrainConfig(), torch.device("cpu"), train, obfuscator, contextlib.nullcontext)
    return BudgetAdversary(context, TINY)


def test_pseudo_identities_come_from_tracks_of_the_training_split(adversary):
    labels = adversary.labels
    assert labels.num_classes >= 2
    ids = torch.cat(labels.identity)
    held = ~torch.cat(labels.train)
    assert set(ids.tolist()) == set(range(labels.num_classes)) and held.any() and (~held).any()
    assert adversary.architecture(0)[0] != adversary.architecture(1)[0]  # an ensemble of different models


def test_restart_reinitialises_weights_and_its_frozen_phase_leaves_o_unchanged(adversary):
    o = adversary.ctx.obfuscator
    o_before = {k: v.clone() for k, v in o.state_dict().items()}
    before = {k: v.clone() for k, v in adversary.models[1].state_dict().items()}
    adversary.reinitialise(1)
    after = adversary.models[1].state_dict()
    fresh = adversary._fresh(1).state_dict()  # what a random initialisation with this restart's seed draws
    assert all(torch.equal(after[k], fresh[k]) for k in after)
    weights = [k for k, v in before.items() if v.ndim > 1]  # conv and linear kernels (BN starts at 1, 0)
    assert all(not torch.equal(before[k], after[k]) for k in weights)

    trained_from = {k: v.clone() for k, v in after.items()}
    event = adversary.fit_frozen(1, "test")
    assert event["model"] == 1 and event["reason"] == "test" and 1 <= event["passes"] <= TINY["max_passes"]
    # the accuracy it reports is the restarted model's on the held-back crops, as measured again now
    heldout = adversary.obfuscated_crops()["heldout"]
    assert event["heldout_acc"] == pytest.approx(adversary.accuracy(1, *heldout), abs=1e-4)
    assert adversary.last_heldout[1] == pytest.approx(event["heldout_acc"], abs=1e-4) and event in adversary.events
    assert adversary.restarts[1] == 2  # reinitialise above, and again inside fit_frozen
    assert any(not torch.equal(trained_from[k], v) for k, v in adversary.models[1].state_dict().items())
    assert all(torch.equal(o_before[k], v) for k, v in o.state_dict().items()), "O changed while frozen"
    assert o.training and all(p.requires_grad for p in o.parameters())
