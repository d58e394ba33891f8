"""One contract for every registered attacker, old or new: a new member of ATTACKERS gets these
tests with no new test code. On real vtest crops, with tiny budgets: fit and predict both tasks,
identity scores whose argmax is the prediction, an embedding, the same predictions under the same
seed (and under any seed when it declares itself deterministic, as the audit then fits it once),
a budget that names it, and bad input refused with a VeilError."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from veil.adversaries import ATTACKERS
from veil.adversaries.attackers import FAMILIES, Attacker
from veil.errors import VeilError

NAMES = ATTACKERS.names()
TINY = {"epochs": 1, "batch_size": 8}  # the smallest training budgets (attackers without epochs ignore them)


def _build(name: str, seed: int = 3) -> Attacker:
    return ATTACKERS.build(name, seed=seed, **TINY)


def test_every_family_has_an_attacker_and_every_attacker_a_known_family():
    families = {_build(n).family for n in NAMES}
    assert families == set(FAMILIES)  # a family without a member would be reported but never attacked


@pytest.mark.parametrize("name", NAMES)
def test_identity_scores_embedding_and_seed(name, real_crops):
    x, ids, x_test = real_crops["x"], real_crops["identity"] + 10, real_crops["x_test"]
    attacker = _build(name)
    assert isinstance(attacker, Attacker)
    budget = attacker.budget()
    assert budget["attacker"] == name and budget["family"] in FAMILIES and budget["seed"] == 3
    attacker.fit(x, ids, "identity")
    pred = attacker.predict(torch.from_numpy(x_test))  # tensors are accepted as well as arrays
    assert pred.shape == (len(x_test),) and set(pred) <= set(ids)  # in the caller's label space
    np.testing.assert_array_equal(attacker.classes_, np.unique(ids))
    scores = attacker.predict_scores(x_test)
    assert scores.shape == (len(x_test), 3) and scores.dtype == np.float32
    assert (scores >= 0).all() and np.allclose(scores.sum(1), 1, atol=1e-4)  # probabilities
    np.testing.assert_array_equal(attacker.classes_[scores.argmax(1)], pred)
    emb = attacker.embed(x_test)
    assert emb.ndim == 2 and len(emb) == len(x_test) and emb.dtype == np.float32 and np.isfinite(emb).all()
    assert attacker.predict(x_test[:0]).shape == (0,) and attacker.predict_scores(x_test[:0]).shape == (0, 3)
    # same seed, same data: the same predictions and scores
    again = _build(name).fit(x, ids, "identity")
    np.testing.assert_array_equal(again.predict(x_test), pred)
    np.testing.assert_allclose(again.predict_scores(x_test), scores, atol=1e-6)
    if attacker.deterministic:  # the audit fits it once for every seed: another seed must change nothing
        np.testing.assert_allclose(_build(name, seed=11).fit(x, ids, "identity").predict_scores(x_test), scores,
                                   atol=1e-6)
    # two identities: still one column per class (a binary model's one decision value is split in two)
    two = ids != ids.max()
    binary = _build(name).fit(x[two], ids[two], "identity")
    s2 = binary.predict_scores(x_test)
    assert s2.shape == (len(x_test), 2)
    np.testing.assert_array_equal(binary.classes_[s2.argmax(1)], binary.predict(x_test))


@pytest.mark.parametrize("name", NAMES)
def test_attributes(name, real_crops):
    x, attrs, x_test = real_crops["x"], real_crops["attributes"], real_crops["x_test"]
    attacker = _build(name).fit(x, attrs, "attributes")
    pred = attacker.predict(x_test)
    assert pred.shape == (len(x_test), attrs.shape[1]) and pred.dtype == np.uint8 and set(np.unique(pred)) <= {0, 1}
    np.testing.assert_array_equal(_build(name).fit(x, attrs, "attributes").predict(x_test), pred)
    with pytest.raises(VeilError):  # identity scores of an attribute model do not exist
        attacker.predict_scores(x_test)


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_is_a_veil_error(name, real_crops):
    x, ids = real_crops["x"], real_crops["identity"]
    fresh = _build(name)
    for call in (fresh.predict, fresh.predict_scores, fresh.embed):  # before fit
        with pytest.raises(VeilError):
            call(x)
    bad_fits = [
        (x.astype(np.float32), ids, "identity"),  # not uint8
        (x.transpose(0, 2, 3, 1), ids, "identity"),  # channels last
        (x[0], ids[:1], "identity"),  # one crop, not a batch
        (x[:1], ids[:1], "identity"),  # nothing to learn from
        (x, ids[:-1], "identity"),  # one label short
        (x, np.stack([ids, ids], 1), "identity"),  # identity labels must be (N,)
        (x, ids, "gender"),  # unknown task
        (x, ids, "attributes"),  # attributes must be (N, M)
    ]
    for crops, labels, task in bad_fits:
        with pytest.raises(VeilError):
            _build(name).fit(crops, labels, task)
    fitted = _build(name).fit(x, ids, "identity")
    for crops in (x[:, :, :, :-2], x.astype(np.int64), x[:, :2]):  # another size, dtype, channel count
        for call in (fitted.predict, fitted.predict_scores, fitted.embed):
            with pytest.raises(VeilError):
                call(crops)
