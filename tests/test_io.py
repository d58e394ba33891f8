import json

import pytest
import torch

from veil.errors import VeilError
from veil.io import atomic_path, load_checkpoint, save_checkpoint


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_round_trip(tmp_path):
    tensors = {"a.weight": torch.randn(3, 4), "b": torch.arange(5)}
    save_checkpoint(tmp_path / "ck.safetensors", tensors, {"format": "veil-checkpoint", "x": 1})
    loaded, meta = load_checkpoint(tmp_path / "ck.safetensors")
    assert meta["x"] == 1 and meta["tensor_file"] == "ck.safetensors"
    assert all(torch.equal(loaded[k], v) for k, v in tensors.items())


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    save_checkpoint(tmp_path / "ck.safetensors", {"w": torch.ones(2)}, {"format": "veil-checkpoint"})
    (tmp_path / "ck.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(VeilError, match="corrupt checkpoint"):
        load_checkpoint(tmp_path / "ck.safetensors")


def test_foreign_json_is_refused(tmp_path):
    save_checkpoint(tmp_path / "ck.safetensors", {"w": torch.ones(2)}, {"format": "veil-checkpoint"})
    (tmp_path / "ck.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(VeilError, match="not a Veil checkpoint"):
        load_checkpoint(tmp_path / "ck.safetensors")
