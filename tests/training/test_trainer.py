"""Real training on real vtest frames with the real YOLOv8s, and resume after a kill."""

import csv
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
from veil.errors import VeilError
from veil.io import load_checkpoint, save_checkpoint
from veil.training.presets import make_config
from veil.training.state import load_models
from veil.training.trainer import RUN_FILES, Trainer, hflip, random_crop


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
    config = make_config("smoke", dataset, epochs=2, steps_per_epoch=2, val_every=1)
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
            "--epochs", "4", "--steps-per-epoch", "2", "--device", "cpu", *extra]


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
    assert 1 <= epoch_at_kill < 4, "the run must be killed part-way"
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


@pytest.mark.parametrize(("preset", "lr"), [("paper", 1e-3), ("cpu", 3e-3)])
def test_presets_follow_the_paper_optimiser(preset, lr, dataset):
    config = make_config(preset, dataset)
    assert (config.lr, config.weight_decay, config.a_obj) == (lr, 1e-6, 1.0)  # cpu: its small net's rate
    assert config.adversaries == {"reconstruction": 1.0}  # de-coninck-2024's a_rec = 1
    assert config.detector == "yolo"


def test_the_cpu_presets_obfuscator_recipe_goes_with_its_obfuscator(dataset):
    assert make_config("paper", dataset).obfuscator == "mobilenet_ae"  # de-coninck-2024's architecture
    default = make_config("cpu", dataset)
    assert (default.obfuscator, default.obfuscator_args) == ("bottleneck", {"latent": 16, "levels": 16})
    # arguments for the preset's own obfuscator add to its arguments ...
    narrower = make_config("cpu", dataset, obfuscator="bottleneck", obfuscator_args={"latent": 8})
    assert (narrower.obfuscator_args, narrower.lr) == ({"latent": 8, "levels": 16}, 3e-3)
    # ... another obfuscator starts from its own defaults, the paper's learning rate included
    former = make_config("cpu", dataset, obfuscator="mobilenet_ae", obfuscator_width=0.5)
    assert (former.obfuscator, former.obfuscator_args, former.lr) == ("mobilenet_ae", {"width": 0.5}, 1e-3)
    assert make_config("cpu", dataset, obfuscator="mobilenet_ae", lr=2e-3).lr == 2e-3  # unless typed


BUDGET = {"models": 2, "architectures": ["mobilenet_v2", "shufflenet_v2"], "width": 0.1, "crop_height": 16,
          "crop_width": 8, "max_passes": 1, "restart_every": 6, "restart_batch": 64, "heldout_every": 1}


def _budget_config(dataset, epochs):
    return make_config("smoke", dataset, epochs=epochs, steps_per_epoch=4, crop=256, obfuscator_width=0.25,
                       deobfuscator_width=0.25, adversaries={"reconstruction": 1.0, "budget": 2.0},
                       adversary_options={"budget": dict(BUDGET)})


def test_budget_run_resumed_matches_an_uninterrupted_one_and_logs_its_restarts(dataset, yolo, tmp_path):
    Trainer(dataset, tmp_path / "full", _budget_config(dataset, 2), detector=yolo).fit()
    Trainer(dataset, tmp_path / "cut", _budget_config(dataset, 1), detector=yolo).fit()
    resumed = Trainer(dataset, tmp_path / "cut", _budget_config(dataset, 2), detector=yolo)
    assert resumed.resume() and resumed.epoch == 1
    resumed.fit()
    full = load_file(str(tmp_path / "full" / "last.safetensors"))
    cut = load_file(str(tmp_path / "cut" / "last.safetensors"))
    assert full.keys() == cut.keys() and any(k.startswith("budget.model1.") for k in full)
    for key in full:
        assert torch.equal(full[key], cut[key]), key
    rows = list(csv.DictReader((tmp_path / "cut" / "log.csv").open()))
    # every party's loss, every budget model's accuracy, and the restart at step 6 (epoch 2); 4 steps of
    # 256 px crops an epoch, so every epoch has batches with identity boxes in them
    for column in ("loss_obj", "loss_rec", "loss_d", "loss_budget", "budget0_ce", "budget1_acc", "budget1_heldout_acc"):
        assert all(row[column] for row in rows), column
    assert "init" in rows[0]["budget_restarts"] and "step 6 model 0 every" in rows[1]["budget_restarts"]


def test_changed_settings_are_refused_on_resume(dataset, yolo, tmp_path):
    run = tmp_path / "run"
    Trainer(dataset, run, make_config("smoke", dataset, epochs=1, steps_per_epoch=1), detector=yolo).fit()
    for change in ({"batch_size": 3}, {"seed": 1}, {"crop": 128}, {"adversaries": {"reconstruction": 2.0}}):
        trainer = Trainer(dataset, run, make_config("smoke", dataset, epochs=1, steps_per_epoch=1, **change),
                          detector=yolo)
        with pytest.raises(VeilError, match=next(iter(change))):
            trainer.resume()
    out = subprocess.run([sys.executable, "-m", "veil.cli.main", "train", str(dataset), "--out", str(run),
                          "--preset", "smoke", "--epochs", "1", "--steps-per-epoch", "1", "--lr", "0.01",
                          "--device", "cpu", "--resume"], capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot resume") and "lr 0.001 -> 0.01" in lines[0]

    # a run written before adversaries were pluggable (D's optimizer at the top level, a_rec in
    # the config) still loads and resumes: rewrite this one's header into that layout
    tensors, meta = load_checkpoint(run / "last.safetensors")
    old = {k: v for k, v in meta.items() if k not in ("adversaries", "world_size", "epoch_frames", "tensor_file")}
    old.update(meta["adversaries"]["reconstruction"])
    old["config"] = {k: v for k, v in meta["config"].items()
                     if k not in ("adversaries", "adversary_options", "detector_person_classes")}
    old["config"]["a_rec"] = 1.0
    save_checkpoint(run / "last.safetensors", tensors, old)
    trainer = Trainer(dataset, run, make_config("smoke", dataset, epochs=2, steps_per_epoch=1), detector=yolo)
    assert trainer.resume() and trainer.epoch == 1
    assert torch.equal(trainer.deobfuscator.state_dict()["net.0.0.weight"], tensors["deobfuscator.net.0.0.weight"])
    trainer.fit()
    obfuscator, deobfuscator, meta = load_models(run / "obfuscator.safetensors")
    assert deobfuscator is not None and meta["epoch"] == 2


def test_two_process_ddp_run_shards_frames_and_writes_the_usual_checkpoint(dataset, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "veil.cli.main", "train", str(dataset), "--out", str(tmp_path / "ddp"), "--preset", "smoke",
           "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2", "--width", "0.25", "--device", "cpu"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    tensors, meta = load_checkpoint(tmp_path / "ddp" / "last.safetensors")
    assert meta["kind"] == "resume" and meta["world_size"] == 2 and meta["epoch"] == 1
    assert any(k.startswith("obfuscator.") for k in tensors) and any(k.startswith("deobfuscator.") for k in tensors)
    assert any(k.startswith("opt_o.state.") for k in tensors) and any(k.startswith("opt_d.state.") for k in tensors)
    rank0, rank1 = meta["epoch_frames"]
    assert len(rank0) == len(rank1) == 4 and not set(rank0) & set(rank1)  # 2 steps x 2 frames, no overlap
    obfuscator, deobfuscator, _ = load_models(tmp_path / "ddp" / "obfuscator.safetensors")
    assert deobfuscator is not None
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir() if p.name != "tensorboard") == sorted(RUN_FILES)
