"""Every registered attacker: one interface, real crops, better than chance when it can be,
deterministic; plus the per-attacker budgets and early stopping of the neural ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from veil.adversaries import ATTACKERS
from veil.adversaries.attackers import FAMILIES, Attacker, TorchAttacker
from veil.errors import VeilError
from veil.evaluation.privacy_metrics import mean_accuracy, top1_accuracy

NAMES = ATTACKERS.names()
SIZE = (32, 64)  # (w, h): the fast preset's crop size


def test_at_least_eight_attackers_from_four_families():
    assert len(NAMES) >= 8
    families = {ATTACKERS.build(n).family for n in NAMES}
    assert families == set(FAMILIES)


@pytest.fixture(scope="module")
def real_crops(dataset):
    """Crops of 3 pseudo-identities of real vtest frames, with pseudo-attributes."""
    from veil.data.attributes import pseudo_attributes
    from veil.data.crops import cut_crops
    from veil.data.dataset import FrameDataset
    from veil.data.identities import build_identities

    ds = FrameDataset(dataset, "test")
    crops = build_identities(ds, min_track=8)
    crops = crops.subset(np.isin(crops.identity, [0, 1, 2]))
    attrs = pseudo_attributes(ds.images, crops).values[:, [0, 8, 16]]  # upper_dark, lower_dark, upper_lighter
    keep = np.arange(0, len(crops), max(1, len(crops) // 24))[:24]  # a tiny set keeps the test fast
    return cut_crops(ds.images, crops, SIZE)[keep], crops.identity[keep], attrs[keep]


def _easy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Separable 24x48 crops: class 0 wears red, class 1 blue, class 2 green; attribute 0 = bright top."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    colours = np.array([[200, 30, 30], [30, 30, 200], [30, 180, 30]])
    x = rng.integers(0, 60, (n, 3, 48, 24)).astype(np.int64)
    x[:, :, 8:32, 4:20] += colours[y][:, :, None, None]
    bright = rng.integers(0, 2, n)
    x[:, :, :8] += 150 * bright[:, None, None, None]
    attrs = np.stack([bright, (y == 1).astype(int)], 1)
    return np.clip(x, 0, 255).astype(np.uint8), y, attrs


@pytest.mark.parametrize("name", NAMES)
def test_fit_predict_shapes_on_real_crops(name, real_crops):
    x, ids, attrs = real_crops
    attacker = ATTACKERS.build(name, epochs=1)
    assert isinstance(attacker, Attacker)
    pred = attacker.fit(x, ids + 10, "identity").predict(torch.from_numpy(x[:7]))
    assert pred.shape == (7,)
    assert set(pred) <= set(ids + 10)  # predictions are in the caller's label space
    pred = ATTACKERS.build(name, epochs=1).fit(x, attrs, "attributes").predict(x[:5])
    assert pred.shape == (5, 3) and set(np.unique(pred)) <= {0, 1}


@pytest.mark.parametrize("name", NAMES)
def test_better_than_chance_on_an_easy_case(name):
    x, y, attrs = _easy(48, 0)
    xt, yt, at = _easy(30, 1)
    identity = ATTACKERS.build(name, epochs=5, batch_size=8).fit(x, y, "identity")
    assert top1_accuracy(identity.predict(xt), yt) > 0.6  # chance 1/3
    attributes = ATTACKERS.build(name, epochs=5, batch_size=8).fit(x, attrs, "attributes")
    assert mean_accuracy(attributes.predict(xt), at) > 0.65  # chance 0.5


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_predictions(name):
    x, y, _ = _easy(24, 2)
    xt, _, _ = _easy(30, 3)
    preds = [ATTACKERS.build(name, epochs=1, batch_size=8, seed=7).fit(x, y, "identity").predict(xt)
             for _ in range(2)]
    np.testing.assert_array_equal(preds[0], preds[1])


@pytest.mark.parametrize("name", NAMES)
def test_budget_reports_the_settings_and_the_family(name):
    attacker = ATTACKERS.build(name, seed=3)
    budget = attacker.budget()
    assert budget["attacker"] == name and budget["family"] in FAMILIES and budget["seed"] == 3
    if isinstance(attacker, TorchAttacker):  # the class defaults, unless the caller overrides them
        assert budget["epochs"] == type(attacker).default_epochs and budget["augment"] == type(attacker).default_augment
        assert ATTACKERS.build(name, epochs=2, augment="flip+crop").budget()["epochs"] == 2


def test_early_stopping_keeps_the_best_epoch_and_stops_after_patience():
    x, y, _ = _easy(48, 0)
    xv, yv, _ = _easy(30, 1)
    attacker = ATTACKERS.build("small_cnn", epochs=6, batch_size=8, patience=2).fit(x, y, "identity", (xv, yv))
    budget = attacker.budget()
    assert budget["early_stopping"] and budget["validation_crops"] == 30
    assert 1 <= budget["best_epoch"] <= budget["epochs_run"] <= 6
    # the kept weights are the best epoch's: they score exactly what that epoch scored
    assert top1_accuracy(attacker.predict(xv), yv) == pytest.approx(budget["best_validation"])
    # a validation set of identities never trained on scores 0 every epoch: stop after 1 + patience
    stuck = ATTACKERS.build("small_cnn", epochs=6, batch_size=8, patience=2).fit(x, y, "identity", (xv, yv + 10))
    assert stuck.budget()["epochs_run"] == 3 and stuck.budget()["best_epoch"] == 1


def test_without_patience_validation_is_recorded_but_epochs_are_fixed():
    x, y, attrs = _easy(24, 0)
    attacker = ATTACKERS.build("small_cnn", epochs=2, batch_size=8).fit(x, attrs, "attributes", (x, attrs))
    assert attacker.budget()["epochs_run"] == 2 and not attacker.budget()["early_stopping"]
    assert attacker.budget()["validation_crops"] == 24


def test_crop_augmentation_trains_and_moves_pixels():
    attacker = ATTACKERS.build("small_cnn", augment="flip+crop")
    x = torch.rand(16, 3, 48, 24)
    torch.manual_seed(0)
    out = attacker._augmenter()(x)
    assert out.shape == x.shape and not torch.allclose(out, x) and not torch.allclose(out, x.flip(-1))
    x, y, _ = _easy(48, 0)
    xt, yt, _ = _easy(30, 1)
    attacker = ATTACKERS.build("small_cnn", epochs=5, batch_size=8, augment="flip+crop").fit(x, y, "identity")
    assert top1_accuracy(attacker.predict(xt), yt) > 0.6


def test_interface_rejects_bad_input():
    attacker = ATTACKERS.build("hog_linear")
    with pytest.raises(VeilError):
        attacker.predict(np.zeros((1, 3, 64, 32), np.uint8))
    with pytest.raises(VeilError):
        attacker.fit(np.zeros((2, 3, 64, 32), np.float32), [0, 1], "identity")
    with pytest.raises(VeilError):
        attacker.fit(np.zeros((2, 3, 64, 32), np.uint8), [0, 1], "gender")
    with pytest.raises(VeilError):
        ATTACKERS.build("small_cnn", augment="colour")
    with pytest.raises(VeilError):
        ATTACKERS.build("small_cnn", patience=0)
    x, _, attrs = _easy(6, 0)
    with pytest.raises(VeilError):  # validation with another attribute set
        ATTACKERS.build("hog_linear").fit(x, attrs, "attributes", (x, attrs[:, :1]))


def test_efficientnet_lite0_pretrained_weights_are_imagenet_features():
    """Strict key match, and the bundled cat photo is classified as a cat (ImageNet 281-285)."""
    import torch.nn.functional as F
    from skimage import data

    from veil.adversaries.attackers.efficientnet_lite0 import MEAN, STD, efficientnet_lite0_pretrained

    model = efficientnet_lite0_pretrained().eval()  # load_state_dict(strict=True) inside
    img = torch.from_numpy(data.chelsea()).permute(2, 0, 1)[None].float() / 255
    img = F.interpolate(img, size=(224, 224), mode="bilinear", antialias=True)
    img = (img - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        top = int(model(img).argmax())
    assert 281 <= top <= 285
