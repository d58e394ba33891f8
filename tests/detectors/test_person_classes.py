"""Which YOLO classes are people: all for the shipped fall model, class 0 for COCO, else the user's."""

import pytest
import torch

from veil.detectors.ultralytics_yolo import UltralyticsDetector, resolve_person_classes
from veil.errors import VeilError


@pytest.fixture(scope="module")
def coco_yolo():
    """A YOLOv8n with COCO's 80 class names (random weights: no download)."""
    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.utils import ROOT, YAML

    torch.manual_seed(0)
    model = DetectionModel("yolov8n.yaml", nc=80, verbose=False)
    model.names = dict(enumerate(YAML.load(ROOT / "cfg/datasets/coco.yaml")["names"].values()))
    model.args = {}  # what a checkpoint carries (its training arguments)
    return model


def test_the_shipped_fall_detection_model_counts_every_class(yolo):
    assert dict(yolo.model.names) == {0: "Normal", 1: "Fall"} and yolo.person_classes == [0, 1]


def test_a_coco_model_counts_only_class_0(coco_yolo):
    detector = UltralyticsDetector(coco_yolo, "coco")
    assert detector.person_classes == [0]
    found = detector.detect(torch.rand(2, 3, 160, 160), conf=0.0)
    labels = torch.cat([d.labels for d in found])
    assert len(labels) and (labels == 0).all()  # random weights score every class; only persons pass


def test_other_models_need_explicit_person_classes(coco_yolo):
    names = {0: "car", 1: "pedestrian", 2: "cyclist"}
    with pytest.raises(VeilError, match="--person-classes"):
        resolve_person_classes(names)
    assert resolve_person_classes(names, [2, 1]) == [1, 2]
    with pytest.raises(VeilError, match="do not name classes"):
        resolve_person_classes(names, [7])
    detector = UltralyticsDetector(coco_yolo, "coco", person_classes=[0, 2])  # people and cars, if you say so
    labels = torch.cat([d.labels for d in detector.detect(torch.rand(1, 3, 160, 160), conf=0.0)])
    assert set(labels.tolist()) <= {0, 2}
