"""The cross-fitted audit: folds that leave the gap, obfuscators that never saw the frames they
are audited on, pooled figures over every fold's identities, and a run that resumes."""

from __future__ import annotations

import numpy as np
import pytest

from tests.audit.test_report import first_frames
from tests.cli.test_bad_input import assert_one_line_error, veil
from veil.audit.crossfit import plan_folds
from veil.audit.report import load_report
from veil.errors import VeilError
from veil.io import read_json


def records(clips: dict[int, int], fps: float = 5.0) -> list[dict]:
    return [{"name": f"c{c}-{i:04d}.jpg", "clip": c, "time": i / fps} for c, n in clips.items() for i in range(n)]


@pytest.mark.parametrize(("clips", "folds", "gap"), [({0: 150}, 2, 1.0), ({0: 150}, 3, 2.5), ({0: 60, 1: 90}, 3, 1.0)])
def test_folds_partition_the_frames_and_leave_the_gap(clips, folds, gap):
    frames = records(clips)
    plan = plan_folds(frames, folds, gap)
    assert len(plan) == folds
    audited = [n for f in plan for n in f.audited]
    assert sorted(audited) == sorted(r["name"] for r in frames)  # every frame audited exactly once
    by_name = {r["name"]: r for r in frames}
    for fold in plan:
        assert not set(fold.training) & set(fold.audited)  # no audited frame seen in training
        for t in fold.training:  # every training frame is at least the gap from every audited one
            rt = by_name[t]
            near = [abs(rt["time"] - by_name[a]["time"]) for a in fold.audited if by_name[a]["clip"] == rt["clip"]]
            assert not near or min(near) > gap - 1e-9
        # and nothing else is left out: frames outside the gap all train
        left_out = set(by_name) - set(fold.training) - set(fold.audited)
        for name in left_out:
            r = by_name[name]
            assert min(abs(r["time"] - by_name[a]["time"]) for a in fold.audited
                       if by_name[a]["clip"] == r["clip"]) <= gap + 1e-9


def test_too_few_folds_or_frames_are_refused():
    with pytest.raises(VeilError, match="at least 2 folds"):
        plan_folds(records({0: 50}), 1, 1.0)
    with pytest.raises(VeilError, match="too few"):
        plan_folds(records({0: 3}), 2, 1.0)
    with pytest.raises(VeilError, match="no training frame"):
        plan_folds(records({0: 20}), 2, 100.0)


@pytest.fixture(scope="module")
def cross_fitted(tmp_path_factory, dataset):
    from veil.training.presets import make_config
    from veil.training.state import build_models, save_models

    root = tmp_path_factory.mktemp("crossfit")
    # the first 10 s of the test clip: two 5-s folds, each audited through its own tracks
    dataset = first_frames(dataset, root / "ds", 50)
    config = make_config("smoke", dataset)
    o, _ = build_models(config)
    (root / "recipe").mkdir()
    checkpoint = root / "recipe" / "obfuscator.safetensors"
    save_models(checkpoint, config, o, None, {"adversaries": config.adversaries})
    out = root / "report"
    args = ("audit", checkpoint, "--dataset", dataset, "--out", out, "--preset", "smoke", "--cross-fit", "2",
            "--baselines", "gaussian_blur", "--protocol", "reid", "--device", "cpu")
    first = veil(*args)
    assert first.returncode == 0, first.stderr
    return load_report(out), out, dataset, args


def test_no_audited_frame_was_seen_by_its_folds_obfuscator(cross_fitted):
    report, out, dataset, _ = cross_fitted
    assert report.cross_fit is not None and report.cross_fit.folds == 2
    all_frames = {r["name"] for r in read_json(dataset / "manifest.json")["frames"]}
    audited = set()
    for k in range(2):
        manifest = read_json(out / "folds" / f"fold{k}" / "dataset" / "manifest.json")
        test, trained = set(manifest["splits"]["test"]), set(manifest["splits"]["train"] + manifest["splits"]["val"])
        assert test and trained and not test & trained
        audited |= test
        assert (out / "folds" / f"fold{k}" / "run" / "obfuscator.safetensors").is_file()
    assert audited == all_frames  # the whole clip is audited


def test_pooled_figures_rest_on_every_folds_identities(cross_fitted):
    report, out, _, _ = cross_fitted
    for protocol, labels in report.labels.identity.items():
        folds = [load_report(out / "folds" / f"fold{k}").labels.identity[protocol] for k in range(2)]
        assert labels.folds == 2 and labels.identities == sum(f.identities for f in folds)
        assert labels.test_crops == sum(f.test_crops for f in folds) == report.cross_fit.test_crops[protocol]
        original = report.method("original").identity[protocol]
        assert original.test_crops == labels.test_crops and original.groups == labels.identities
        lo, hi = original.worst_case.interval
        assert 0 <= lo <= original.worst_case.value <= hi <= 1
    v = report.verdict
    assert v is not None and v.protocols["reid"].obfuscator is not None
    blur = v.protocols["reid"].obfuscator.baselines["gaussian_blur"]
    assert blur.difference is not None and blur.difference.detectable is not None  # paired over pooled folds
    text = " ".join(v.summary)
    assert "over 2 folds" in text and "quick audit" not in text
    html = (out / "report.html").read_text()
    assert 'id="cross-fit"' in html and "training recipe" in html and 'id="figures-table"' in html


def test_a_second_run_resumes_from_the_cache(cross_fitted):
    report, out, _, args = cross_fitted
    cached = sorted((out / "folds").rglob("*.npz"))
    assert cached  # every attacker fit of every fold and method is on disk
    before = {p: p.stat().st_mtime_ns for p in cached}
    stored = sorted((out / "folds").glob("fold*/pooled-inputs.npz"))
    assert len(stored) == 2  # each finished fold, whole
    again = veil(*args)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("finished before, read back") == 2  # no fold prepared or attacked again
    assert {p: p.stat().st_mtime_ns for p in cached} == before  # read back, not fitted again
    assert load_report(out).method("original").identity["reid"].worst_case == \
        report.method("original").identity["reid"].worst_case


def test_another_headline_figure_re_pools_the_stored_folds(cross_fitted):
    report, out, _, args = cross_fitted
    assert report.verdict is not None and report.verdict.headline_figure == "auc"  # the default
    again = veil(*args, "--headline", "mAP")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("finished before, read back") == 2  # the verdict changed, no fold was audited again
    v = load_report(out).verdict
    assert v is not None and v.headline_figure == "mAP"
    assert v.protocols["reid"].original == report.identity("original", "reid", "mAP").value


def test_a_fold_stored_before_the_attribute_floor_gets_it_without_a_re_audit(cross_fitted):
    import json

    import numpy as np

    from veil.audit import fold_store
    from veil.audit.report import BOXES

    report, out, _, args = cross_fitted
    floor = report.method(BOXES).attributes
    assert floor is not None  # a fresh audit measures the attribute floor
    for path in sorted((out / "folds").glob("fold*/pooled-inputs.npz")):  # as a store written before it existed
        with np.load(path, allow_pickle=False) as z:
            key = json.loads(str(z["layout"]))["key"]
        stored = fold_store.load(path, key)
        assert stored is not None
        raw, n_ap, grid = stored
        del raw[BOXES]["attributes"]
        fold_store.save(path, key, raw, n_ap, grid)
    again = veil(*args)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("finished before, read back") == 2  # no fold audited again
    assert again.stdout.count("adding the attribute floor") == 2
    assert load_report(out).method(BOXES).attributes == floor  # the same figures as the fresh audit's
    third = veil(*args)  # the stores were completed: nothing is added twice
    assert third.returncode == 0 and "adding the attribute floor" not in third.stdout


def test_the_fit_cache_key_changes_with_every_setting_that_changes_a_fit_and_only_those():
    """Widening an audit (more baselines, protocols, attackers or seeds, another headline) must read back
    every fit already made; any other setting (crops, budget, codec, ...) must fit again."""
    from dataclasses import fields, replace

    from veil.audit.config import PRESETS, AuditConfig
    from veil.audit.crossfit import FIT_NEUTRAL, _settings_digest

    base = PRESETS["strong"]
    other = {"attackers": ("hog_linear",), "crop_size": (24, 48), "epochs": 7, "patience": None, "augment": "none",
             "batch_size": 8, "seeds": 2, "seed": 5, "protocols": ("tracking",), "reid_splits": ("val",),
             "tracking_split": "val", "time_gap": 3.0, "min_track": 4, "train_fraction": 0.5,
             "val_fraction": 0.1, "attribute_train_frames": 3, "max_attribute_train": 7, "max_attribute_test": 7,
             "fuse_boxes": False, "baselines": ("noise",), "ap_frames": 3, "transfer": False,
             "transfer_detectors": (), "codec": "jpeg@85", "unet_steps": 3, "unet_crop": 32, "unet_width": 0.25,
             "sweep_points": 3, "calibration_steps": 2, "ap_tolerance": 0.1, "headline": "mAP", "bootstrap": 10,
             "level": 0.9, "compare_presets": ("smoke",), "device": "cuda", "workers": 1}
    assert set(other) == {f.name for f in fields(AuditConfig)}  # a new setting must be placed on one side
    for name, value in other.items():
        changed = _settings_digest(replace(base, **{name: value})) != _settings_digest(base)
        assert changed == (name not in FIT_NEUTRAL), name


def test_cross_fit_needs_exactly_one_checkpoint(dataset, tmp_path):
    r = veil("audit", "--dataset", dataset, "--out", tmp_path / "r", "--cross-fit", "2")
    assert_one_line_error(r, "exactly one checkpoint")


def test_a_stored_fold_reads_back_exactly_and_only_under_its_own_key(tmp_path):
    import torch

    from veil.audit import fold_store
    from veil.audit.attacks import Predictions
    from veil.audit.figures import Scores

    rng = np.random.default_rng(0)
    scores = [Scores(rng.random((6, 3)), rng.random((4, 3)), np.array([0, 1, 2])) for _ in range(2)]
    identity = Predictions(task="identity", truth=np.array([0, 1, 2, 0, 1, 2]), groups=np.array(["a", "b", "c"] * 2),
                           pred={"hog_linear": [rng.integers(0, 3, 6), rng.integers(0, 3, 6)]},
                           budgets={"hog_linear": {"C": 0.1, "epochs": None}}, scores={"hog_linear": scores},
                           gallery=np.array([0, 1, 2, 2]))
    attributes = Predictions(task="attributes", truth=rng.integers(0, 2, (6, 3)), groups=np.arange(6),
                             pred={"small_cnn": [rng.integers(0, 2, (6, 3))]}, budgets={"small_cnn": {}})
    raw = {"original": {"reid": identity, "attributes": attributes}, "gaussian_blur (matched)": {"reid": identity}}
    grid = {"original": torch.rand(2, 3, 8, 8)}
    key = {"checkpoint": "abc", "config": {"seeds": 2, "crop_size": (24, 48)}, "sweep": True}
    path = tmp_path / "fold" / "pooled-inputs.npz"
    fold_store.save(path, key, raw, 7, grid)
    back, ap_frames, grid_back = fold_store.load(path, key)
    assert ap_frames == 7 and torch.equal(grid_back["original"], grid["original"])
    assert set(back) == set(raw) and set(back["original"]) == {"reid", "attributes"}
    for method, tasks in raw.items():
        for task, p in tasks.items():
            q = back[method][task]
            assert q.task == p.task and q.budgets == p.budgets
            np.testing.assert_array_equal(q.truth, p.truth)
            np.testing.assert_array_equal(q.groups, p.groups)
            assert all(np.array_equal(a, b) for a, b in zip(q.pred["hog_linear" if task == "reid" else "small_cnn"],
                                                           p.pred["hog_linear" if task == "reid" else "small_cnn"]))
            assert (q.gallery is None) == (p.gallery is None)
            for a, runs in p.scores.items():
                for s, t in zip(runs, q.scores[a]):
                    np.testing.assert_array_equal(s.test, t.test)
                    np.testing.assert_array_equal(s.train, t.train)
    assert fold_store.load(path, {**key, "checkpoint": "other"}) is None  # another obfuscator: audited again
    assert fold_store.load(path, {**key, "sweep": False}) is None  # other settings: audited again
    path.write_bytes(b"not a zip")
    assert fold_store.load(path, key) is None  # unreadable: audited again, never an error
