"""The shipped YOLOv8s on real vtest frames; the contract every detector meets is in
tests/test_contracts_detectors.py."""

import torch

from veil.detectors import DETECTORS, Target
from veil.detectors.torchvision_detectors import _BUILDERS as TORCHVISION


def test_registry_has_every_adapter_family():
    assert {"yolo", "hog"} <= set(DETECTORS.names())
    assert {"fasterrcnn_resnet50_fpn", "fasterrcnn_mobilenet_v3_large_fpn", "retinanet_resnet50_fpn",
            "ssdlite320_mobilenet_v3_large"} <= set(TORCHVISION) <= set(DETECTORS.names())


def test_yolo_finds_the_people_of_vtest(yolo, dataset):
    from veil.data.dataset import FrameDataset

    frames = FrameDataset(dataset, "train")
    images, targets = frames.batch([0, 10])
    for det, t in zip(yolo.detect(images, conf=0.25), targets):
        assert len(det.boxes) == len(t.boxes) >= 3  # pseudo-labels are the detector's own output
        assert torch.allclose(det.boxes, t.boxes.float(), atol=0.5)


def test_yolo_loss_is_lower_on_its_own_pseudo_labels_than_on_wrong_boxes(yolo, dataset):
    from veil.data.dataset import FrameDataset

    images, targets = FrameDataset(dataset, "train").batch([0, 1])
    shifted = [Target(t.boxes.flip(0) + 150, t.labels) for t in targets]
    assert yolo.loss(images, targets) < yolo.loss(images, shifted)
