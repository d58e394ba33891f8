"""What the uniform contract (test_contract.py) does not cover: every registered attacker learns
an easy case better than chance, and the early stopping, augmentation and options of the neural ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.adversaries.conftest import easy
from veil.adversaries import ATTACKERS
from veil.adversaries.attackers import TorchAttacker
from veil.errors import VeilError
from veil.evaluation.privacy_metrics import mean_accuracy, top1_accuracy

NAMES = ATTACKERS.names()


@pytest.mark.parametrize("name", NAMES)
def test_better_than_chance_on_an_easy_case(name):
    x, y, attrs = easy(48, 0)
    xt, yt, at = easy(30, 1)
    identity = ATTACKERS.build(name, epochs=5, batch_size=8).fit(x, y, "identity")
    assert top1_accuracy(identity.predict(xt), yt) > 0.6  # chance 1/3
    attributes = ATTACKERS.build(name, epochs=5, batch_size=8).fit(x, attrs, "attributes")
    assert mean_accuracy(attributes.predict(xt), at) > 0.65  # chance 0.5


def test_early_stopping_keeps_the_best_epoch_and_stops_after_patience():
    x, y, _ = easy(48, 0)
    xv, yv, _ = easy(30, 1)
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
    x, y, attrs = easy(24, 0)
    attacker = ATTACKERS.build("small_cnn", epochs=2, batch_size=8).fit(x, attrs, "attributes", (x, attrs))
    assert attacker.budget()["epochs_run"] == 2 and not attacker.budget()["early_stopping"]
    assert attacker.budget()["validation_crops"] == 24


def test_crop_augmentation_trains_and_moves_pixels():
    attacker = ATTACKERS.build("small_cnn", augment="flip+crop")
    x = torch.rand(16, 3, 48, 24)
    torch.manual_seed(0)
    out = attacker._augmenter()(x)
    assert out.shape == x.shape and not torch.allclose(out, x) and not torch.allclose(out, x.flip(-1))
    x, y, _ = easy(48, 0)
    xt, yt, _ = easy(30, 1)
    attacker = ATTACKERS.build("small_cnn", epochs=5, batch_size=8, augment="flip+crop").fit(x, y, "identity")
    assert top1_accuracy(attacker.predict(xt), yt) > 0.6


def test_neural_attackers_report_their_own_budget_unless_overridden():
    for name in NAMES:
        attacker = ATTACKERS.build(name)
        if isinstance(attacker, TorchAttacker):
            budget = attacker.budget()
            assert budget["epochs"] == type(attacker).default_epochs
            assert budget["augment"] == type(attacker).default_augment
            assert ATTACKERS.build(name, epochs=2, augment="flip+crop").budget()["epochs"] == 2


def test_a_networks_embedding_is_the_input_of_its_classifier_layer():
    x, y, _ = easy(24, 0)
    attacker = ATTACKERS.build("small_cnn", epochs=1, batch_size=8, augment="none").fit(x, y, "identity")
    emb = attacker.embed(x)
    assert emb.shape == (24, 128)  # SmallCNN's last stage width
    logits = attacker.net.head[-1](torch.from_numpy(emb))
    np.testing.assert_allclose(torch.softmax(logits, 1).detach().numpy(), attacker.predict_scores(x), atol=1e-5)


def test_options_that_make_no_sense_are_veil_errors():
    with pytest.raises(VeilError):
        ATTACKERS.build("small_cnn", augment="colour")
    with pytest.raises(VeilError):
        ATTACKERS.build("small_cnn", patience=0)
    with pytest.raises(VeilError):
        ATTACKERS.build("detector_features", head="svm")
    x, _, attrs = easy(6, 0)
    with pytest.raises(VeilError):  # validation with another attribute set
        ATTACKERS.build("hog_linear").fit(x, attrs, "attributes", (x, attrs[:, :1]))
    with pytest.raises(VeilError):  # stages past the end of YOLOv8's 10-layer backbone
        ATTACKERS.build("detector_features", layers=(4, 12)).fit(*easy(6, 0)[:2], "identity")


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
