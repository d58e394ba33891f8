"""Every registered detector, checked the same way: smoke, shapes, gradient to the input, frozen."""

import pytest
import torch

from veil.detectors import DETECTORS, Detections, Target

TORCHVISION = [n for n in DETECTORS.names() if n != "yolo"]


def _build(name: str):
    if name == "yolo":
        return DETECTORS.build("yolo")
    # Random weights (never a download); a small internal resize keeps the test fast.
    kwargs = {} if name.startswith("ssd") or "320" in name else {"min_size": 256, "max_size": 320}
    return DETECTORS.build(name, weights=None, **kwargs)


@pytest.fixture(scope="module", params=DETECTORS.names())
def detector(request, yolo):
    torch.manual_seed(0)
    return yolo if request.param == "yolo" else _build(request.param)


def test_registry_has_both_adapter_families():
    assert "yolo" in DETECTORS.names()
    assert {"fasterrcnn_resnet50_fpn", "fasterrcnn_mobilenet_v3_large_fpn", "retinanet_resnet50_fpn",
            "ssdlite320_mobilenet_v3_large"} <= set(TORCHVISION)


def test_detect_returns_person_boxes_in_input_coordinates(detector):
    images = torch.rand(2, 3, 200, 264)
    out = detector.detect(images, conf=0.0)
    assert len(out) == 2 and all(isinstance(d, Detections) for d in out)
    for d in out:
        assert d.boxes.shape[1:] == (4,) and d.scores.shape == d.labels.shape == (len(d.boxes),)
        if len(d.boxes):
            assert d.boxes[:, 2].max() <= 264 + 1 and d.boxes[:, 3].max() <= 200 + 1


def test_loss_gradient_reaches_the_image_and_not_the_weights(detector):
    images = torch.rand(2, 3, 192, 256, requires_grad=True)
    targets = [Target(torch.tensor([[40.0, 30.0, 90.0, 170.0]]), torch.tensor([0])),
               Target(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))]
    bn_before = {k: v.clone() for k, v in detector.state_dict().items() if "running" in k}
    loss = detector.loss(images, targets)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert images.grad is not None and images.grad.abs().sum() > 0 and torch.isfinite(images.grad).all()
    assert all(p.grad is None for p in detector.parameters())
    detector.train()
    assert not detector.training and not detector.model.training
    after = detector.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in bn_before.items())


def test_yolo_finds_the_people_of_vtest(yolo, dataset):
    from veil.data.dataset import FrameDataset

    frames = FrameDataset(dataset, "train")
    images, targets = frames.batch([0, 10])
    for det, t in zip(yolo.detect(images, conf=0.25), targets):
        assert len(det.boxes) == len(t.boxes) >= 3  # pseudo-labels are the detector's own output


def test_yolo_loss_is_lower_on_its_own_pseudo_labels_than_on_wrong_boxes(yolo, dataset):
    from veil.data.dataset import FrameDataset

    images, targets = FrameDataset(dataset, "train").batch([0, 1])
    shifted = [Target(t.boxes.flip(0) + 150, t.labels) for t in targets]
    assert yolo.loss(images, targets) < yolo.loss(images, shifted)
