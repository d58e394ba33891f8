import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from veil.errors import VeilError
from veil.io import atomic_path, load_checkpoint, remove_stale_temporaries, save_checkpoint


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


def test_a_kill_between_the_two_renames_still_loads_a_consistent_pair(tmp_path):
    ck = tmp_path / "ck.safetensors"
    save_checkpoint(ck, {"w": torch.zeros(2)}, {"format": "veil-checkpoint", "epoch": 1})
    old_json = (tmp_path / "ck.json").read_text()
    save_checkpoint(ck, {"w": torch.ones(2)}, {"format": "veil-checkpoint", "epoch": 2})
    (tmp_path / "ck.json").write_text(old_json)  # the state a kill after the tensor rename leaves
    tensors, meta = load_checkpoint(ck)
    assert meta["epoch"] == 2 and torch.equal(tensors["w"], torch.ones(2))


def test_foreign_json_is_refused(tmp_path):
    save_checkpoint(tmp_path / "ck.safetensors", {"w": torch.ones(2)}, {"format": "veil-checkpoint"})
    (tmp_path / "ck.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(VeilError, match="not a Veil checkpoint"):
        load_checkpoint(tmp_path / "ck.safetensors")


_SAVE_FOREVER = """
import sys, torch
from veil.io import save_checkpoint
big = {"w": torch.zeros(50_000_000)}
while True:
    save_checkpoint(sys.argv[1], big, {"format": "veil-checkpoint"})
"""


def test_a_kill_mid_save_leaves_only_temporaries_that_are_cleaned(tmp_path):
    keep = [tmp_path / ".gitignore", tmp_path / ".tmp-notes"]  # a user's hidden files stay
    for path in keep:
        path.write_text("mine")
    proc = subprocess.Popen([sys.executable, "-c", _SAVE_FOREVER, str(tmp_path / "last.safetensors")])
    # Wait for safetensors' own temporary (>= 0.8 saves through one), the one a kill left in CI.
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        hidden = {p.name for p in tmp_path.iterdir()} - {p.name for p in keep}
        if any(name.startswith(".tmp") for name in hidden):
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert any(p.name.startswith(".") and p not in keep for p in tmp_path.iterdir()), "killed mid-save"
    remove_stale_temporaries(tmp_path, ["last.safetensors", "last.json"])
    left = sorted(p.name for p in tmp_path.iterdir())
    assert [name for name in left if name.startswith(".")] == sorted(p.name for p in keep)
