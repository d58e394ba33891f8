"""The boxes-only floor: identity from box geometry alone, scored like the pixel attackers."""

import numpy as np
import pytest

from veil.audit.attacks import summarise
from veil.audit.config import AuditConfig
from veil.audit.geometry import ATTACKERS, box_features, box_predictions
from veil.audit.labels import IdentityTask
from veil.audit.verdict import judge
from veil.data.crops import CropSet


def test_box_features_are_centre_and_size_as_fractions_of_the_frame():
    f = box_features(np.array([[64, 48, 128, 240]]), (640, 480))
    assert f[0].tolist() == pytest.approx([0.15, 0.3, 0.1, 0.4])


def task(boxes: np.ndarray, identity: np.ndarray, split: np.ndarray) -> IdentityTask:
    n = len(identity)
    crops = CropSet(np.arange(n), boxes.astype(np.float32), identity, split, np.arange(n) / 5.0)
    return IdentityTask("reid", crops, {})


def walkers(rng, people: int, crops: int, own_lane: bool) -> IdentityTask:
    """``people`` walking for ``crops`` frames; the first 60% of each track is attacker-train.
    own_lane: each person keeps their own height in the frame and size (as on a real street);
    otherwise every box is drawn at random, whoever it is."""
    ids, boxes, split = [], [], []
    for p in range(people):
        lane_y, size = 60 + 40 * p, 30 + 10 * p
        for k in range(crops):
            x = rng.uniform(0, 500)
            y, h = (lane_y, size) if own_lane else (rng.uniform(40, 400), rng.uniform(30, 130))
            y, h = y + rng.normal(0, 2), h + rng.normal(0, 1)
            boxes.append([x, y, x + h / 2.5, y + h])
            ids.append(p)
            split.append("train" if k < 0.6 * crops else "test")
    return task(np.array(boxes), np.array(ids), np.array(split))


def test_geometry_identifies_people_who_keep_their_lane_and_not_random_boxes():
    rng = np.random.default_rng(0)
    config = AuditConfig(seeds=2, bootstrap=200)
    lanes = summarise(box_predictions(walkers(rng, 8, 30, True), (640, 480), config), config)
    noise = summarise(box_predictions(walkers(rng, 8, 30, False), (640, 480), config), config)
    assert set(lanes.per_attacker) == set(ATTACKERS)
    assert lanes.worst_case.value > 0.9  # the boxes alone tell these people apart
    assert noise.worst_case.value < 0.4  # chance is 1/8; the best of two attackers on noise stays near it
    # both are deterministic: every seed repeats one fit
    assert lanes.worst_case.per_seed[0] == lanes.worst_case.per_seed[1]
    # the other identity figures exist, as for the pixel attackers (rank-1, mAP, AUC, video)
    assert {"rank1", "mAP", "auc", "video_top1"} <= set(lanes.figures)
    assert lanes.figures["auc"].value > 0.9
    # same test crops, same resamples: the verdict pairs them with any method on this task
    outcome, d = judge(noise.worst_case, lanes.worst_case)
    assert d is not None and outcome == "better"


def test_only_attacker_train_crops_are_fitted():
    # a test crop placed exactly on another person's training boxes is assigned to that person:
    # the test labels never reach the fit
    rng = np.random.default_rng(1)
    t = walkers(rng, 4, 20, True)
    test = np.flatnonzero(t.crops.split == "test")
    t.crops.box[test] = t.crops.box[t.crops.identity == 3][0]  # every test crop sits in person 3's lane
    config = AuditConfig(seeds=1, bootstrap=50)
    p = box_predictions(t, (640, 480), config)
    for name in ATTACKERS:
        assert (p.pred[name][0] == 3).all()


def test_fusion_adds_the_boxes_evidence_to_every_pixel_attacker():
    # pixels that carry nothing (uniform scores) plus boxes that identify: the fused attacker
    # reaches the boxes' accuracy; pixels that identify alone stay right when fused
    from veil.audit.attacks import FUSED, Predictions, fuse
    from veil.audit.figures import Scores

    rng = np.random.default_rng(2)
    t = walkers(rng, 6, 30, True)
    config = AuditConfig(seeds=2, bootstrap=100)
    boxes = box_predictions(t, (640, 480), config)
    train, test = t.crops.split == "train", t.crops.split == "test"
    classes = np.unique(t.crops.identity[train])
    truth, gallery = t.crops.identity[test], t.crops.identity[train]

    def onehot(ids):
        return (ids[:, None] == classes[None, :]).astype(float) * 0.9 + 0.1 / len(classes)

    blind = Scores(np.full((test.sum(), 6), 1 / 6), np.full((train.sum(), 6), 1 / 6), classes)
    sharp = Scores(onehot(truth), onehot(gallery), classes)
    pixels = Predictions("identity", truth, truth, {"blind": [classes[0:1].repeat(len(truth))] * 2,
                                                    "sharp": [truth] * 2},
                         {"blind": {}, "sharp": {}}, {"blind": [blind] * 2, "sharp": [sharp] * 2}, gallery)
    fused = fuse(pixels, boxes)
    assert set(fused.pred) == {"blind", "sharp", "blind" + FUSED, "sharp" + FUSED}
    top1 = {n: float(np.mean(fused.pred[n][0] == truth)) for n in fused.pred}
    assert top1["blind"] < 0.3 and top1["blind" + FUSED] > 0.9  # the boxes' evidence came in
    assert top1["sharp" + FUSED] == 1.0
    result = summarise(fused, config)  # fused attackers are scored like any other, figures included
    assert result.worst_case.value == 1.0 and "auc" in result.figures
    # without scores (an attacker that gives none) nothing is fused
    assert fuse(Predictions("identity", truth, truth, {"x": [truth]}, {"x": {}}), boxes).pred.keys() == {"x"}


def test_the_attribute_floor_finds_attributes_that_belong_to_a_place_and_not_random_ones():
    # the attribute floor: "upper" follows the person's lane (a place in the frame, as a coloured floor
    # behind the legs would), "coin" is a coin flip per crop; one attribute is constant in training
    from veil.audit.geometry import attribute_predictions
    from veil.audit.labels import AttributeTask
    from veil.data.attributes import AttributeTable

    rng = np.random.default_rng(3)
    t = walkers(rng, 8, 40, True)
    n = len(t.crops.identity)
    values = np.stack([(t.crops.identity >= 4).astype(int), rng.integers(0, 2, n), np.zeros(n, int)], 1)
    attributes = AttributeTask(t.crops, AttributeTable(["upper", "coin", "never"], values), "pseudo",
                               t.crops.identity[t.crops.split == "test"], [])
    config = AuditConfig(seeds=2, bootstrap=200)
    p = attribute_predictions(attributes, (640, 480), config)
    assert set(p.pred) == set(ATTACKERS) and p.pred["box_knn"][0].shape == (len(p.truth), 3)
    result = summarise(p, config, ["upper", "coin", "never"])
    assert result.per_attribute["upper"] > 0.95  # the boxes alone predict an attribute of a place
    assert 0.3 < result.per_attribute["coin"] < 0.7  # and nothing about a coin flip
    assert "never" not in result.per_attribute  # no positive test crop: undefined, left out as mA leaves it
    assert (p.pred["box_logistic"][0][:, 2] == 0).all()  # the constant is predicted as it was seen


def test_the_attribute_floor_joins_the_pixel_attackers_and_the_worst_case_never_reads_below_it():
    from veil.audit.attacks import Predictions, with_floor
    from veil.audit.geometry import attribute_predictions
    from veil.audit.labels import AttributeTask
    from veil.data.attributes import AttributeTable
    from veil.errors import VeilError

    rng = np.random.default_rng(4)
    t = walkers(rng, 8, 40, True)
    n = len(t.crops.identity)
    test = t.crops.split == "test"
    values = np.stack([(t.crops.identity >= 4).astype(int), rng.integers(0, 2, n)], 1)
    attributes = AttributeTask(t.crops, AttributeTable(["upper", "coin"], values), "pseudo", t.crops.identity[test], [])
    config = AuditConfig(seeds=2, bootstrap=200)
    floor = attribute_predictions(attributes, (640, 480), config)
    truth = values[test]
    blind = np.zeros_like(truth)  # a pixel attacker that learned nothing: predicts 0 everywhere
    pixels = Predictions("attributes", truth, floor.groups, {"blind": [blind, blind]}, {"blind": {}})
    joined = with_floor(pixels, floor)
    assert set(joined.pred) == {"blind", *ATTACKERS}
    alone, both = summarise(pixels, config), summarise(joined, config)
    assert alone.worst_case.value == pytest.approx(0.5)  # balanced accuracy of a constant
    assert both.worst_case.value >= summarise(floor, config).worst_case.value > 0.7
    assert both.worst_case.paired is not None and both.worst_case.paired.resample == alone.worst_case.paired.resample
    with pytest.raises(VeilError, match="other crops"):  # other crops cannot be joined
        with_floor(Predictions("attributes", truth[:-1], floor.groups[:-1], {"b": [blind[:-1]] * 2}, {"b": {}}), floor)
    with pytest.raises(VeilError, match="both pixel and geometry"):
        with_floor(Predictions("attributes", truth, floor.groups, {"box_knn": [blind] * 2}, {}), floor)
