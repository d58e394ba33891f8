"""Every registered attacker: one interface, real crops, better than chance when it can be."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from veil.adversaries import ATTACKERS
from veil.adversaries.attackers import Attacker
from veil.errors import VeilError
from veil.evaluation.privacy_metrics import mean_accuracy, top1_accuracy

NAMES = ATTACKERS.names()
SIZE = (32, 64)  # (w, h): the fast preset's crop size


def test_at_least_five_attackers_are_registered():
    assert {"small_cnn", "resnet18", "mobilenetv3_small", "efficientnet_lite0", "hog_linear"} <= set(NAMES)


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


def test_interface_rejects_bad_input():
    attacker = ATTACKERS.build("hog_linear")
    with pytest.raises(VeilError):
        attacker.predict(np.zeros((1, 3, 64, 32), np.uint8))
    with pytest.raises(VeilError):
        attacker.fit(np.zeros((2, 3, 64, 32), np.float32), [0, 1], "identity")
    with pytest.raises(VeilError):
        attacker.fit(np.zeros((2, 3, 64, 32), np.uint8), [0, 1], "gender")


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
