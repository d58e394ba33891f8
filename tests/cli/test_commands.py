"""The real CLI, end to end on real frames: eval utility and obfuscate on a trained-for-seconds run."""

import json
import subprocess
import sys

import pytest

from tests.audit.test_report import small_dataset


def veil(*args):
    return subprocess.run([sys.executable, "-m", "veil.cli.main", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def run(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    result = veil("train", dataset, "--out", out, "--preset", "smoke", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    return out


def test_eval_utility_writes_the_table1_figures(run, dataset, tmp_path):
    # 5 val frames, not 15: the figures are three detector passes and two similarity passes over the split
    few = small_dataset(dataset, tmp_path / "ds", n_val=5)
    result = veil("eval", "utility", run / "obfuscator.safetensors", few, "--split", "val",
                  "--out", tmp_path / "u.json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "u.json").read_text())
    assert metrics["split_frames"] == 5
    assert metrics["person_ap"]["original"] > 0.9
    assert set(metrics["person_ap"]) == {"original", "obfuscated", "reconstructed"}
    rel = metrics["relative_ap"]["obfuscated"]
    assert rel == pytest.approx(metrics["person_ap"]["obfuscated"] / metrics["person_ap"]["original"])
    for view in ("obfuscated", "reconstructed"):
        assert {"ssim", "psnr"} <= set(metrics["similarity_to_original"][view])


def test_obfuscate_a_video_through_the_cli(run, short_clip, tmp_path):
    result = veil("obfuscate", run / "obfuscator.safetensors", short_clip, tmp_path / "o.avi")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "o.avi").stat().st_size > 10_000


def test_help_lists_the_pipeline():
    out = veil("--help").stdout
    for command in ("data", "train", "eval", "obfuscate", "demo"):
        assert command in out
