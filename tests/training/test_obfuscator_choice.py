"""Choosing an obfuscator and its arguments on the command line; a temporal obfuscator trains on clips."""

import subprocess
import sys
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from tests.temporal import register
from veil.data.dataset import FrameDataset
from veil.demo import own_run
from veil.obfuscators import OBFUSCATORS
from veil.training.config import TrainConfig
from veil.training.presets import make_config
from veil.training.state import load_models
from veil.training.trainer import Trainer


def _train(dataset, out, *extra):
    return subprocess.run([sys.executable, "-m", "veil.cli.main", "train", str(dataset), "--out", str(out),
                           "--preset", "smoke", "--epochs", "1", "--steps-per-epoch", "1", "--device", "cpu", *extra],
                          capture_output=True, text=True)


def _size(module):
    return sum(p.numel() for p in module.parameters())


def test_obfuscator_arguments_round_trip_and_a_resume_may_not_change_them(dataset, tmp_path):
    run = tmp_path / "run"
    done = _train(dataset, run, "--obfuscator", "mobilenet_ae", "--obfuscator-arg", "width=0.5")
    assert done.returncode == 0, done.stderr
    obfuscator, _, meta = load_models(run / "obfuscator.safetensors")
    assert meta["config"]["obfuscator"] == "mobilenet_ae" and meta["config"]["obfuscator_args"] == {"width": 0.5}
    assert _size(obfuscator) == _size(OBFUSCATORS.build("mobilenet_ae", width=0.5)) < _size(
        OBFUSCATORS.build("mobilenet_ae"))
    saved = load_file(str(run / "obfuscator.safetensors"))
    assert all(torch.equal(v, saved[f"obfuscator.{k}"]) for k, v in obfuscator.state_dict().items())
    frames = FrameDataset(dataset, "test").batch([0, 1])[0]
    with torch.no_grad():  # the resumable checkpoint rebuilds the same network with the same outputs
        assert torch.equal(obfuscator(frames), load_models(run / "last.safetensors")[0](frames))

    refused = _train(dataset, run, "--obfuscator-arg", "width=0.25", "--resume")
    lines = [ln for ln in refused.stderr.splitlines() if ln.strip()]
    assert refused.returncode == 2 and len(lines) == 1, refused.stderr
    assert lines[0].startswith("error: cannot resume")
    assert "obfuscator_args {'width': 0.5} -> {'width': 0.25}" in lines[0]
    # --width is the same argument: this resume goes on
    resumed = _train(dataset, run, "--width", "0.5", "--epochs", "2", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert load_models(run / "obfuscator.safetensors")[2]["epoch"] == 2

    # the demo, after an upgrade that changed its preset, keeps the old run aside and trains afresh
    said = []
    progress = SimpleNamespace(say=said.append)
    config = TrainConfig.from_dict(load_models(run / "last.safetensors")[2]["config"])
    assert own_run(run, config, progress) == run and (run / "last.safetensors").is_file() and not said
    other = replace(config, obfuscator_args={"width": 0.25})
    assert own_run(run, other, progress) == run and not run.exists()
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("run-")]
    assert len(kept) == 1 and (kept[0] / "last.safetensors").is_file()  # renamed, nothing deleted
    assert len(said) == 1 and "kept as" in said[0] and "obfuscator_args" in said[0]


def test_a_wrong_obfuscator_or_argument_is_one_error_line(dataset, tmp_path):
    for args, fragment in ((["--obfuscator-arg", "depth=3"], "cannot be built with depth=3"),
                           (["--obfuscator", "nope"], "unknown obfuscator 'nope'"),
                           (["--obfuscator-arg", "width"], "KEY=VALUE")):
        out = _train(dataset, tmp_path / "run", *args)
        lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
        assert out.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:"), out.stderr
        assert fragment in lines[0]
        assert not (tmp_path / "run").exists()


def test_a_temporal_obfuscator_trains_on_clips_cut_like_their_frames(dataset, yolo, tmp_path, monkeypatch):
    name = register(monkeypatch)

    def config(epochs):
        return make_config("smoke", dataset, epochs=epochs, steps_per_epoch=2, obfuscator=name,
                           obfuscator_args={"gain": 4.0})

    trainer = Trainer(dataset, tmp_path / "full", config(2), detector=yolo)
    first = list(trainer.batches(0))
    for batch in first:
        assert batch.clips.shape[:2] == (2, 2) and torch.equal(batch.clips[:, -1], batch.images)
        for i, frame in enumerate(batch.frames):  # the earlier frame, cut and mirrored like the frame
            (x0, y0), size = batch.offsets[i], trainer.config.crop
            previous = trainer.train_set.images[max(frame - 1, 0)].float() / 255
            previous = previous[:, y0 : y0 + size, x0 : x0 + size]
            assert torch.equal(batch.clips[i, 0], previous.flip(-1) if batch.flipped[i] else previous)
    again = list(trainer.batches(0))
    assert all(torch.equal(a.clips, b.clips) for a, b in zip(first, again))

    history = trainer.fit().history
    assert trainer.obfuscator.progress == [0.0, 0.25, 0.5, 0.75]  # set before each of the 4 steps
    assert all(row["loss_reg"] > 0 and "loss_obj" in row and "loss_rec" in row for row in history)
    obfuscator, _, meta = load_models(tmp_path / "full" / "obfuscator.safetensors")
    assert meta["config"]["obfuscator_args"] == {"gain": 4.0} and obfuscator.gain == 4.0

    # stopped after one epoch and resumed, it ends with the same weights
    def stop_in_epoch_two(epoch, _step, _steps, _losses):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(dataset, tmp_path / "split", config(2), detector=yolo).fit(stop_in_epoch_two)
    resumed = Trainer(dataset, tmp_path / "split", config(2), detector=yolo)
    assert resumed.resume()
    resumed.fit()
    assert resumed.obfuscator.progress == [0.5, 0.75]
    for key, value in trainer.obfuscator.state_dict().items():
        assert torch.equal(value, resumed.obfuscator.state_dict()[key]), key
