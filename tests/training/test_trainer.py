"""Real training on real vtest frames with the real YOLOv8s, and resume after a kill."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from veil.detectors import Target
from veil.training.presets import make_config
from veil.training.trainer import Trainer, hflip, random_crop


def test_random_crop_keeps_visible_boxes_in_crop_coordinates():
    images = torch.rand(1, 3, 100, 200)
    # a 120 px wide box: any 100 px crop of the 200 px frame shows at least half of it
    boxes = torch.tensor([[40.0, 10, 160, 90], [0, 0, 2, 2]])
    gen = torch.Generator().manual_seed(0)
    crops, targets = random_crop(images, [Target(boxes, torch.tensor([0, 1]))], 100, gen)
    assert crops.shape == (1, 3, 100, 100)
    b = targets[0].boxes
    assert len(b) == 1 and (b >= 0).all() and (b <= 100).all() and b[0, 2] - b[0, 0] >= 50


def test_hflip_mirrors_boxes():
    images = torch.zeros(1, 3, 10, 100)
    images[..., :10] = 1
    out, t = hflip(images, [Target(torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([0]))], torch.tensor([True]))
    assert out[..., 90:].min() == 1 and torch.equal(t[0].boxes, torch.tensor([[90.0, 0, 100, 10]]))


def test_short_real_training_run_learns_and_checkpoints(dataset, yolo, tmp_path):
    config = make_config("smoke", dataset, epochs=2, steps_per_epoch=4, val_every=1)
    trainer = Trainer(dataset, tmp_path / "run", config, detector=yolo)
    start = {k: v.clone() for k, v in trainer.obfuscator.state_dict().items()}
    result = trainer.fit()
    assert len(result.history) == 2
    row = result.history[-1]
    assert all(torch.isfinite(torch.tensor(row[k])) for k in ("loss_obj", "loss_rec", "loss_d"))
    assert 0.0 <= row["val_relative_ap"] <= 1.5
    changed = [k for k, v in trainer.obfuscator.state_dict().items() if not torch.equal(v, start[k])]
    assert changed
    for name in ("last", "obfuscator"):
        assert (tmp_path / "run" / f"{name}.safetensors").is_file()
        assert json.loads((tmp_path / "run" / f"{name}.json").read_text())["format"] == "veil-checkpoint"
    assert (tmp_path / "run" / "log.csv").read_text().count("\n") == 3
    # the detector stayed frozen
    assert all(p.grad is None for p in yolo.parameters())


def _train_cmd(dataset, out, *extra):
    return [sys.executable, "-m", "veil.cli.main", "train", str(dataset), "--out", str(out), "--preset", "smoke",
            "--epochs", "6", "--steps-per-epoch", "3", "--device", "cpu", *extra]


def test_resume_after_kill_matches_an_uninterrupted_run(dataset, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(_train_cmd(dataset, tmp_path / "full"), check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(dataset, killed), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (killed / "last.json").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    epoch_at_kill = json.loads((killed / "last.json").read_text())["epoch"]
    assert 1 <= epoch_at_kill < 6, "the run must be killed part-way"
    # whatever the kill interrupted, every visible file is complete
    assert load_file(str(killed / "last.safetensors"))
    if (killed / "obfuscator.json").exists():  # the kill may come before the first one is written
        assert json.loads((killed / "obfuscator.json").read_text())["format"] == "veil-checkpoint"

    done = subprocess.run(_train_cmd(dataset, killed, "--resume"), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"resumed {killed} after epoch {epoch_at_kill}" in " ".join(done.stderr.split())
    assert not [p.name for p in killed.iterdir() if p.name.startswith(".")], "stale temporaries are cleaned"
    full, resumed = load_file(str(tmp_path / "full" / "last.safetensors")), load_file(str(killed / "last.safetensors"))
    assert full.keys() == resumed.keys()
    for key in full:
        assert torch.equal(full[key], resumed[key]), key


def test_training_twice_into_one_folder_needs_resume(dataset, tmp_path):
    (tmp_path / "last.safetensors").write_bytes(b"x")
    out = subprocess.run(_train_cmd(dataset, tmp_path), capture_output=True, text=True)
    assert out.returncode == 2 and "--resume" in out.stderr


@pytest.mark.parametrize("preset", ["paper", "cpu"])
def test_presets_follow_the_paper_optimiser(preset, dataset):
    config = make_config(preset, dataset)
    assert (config.lr, config.weight_decay, config.a_obj, config.a_rec) == (1e-3, 1e-6, 1.0, 1.0)
    assert config.detector == "yolo"
