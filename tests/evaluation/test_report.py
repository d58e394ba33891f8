"""A small real audit end to end: report.json, and report.html opened in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from veil.io import read_json, write_json

TINY = dict(
    crop_size=(24, 48), epochs=1, attackers=("hog_linear", "small_cnn"), baselines=("gaussian_blur", "detect_mask"),
    attribute_train_frames=10, max_attribute_train=64, max_attribute_test=48, ap_frames=3, unet_steps=5,
    unet_crop=48, unet_width=0.25, sweep_points=2, calibration_steps=1, min_track=5,
)


def small_dataset(src: Path, dst: Path, n_train: int = 10, n_test: int = 20) -> Path:
    """A copy of a prepared dataset with only its first frames (frames symlinked)."""
    manifest, labels = read_json(src / "manifest.json"), read_json(src / "labels.json")
    splits = {"train": manifest["splits"]["train"][:n_train], "val": manifest["splits"]["val"][:1],
              "test": manifest["splits"]["test"][:n_test]}
    keep = {n for names in splits.values() for n in names}
    (dst / "frames").mkdir(parents=True)
    for name in keep:
        os.symlink(src / "frames" / name, dst / "frames" / name)
    write_json(dst / "labels.json", {n: v for n, v in labels.items() if n in keep})
    write_json(dst / "manifest.json", {**manifest, "splits": splits,
                                       "frames": [f for f in manifest["frames"] if f["name"] in keep]})
    return dst


@pytest.fixture(scope="module")
def audit(tmp_path_factory, yolo, dataset):
    from veil.evaluation.audit import run_audit
    from veil.obfuscators import OBFUSCATORS

    ds = small_dataset(dataset, tmp_path_factory.mktemp("audit") / "ds")
    out = ds.parent / "report"
    obfuscator = OBFUSCATORS.build("mobilenet_ae", width=0.25)  # untrained: the pipeline, not the result
    report = run_audit(ds, obfuscator, out, yolo, preset="fast", sweep=True, overrides=TINY)
    return report, out


def test_report_json_holds_every_figure(audit):
    report, out = audit
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["methods"].keys() == report["methods"].keys()
    matched = [report["curves"][b]["calibrated"]["method"] for b in ("gaussian_blur", "detect_mask")]
    for name in ("original", "obfuscator", "reconstruction", "gaussian_blur", "detect_mask", *matched):
        m = report["methods"][name]
        assert set(m["identity"]["per_attacker"]) == {"hog_linear", "small_cnn"}
        assert m["identity"]["worst_case"] == max(m["identity"]["per_attacker"].values())
        assert m["relative_ap"] >= 0
    # with a sweep, attributes are attacked at the matched strength (and on the references)
    for name in ("original", "obfuscator", "reconstruction", *matched):
        assert 0 <= report["methods"][name]["attributes"]["worst_case"]["mA"] <= 1
    assert report["methods"]["original"]["relative_ap"] == 1.0
    assert 0 < report["chance"]["identity_top1"] < 1 and report["chance"]["attributes"]["mA"] == 0.5
    assert report["reconstruction"]["test"]["psnr"] > 0
    original = report["methods"]["original"]
    for name in ("gaussian_blur", "detect_mask"):
        curve = report["curves"][name]
        anchor = curve["points"][0]  # every curve starts at the original frames
        assert anchor["strength"] == curve["none_strength"] and anchor["relative_ap"] == 1.0
        assert anchor["identity_worst_case"] == original["identity"]["worst_case"]
        probed = {p["strength"]: p["relative_ap"] for p in curve["utility"]}
        assert len(curve["points"]) >= 3 and {p["strength"] for p in curve["points"]} <= set(probed)
        cal = curve["calibrated"]
        # the cheap utility probe and the full evaluation agree at the calibrated strength
        assert probed[cal["strength"]] == pytest.approx(cal["relative_ap"])
        assert report["verdict"]["baselines"][name]["identity_worst_case"] == cal["identity_worst_case"]
    assert {"load", "labels", "identity attack", "attribute attack", "report", "total"} <= set(report["stage_seconds"])
    assert "obfuscator_beats_every_baseline" in report["verdict"]


def test_report_html_renders_in_headless_chromium(audit):
    _, out = audit
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is not installed (apt-get install -y chromium); the report test needs it")
    html = out / "report.html"
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             "--dump-dom", html.resolve().as_uri()],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout
    assert 'id="privacy-utility"' in dom and "<svg" in dom  # the scatter, inline
    for table in ("methods-table", "chance-table", "attackers-table", "sweep-table", "times-table"):
        assert f'id="{table}"' in dom
    assert "data:image/jpeg;base64," in dom  # the frame grid, inline
    assert "obfuscator" in dom and "gaussian_blur" in dom
    assert "every baseline calibrated within 2 AP points" in dom  # swept: the verdict says if matching held
    assert 'src="http' not in dom and 'href="http' not in dom  # self-contained: nothing to fetch
