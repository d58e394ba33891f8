"""``veil audit A B``: two checkpoints compared in one audit through the real CLI."""

from __future__ import annotations

import json

from tests.audit.test_report import small_dataset
from tests.cli.test_bad_input import assert_one_line_error, veil
from veil.training.config import TrainConfig
from veil.training.state import build_models, save_models


def checkpoint(folder, width):
    config = TrainConfig(obfuscator_width=width)
    o, _ = build_models(config)
    save_models(folder / "obfuscator.safetensors", config, o, None, {"adversaries": {"reconstruction": 1.0}})
    return folder / "obfuscator.safetensors"


def test_two_checkpoints_without_baselines(tmp_path, dataset):
    ds = small_dataset(dataset, tmp_path / "ds")
    a, b = checkpoint(tmp_path / "narrow", 0.25), checkpoint(tmp_path / "wide", 0.5)
    r = veil("audit", a, b, "--dataset", ds, "--out", tmp_path / "audit", "--preset", "smoke", "--baselines", "none",
             "--protocol", "tracking", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "audit" / "report.json").read_text())
    assert set(report["methods"]) == {"original", "narrow", "narrow (reconstruction)", "wide",
                                      "wide (reconstruction)"}
    assert report["baselines"] == {}
    rows = {row["method"]: row for row in report["obfuscator_table"]}
    assert rows["narrow"]["obfuscator_args"] == {"width": 0.25}
    assert rows["wide"]["adversaries"] == {"reconstruction": 1.0}
    assert [(p["a"], p["b"]) for p in report["verdict"]["pairs"]] == [("narrow", "wide")]


def test_same_run_folder_names_are_told_apart(tmp_path):
    from veil.cli.audit import method_names

    paths = [tmp_path / "x" / "seed0" / "o.safetensors", tmp_path / "y" / "seed0" / "o.safetensors",
             tmp_path / "z" / "o.safetensors", tmp_path / "z" / "o.safetensors"]
    here = tmp_path.name
    assert method_names(paths) == ["x/seed0", "y/seed0", f"{here}/z", f"{here}/z-2"]
    assert method_names([paths[0], paths[2]]) == ["seed0", "z"]
    assert method_names(paths[:1]) == ["obfuscator"]


def test_unknown_baseline_is_one_line(tmp_path, dataset):
    r = veil("audit", "--dataset", dataset, "--out", tmp_path / "audit", "--baselines", "gaussian_blur,nope")
    assert_one_line_error(r, "unknown: 'nope'")
    assert not (tmp_path / "audit").exists()
