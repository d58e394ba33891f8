"""A detector weights file named in a dataset manifest or a checkpoint is never loaded unless the
user types it: an Ultralytics ``.pt`` is a pickle, and the file below runs code when unpickled."""

from __future__ import annotations

import pickle

import pytest

from tests.audit.test_report import small_dataset
from tests.cli.test_bad_input import assert_one_line_error, veil
from veil.errors import VeilError
from veil.io import read_json, write_json


class _Planted:
    """What a hostile ``best.pt`` holds: unpickling it creates ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def planted(tmp_path):
    """A pickle that creates ``loaded`` when unpickled, and that marker's path."""
    marker = tmp_path / "loaded"
    weights = tmp_path / "best.pt"
    weights.write_bytes(pickle.dumps(_Planted(str(marker))))
    return weights, marker


@pytest.fixture(scope="module")
def received(tmp_path_factory, dataset):
    """A dataset as someone else might hand it over, its manifest naming a weights file."""
    return small_dataset(dataset, tmp_path_factory.mktemp("received") / "ds", n_train=4, n_val=2, n_test=4)


def _name_weights(ds, weights) -> None:
    manifest = read_json(ds / "manifest.json")
    manifest["detector"]["weights"] = str(weights)
    write_json(ds / "manifest.json", manifest)


def test_the_users_path_wins_and_built_in_names_pass():
    from veil.detectors import weights_to_load

    assert weights_to_load("/data/best.pt", "/mine/yolo.pt", "the dataset d") == "/mine/yolo.pt"
    assert weights_to_load(None, None, "the dataset d") is None
    assert weights_to_load("daimler", None, "the dataset d") == "daimler"  # HOG's built-in second set
    for recorded in ("best.pt", "/data/best.pt", "..\\best.pt", "weights/x"):
        with pytest.raises(VeilError, match="pass --detector-weights"):
            weights_to_load(recorded, None, "the dataset d")


def test_audit_and_train_refuse_a_weights_file_named_by_the_dataset(received, planted):
    weights, marker = planted
    _name_weights(received, weights)
    audit = veil("audit", "--dataset", received, "--out", weights.parent / "report", "--device", "cpu")
    assert_one_line_error(audit, f"--detector-weights {weights}")
    train = veil("train", received, "--out", weights.parent / "run", "--preset", "smoke", "--device", "cpu")
    assert_one_line_error(train, f"--detector-weights {weights}")
    assert not marker.exists()  # nothing was unpickled
    assert not (weights.parent / "report").exists() and not (weights.parent / "run").exists()


def test_eval_refuses_a_weights_file_named_by_the_checkpoint(received, planted):
    from veil.training.config import TrainConfig
    from veil.training.state import build_models, save_models

    weights, marker = planted
    config = TrainConfig(obfuscator_width=0.25, detector_weights=str(weights))
    o, _ = build_models(config)
    save_models(weights.parent / "obfuscator.safetensors", config, o, None, {})
    r = veil("eval", "utility", weights.parent / "obfuscator.safetensors", received, "--device", "cpu")
    assert_one_line_error(r, "the checkpoint")
    assert not marker.exists()
