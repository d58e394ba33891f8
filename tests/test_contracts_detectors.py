"""The detector contract (veil.detectors.base), checked on every registered detector.

Parametrised over ``DETECTORS.names()``, so a new adapter gets every check with no new test code:
build from the registry, frozen weights, detection on real vtest frames (box format, score range,
the ``conf`` cut, determinism), the loss with gradients to the input and not the weights where the
detector is ``trainable`` (a clear VeilError where it is not), and a bad weights path -> VeilError.
"""

import pytest
import torch

from tests.frames import vtest_frames
from veil.detectors import DETECTORS, Detections, FrozenDetector, Target
from veil.detectors.torchvision_detectors import _BUILDERS as TORCHVISION
from veil.errors import VeilError

# torchvision's default weights would be downloaded: the contract checks its adapters with random
# weights, a small internal resize and few region proposals (random weights propose boxes
# everywhere: a full 1000 per image made one model take a minute); every other detector is built
# with its defaults.
SMALL = {"min_size": 160, "max_size": 224}
FEW_PROPOSALS = {"rpn_pre_nms_top_n_test": 100, "rpn_post_nms_top_n_test": 50, "rpn_pre_nms_top_n_train": 100,
                 "rpn_post_nms_top_n_train": 50, "box_batch_size_per_image": 32}


def _torchvision_args(name: str) -> dict:
    args: dict = {"weights": None}
    if not (name.startswith("ssd") or "320" in name):
        args.update(SMALL)
    if name.startswith("fasterrcnn"):
        args.update(FEW_PROPOSALS)
    return args


BUILD_ARGS = {name: _torchvision_args(name) for name in TORCHVISION}


@pytest.fixture(scope="module", params=DETECTORS.names())
def detector(request, yolo):
    torch.manual_seed(0)
    if request.param == "yolo":
        return yolo  # the session's, built once
    return DETECTORS.build(request.param, **BUILD_ARGS.get(request.param, {}))


@pytest.fixture(scope="module")
def frames(vtest):
    """Two real vtest frames at the datasets' 640x480, and a third at an odd size."""
    return vtest_frames(vtest, [0, 100]), vtest_frames(vtest, [50], size=(331, 251))


def test_builds_frozen_and_describes_itself(detector, request):
    name = request.node.callspec.params["detector"]
    assert isinstance(detector, FrozenDetector) and detector.spec["name"] == name
    assert 0.0 < detector.pseudo_label_threshold <= 1.0 and isinstance(detector.trainable, bool)
    assert all(not p.requires_grad for p in detector.parameters())
    detector.train()
    assert not detector.training and not any(m.training for m in detector.modules())


def _check_format(found: list[Detections], images: torch.Tensor, conf: float) -> None:
    h, w = images.shape[-2:]
    assert len(found) == len(images) and all(isinstance(d, Detections) for d in found)
    for d in found:
        n = len(d.boxes)
        assert d.boxes.shape == (n, 4) and d.boxes.dtype == torch.float32
        assert d.scores.shape == d.labels.shape == (n,) and d.labels.dtype == torch.int64
        assert ((d.scores >= conf) & (d.scores <= 1)).all()
        if n:  # xyxy inside the input image
            assert (d.boxes[:, 2] >= d.boxes[:, 0]).all() and (d.boxes[:, 3] >= d.boxes[:, 1]).all()
            assert d.boxes.min() >= 0 and (d.boxes[:, 2] <= w + 1).all() and (d.boxes[:, 3] <= h + 1).all()


@pytest.fixture(scope="module")
def found(detector, frames):
    """Detections on the frames at a low ``conf`` and at the pseudo-label threshold (twice)."""
    images, odd = frames
    cut = detector.pseudo_label_threshold
    return {"low": detector.detect(images, conf=0.001), "high": detector.detect(images, conf=cut),
            "again": detector.detect(images[:1], conf=cut), "odd": detector.detect(odd, conf=0.001)}


def test_detects_on_real_frames_in_input_coordinates(detector, frames, found):
    images, odd = frames
    _check_format(found["low"], images, 0.001)
    _check_format(found["odd"], odd, 0.001)
    _check_format(found["high"], images, detector.pseudo_label_threshold)


def test_conf_keeps_exactly_the_detections_above_it_and_batching_changes_nothing(detector, found):
    cut = detector.pseudo_label_threshold
    again = found["again"][0]
    # the same frame alone gives what it gave in a batch (up to batched float arithmetic)
    torch.testing.assert_close(found["high"][0].boxes, again.boxes, atol=1e-2, rtol=0)
    torch.testing.assert_close(found["high"][0].scores, again.scores, atol=1e-4, rtol=0)
    # so a detection pass at a low confidence, cut, stands for one at the cut (an audit makes one pass)
    for lo, hi in zip(found["low"], found["high"]):
        kept = lo.above(cut)
        a, b = kept.scores.argsort(descending=True), hi.scores.argsort(descending=True)
        assert kept.scores[a].tolist() == pytest.approx(hi.scores[b].tolist(), abs=1e-5)
        torch.testing.assert_close(kept.boxes[a], hi.boxes[b], atol=1e-3, rtol=0)


def test_loss_gradient_reaches_the_image_and_not_the_weights(detector, frames):
    images = frames[0][:, :, :192, :256].clone().requires_grad_()
    targets = [Target(torch.tensor([[40.0, 30.0, 90.0, 170.0]]), torch.tensor([0])),
               Target(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))]
    if not detector.trainable:
        with pytest.raises(VeilError, match="cannot train"):
            detector.loss(images, targets)
        return
    bn_before = {k: v.clone() for k, v in detector.state_dict().items() if "running" in k}
    loss = detector.loss(images, targets)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert images.grad is not None and images.grad.abs().sum() > 0 and torch.isfinite(images.grad).all()
    assert all(p.grad is None for p in detector.parameters())
    after = detector.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in bn_before.items())


@pytest.mark.parametrize("name", DETECTORS.names())
def test_a_missing_weights_file_is_a_veil_error(name, tmp_path):
    with pytest.raises(VeilError, match="not found"):
        DETECTORS.build(name, weights=str(tmp_path / "missing.pt"))


def test_an_unknown_detector_is_a_veil_error():
    with pytest.raises(VeilError, match="unknown detector 'nope'"):
        DETECTORS.build("nope")
