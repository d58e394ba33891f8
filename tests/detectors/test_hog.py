"""OpenCV's HOG people detector on real vtest frames: it finds the people YOLO finds, its scores
are the SVM margin through a logistic, and it refuses to train an obfuscator."""

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from tests.frames import vtest_frames
from veil.detectors import DETECTORS
from veil.detectors.fingerprint import fingerprint
from veil.detectors.hog import HogDetector, logistic
from veil.errors import VeilError


@pytest.fixture(scope="module")
def hog():
    return DETECTORS.build("hog")


@pytest.fixture(scope="module")
def frames(vtest):
    return vtest_frames(vtest, [0, 200])


def test_hog_finds_the_people_yolo_finds_on_vtest(hog, yolo, frames):
    matched_hog = matched_yolo = n_hog = n_yolo = 0
    for found, reference in zip(hog.detect(frames, conf=hog.pseudo_label_threshold),
                                yolo.detect(frames, conf=yolo.pseudo_label_threshold)):
        assert len(found.boxes) >= 3 and len(reference.boxes) >= 3
        assert found.boxes[:, 2].max() <= 640 and found.boxes[:, 3].max() <= 480 and found.boxes.min() >= 0
        iou = box_iou(found.boxes, reference.boxes)
        matched_hog += int((iou.max(1).values >= 0.5).sum())
        matched_yolo += int((iou.max(0).values >= 0.5).sum())
        n_hog, n_yolo = n_hog + len(found.boxes), n_yolo + len(reference.boxes)
    # nearly every confident HOG box is one of YOLO's people (0.91 over 40 frames in
    # bench/results/hog-threshold.json), and HOG finds a fair share of them (0.56 there)
    assert matched_hog / n_hog >= 0.8 and matched_yolo / n_yolo >= 0.4


def test_scores_respect_the_threshold_and_come_from_the_svm_margin(hog, frames):
    low = hog.detect(frames[:1], conf=0.0)[0]
    high = hog.detect(frames[:1], conf=hog.pseudo_label_threshold)[0]
    assert len(low.scores) > len(high.scores) > 0
    assert (high.scores >= hog.pseudo_label_threshold).all() and (high.scores <= 1).all()
    # OpenCV searches at margin > 0 only: every score is above the logistic's midpoint
    assert (low.scores > 0.5).all()
    kept = low.scores >= hog.pseudo_label_threshold
    assert torch.equal(low.boxes[kept], high.boxes)
    # the mapping: margin 0 -> 0.5, monotone, margin 1 -> the pseudo-label threshold
    assert logistic(np.array([0.0]))[0] == 0.5 and logistic(np.array([1.0]))[0] == pytest.approx(0.731, abs=1e-3)
    assert hog.pseudo_label_threshold == pytest.approx(logistic(np.array([1.0]))[0], abs=0.01)


def test_an_empty_grey_frame_has_no_people(hog):
    assert all(len(d.boxes) == 0 for d in hog.detect(torch.full((2, 3, 240, 320), 0.5), conf=0.0))


def test_hog_cannot_train_an_obfuscator(hog, frames):
    assert hog.trainable is False
    with pytest.raises(VeilError, match="cannot train"):
        hog.loss(frames[:1], [])


def test_weights_choose_the_svm_and_bad_ones_are_veil_errors(hog, tmp_path):
    from safetensors.torch import save_file

    daimler = DETECTORS.build("hog", weights="daimler")
    assert fingerprint(daimler) != fingerprint(hog) and daimler.spec["weights"] == "daimler"
    own = tmp_path / "svm.safetensors"
    save_file({"svm": hog.model.svm.clone()}, str(own))
    assert fingerprint(DETECTORS.build("hog", weights=str(own))) == fingerprint(hog)
    save_file({"svm": torch.zeros(10)}, str(tmp_path / "short.safetensors"))
    with pytest.raises(VeilError, match="3781"):
        DETECTORS.build("hog", weights=str(tmp_path / "short.safetensors"))
    (tmp_path / "junk.safetensors").write_text("not a tensor file")
    with pytest.raises(VeilError, match="cannot read"):
        DETECTORS.build("hog", weights=str(tmp_path / "junk.safetensors"))
    with pytest.raises(VeilError, match="upscale"):
        HogDetector(hog.model.svm.numpy(), upscale=0)
