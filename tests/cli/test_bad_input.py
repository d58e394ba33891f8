"""Bad input through the real CLI: one clear error line, exit 2, no traceback, no partial output."""

import subprocess
import sys

import pytest
import torch

from veil.training.config import TrainConfig
from veil.training.state import build_models, save_models


def veil(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "veil.cli.main", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd)


def assert_one_line_error(result, fragment):
    assert result.returncode == 2, result.stderr
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert fragment in lines[0]
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    config = TrainConfig()
    o, d = build_models(config)
    path = tmp_path_factory.mktemp("ck") / "obfuscator.safetensors"
    save_models(path, config, o, d, {"frame_size": [320, 240]})
    return path


def test_missing_video(tmp_path, checkpoint):
    r = veil("obfuscate", checkpoint, tmp_path / "missing.mp4", tmp_path / "out.mp4")
    assert_one_line_error(r, "not found")
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("content", [b"", b"\x1a\x45\xdf\xa3 corrupt" * 64])
def test_empty_or_corrupt_video(tmp_path, checkpoint, content):
    (tmp_path / "bad.mp4").write_bytes(content)
    r = veil("obfuscate", checkpoint, tmp_path / "bad.mp4", tmp_path / "out.mp4")
    assert_one_line_error(r, "bad.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4"]


def test_corrupt_checkpoint(tmp_path, checkpoint, vtest_clip):
    broken = tmp_path / "obfuscator.safetensors"
    broken.write_bytes(checkpoint.read_bytes()[:100])
    (tmp_path / "obfuscator.json").write_text(checkpoint.with_suffix(".json").read_text())
    r = veil("obfuscate", broken, vtest_clip, tmp_path / "out.mp4")
    assert_one_line_error(r, "corrupt checkpoint")
    assert not (tmp_path / "out.mp4").exists()


def test_mismatched_checkpoint(tmp_path, vtest_clip):
    o, d = build_models(TrainConfig())
    path = tmp_path / "obfuscator.safetensors"
    save_models(path, TrainConfig(obfuscator_width=2.0), o, d)  # the tensors do not fit the config
    r = veil("obfuscate", path, vtest_clip, tmp_path / "out.mp4")
    assert_one_line_error(r, "does not match")


def test_checkpoint_without_json(tmp_path, vtest_clip):
    path = tmp_path / "model.safetensors"
    from safetensors.torch import save_file

    save_file({"w": torch.ones(1)}, str(path))
    assert_one_line_error(veil("obfuscate", path, vtest_clip, tmp_path / "o.mp4"), "no JSON config")


def test_impossible_resize(tmp_path, vtest_clip):
    r = veil("data", "prepare", vtest_clip, "--out", tmp_path / "ds", "--size", "0x480")
    assert_one_line_error(r, "impossible resize")
    assert not (tmp_path / "ds").exists()


def test_prepare_from_corrupt_video_leaves_nothing(tmp_path):
    (tmp_path / "bad.avi").write_bytes(b"RIFF garbage" * 100)
    r = veil("data", "prepare", tmp_path / "bad.avi", "--out", tmp_path / "ds")
    assert_one_line_error(r, "bad.avi")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.avi"]


def test_eval_on_a_folder_that_is_no_dataset(tmp_path, checkpoint):
    assert_one_line_error(veil("eval", "utility", checkpoint, tmp_path), "not a prepared dataset")


@pytest.mark.parametrize(("args", "fragment"), [
    (["--time-gap", "600"], "fewer than 2 pseudo-identities"),
    (["--seeds", "0"], "--seeds must be at least 1"),
    (["--protocol", "gait"], "unknown identity protocol"),
    (["--identity-splits", "val,nope"], "nope split"),
    (["--preset", "huge"], "unknown audit preset"),
    (["--baselines", "grey_downsample@two"], "strength must be a number"),
    (["--baselines", "grey_downsample@2", "--sweep"], "--sweep calibrates every baseline"),
    (["--codec", "png"], "codec must be one of jpeg, webp"),
    (["--codec", "jpeg@0"], "quality must be 1-100"),
    (["--headline", "top5"], "unknown headline identity figure"),
])
def test_audit_refuses_impossible_protocols_and_options(tmp_path, dataset, args, fragment):
    r = veil("audit", "--dataset", dataset, "--out", tmp_path / "audit", *args)
    assert_one_line_error(r, fragment)
    assert not (tmp_path / "audit").exists()


def test_training_against_a_detector_that_cannot_train_is_one_error_line(tmp_path, dataset):
    r = veil("train", dataset, "--out", tmp_path / "run", "--preset", "smoke", "--detector", "hog")
    assert_one_line_error(r, "cannot train an obfuscator")
    assert not (tmp_path / "run" / "obfuscator.safetensors").exists()
