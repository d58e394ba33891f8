"""A small real audit end to end: intervals on every figure, both identity protocols, seeds,
report.json, and report.html opened in headless Chromium."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from veil.audit.report import Figure, load_report
from veil.io import read_json, write_json

TINY = dict(
    crop_size=(24, 48), epochs=2, patience=1, attackers=("hog_linear", "small_cnn"),
    baselines=("gaussian_blur", "detect_mask"), attribute_train_frames=10, max_attribute_train=64,
    max_attribute_test=48, ap_frames=3, unet_steps=5, unet_crop=48, unet_width=0.25, sweep_points=1,
    calibration_steps=1, min_track=5, seeds=2, bootstrap=200, transfer=True, fuse_boxes=True,
)


def small_dataset(src: Path, dst: Path, n_train: int = 10, n_val: int = 5, n_test: int = 20) -> Path:
    """A copy of a prepared dataset with few frames (symlinked): the first train frames, the
    last val frames and the first test frames, so val and test stay contiguous in time."""
    splits = read_json(src / "manifest.json")["splits"]
    return small_dataset_of(src, dst, {"train": splits["train"][:n_train], "val": splits["val"][-n_val:],
                                       "test": splits["test"][:n_test]})


def first_frames(src: Path, dst: Path, n: int) -> Path:
    """A copy of a prepared dataset (symlinked) cut to its first ``n`` frames in time, split
    60/20/20 in order: a short contiguous clip for the audits that use every frame."""
    manifest = read_json(src / "manifest.json")
    names = [f["name"] for f in sorted(manifest["frames"], key=lambda f: float(f["time"]))[:n]]
    a, b = int(n * 0.6), int(n * 0.8)
    return small_dataset_of(src, dst, {"train": names[:a], "val": names[a:b], "test": names[b:]})


def small_dataset_of(src: Path, dst: Path, splits: dict[str, list[str]]) -> Path:
    """A copy of a prepared dataset with exactly these ``splits`` (frames symlinked)."""
    manifest, labels = read_json(src / "manifest.json"), read_json(src / "labels.json")
    keep = {n for names in splits.values() for n in names}
    (dst / "frames").mkdir(parents=True)
    for name in keep:
        os.symlink(src / "frames" / name, dst / "frames" / name)
    write_json(dst / "labels.json", {n: v for n, v in labels.items() if n in keep})
    split_of = {n: s for s, names in splits.items() for n in names}
    frames = [{**f, "split": split_of[f["name"]]} for f in manifest["frames"] if f["name"] in keep]
    write_json(dst / "manifest.json", {**manifest, "splits": splits, "frames": frames})
    return dst


@pytest.fixture(scope="module")
def audit(tmp_path_factory, yolo, dataset):
    from veil.audit import run_audit
    from veil.obfuscators import OBFUSCATORS

    ds = small_dataset(dataset, tmp_path_factory.mktemp("audit") / "ds")
    out = ds.parent / "report"
    obfuscator = OBFUSCATORS.build("mobilenet_ae", width=0.25)  # untrained: the pipeline, not the result
    report = run_audit(ds, obfuscator, out, yolo, preset="fast", sweep=True, overrides=TINY)
    return report, out


def _assert_figure(f: Figure, seeds: int) -> None:
    lo, hi = f.interval
    assert 0 <= lo <= hi <= 1
    assert len(f.per_seed) == seeds and f.max == max(f.per_seed)
    assert f.value == pytest.approx(sum(f.per_seed) / seeds)


def test_every_figure_has_an_interval_under_both_protocols(audit):
    report, out = audit
    on_disk = load_report(out)
    # what was written reads back as the same typed report (the in-memory one also holds the paired replicates)
    assert on_disk.model_dump_json() == report.model_dump_json()
    assert report.protocols == ["reid", "tracking"]
    matched = [report.matched(b) for b in ("gaussian_blur", "detect_mask")]
    assert matched == ["gaussian_blur (matched)", "detect_mask (matched)"]
    for name in ("original", "obfuscator", "reconstruction", *matched):
        m = report.method(name)
        for protocol in ("reid", "tracking"):
            r = m.identity[protocol]
            # each pixel attacker, and each fused with the boxes (the cloud holds both)
            assert set(r.per_attacker) == {"hog_linear", "small_cnn", "hog_linear+boxes", "small_cnn+boxes"}
            fusion = r.per_attacker["small_cnn+boxes"].budget["fusion"]
            assert fusion == "class probabilities of small_cnn x box_logistic"
            for a in r.per_attacker.values():
                assert a.top1 is not None
                _assert_figure(a.top1, 2)
            _assert_figure(r.worst_case, 2)
            # the worst case is taken per seed, over attackers
            per_seed = [max(a.main.per_seed[s] for a in r.per_attacker.values()) for s in range(2)]
            assert r.worst_case.per_seed == pytest.approx(per_seed)
            assert r.winner in r.per_attacker
        assert m.attributes is not None
        _assert_figure(m.attributes.worst_case, 2)
        for a in m.attributes.per_attacker.values():
            assert a.mA is not None
            _assert_figure(a.mA, 2)
    budget = report.method("original").identity["reid"].per_attacker["small_cnn"].budget
    assert budget["attacker"] == "small_cnn" and budget["epochs_run"] <= 2  # the budget it really trained with


def test_one_obfuscator_keeps_the_old_names(audit):
    report, _ = audit
    kinds = {name: m.kind for name, m in report.methods.items()}
    assert (kinds["obfuscator"], kinds["reconstruction"]) == ("obfuscator", "reconstruction")
    assert report.reconstruction is not None and report.reconstruction.steps == 5
    assert report.verdict is not None and report.verdict.obfuscator == "obfuscator"
    assert report.verdict.pairs == [] and set(report.obfuscators) == {"obfuscator"}


def test_protocols_report_their_sizes_and_the_gap(audit):
    report, _ = audit
    reid, tracking = report.labels.identity["reid"], report.labels.identity["tracking"]
    assert reid.splits == ["val", "test"] and tracking.splits == ["test"]
    for d in (reid, tracking):
        assert d.identities >= 2 and d.train_crops > 0 and d.test_crops > 0
    assert reid.min_train_to_test_gap_s >= 1.0 - 1e-6
    assert tracking.min_train_to_test_gap_s < 1.0  # today's protocol: neighbouring frames


def test_verdict_speaks_in_intervals(audit):
    report, _ = audit
    outcomes = {"better", "worse", "not distinguishable"}
    assert report.verdict is not None
    for protocol, v in report.verdict.protocols.items():
        assert v.original_vs_chance in {"above", "below", "not distinguishable"}
        assert v.obfuscator is not None
        for b in v.obfuscator.baselines.values():
            assert b.obfuscator_is in outcomes
            d = b.difference  # paired: same crops and resamples, so a difference with its power
            assert d is not None and d.detectable is not None and d.detectable > 0
            assert (b.obfuscator_is == "better") == (d.interval[1] < 0)
            assert (b.obfuscator_is == "worse") == (d.interval[0] > 0)
        assert report.verdict.headline_figure == "auc"  # the default: the tightest intervals (AuditConfig.headline)
        assert v.chance == report.identity_chance(protocol, "auc") == 0.5
        assert v.original == report.identity("original", protocol, "auc").value
    # the floor: the boxes alone, paired with the original and the obfuscator on the same resamples
    floor = report.method("boxes only")
    assert floor.kind == "floor" and floor.relative_ap == 1.0
    for protocol, v in report.verdict.protocols.items():
        assert set(floor.identity[protocol].per_attacker) == {"box_knn", "box_logistic", "size_knn", "size_logistic"}
        assert v.boxes == floor.identity[protocol].figure("auc").value and v.boxes_interval is not None
        assert v.original_vs_boxes in outcomes and v.original_boxes_difference is not None
        assert v.obfuscator is not None and v.obfuscator.vs_boxes in outcomes
        d = v.obfuscator.boxes_difference
        assert d is not None and d.value == pytest.approx(v.obfuscator.value - v.boxes, abs=1e-4)
    # the attribute floor: the boxes alone on the attributes; with fuse_boxes (TINY) its four attackers join every
    # method's attribute attackers, so no worst case reads below it, seed by seed
    geometry = {"box_knn", "box_logistic", "size_knn", "size_logistic"}
    assert floor.attributes is not None and set(floor.attributes.per_attacker) == geometry
    for name, m in report.methods.items():
        if m.attributes is not None and m.kind != "floor":
            assert geometry < set(m.attributes.per_attacker), name
            assert all(x >= y - 1e-9 for x, y in zip(m.attributes.worst_case.per_seed,
                                                      floor.attributes.worst_case.per_seed)), name
    a = report.verdict.attributes
    assert a is not None and a.boxes_mA == floor.attributes.worst_case.value
    assert a.obfuscator.vs_boxes in {"worse", "not distinguishable"}  # joined: it cannot be below the floor
    d = a.obfuscator.boxes_difference
    assert d is not None and d.value == pytest.approx(a.obfuscator.value - a.boxes_mA, abs=1e-4)
    # the plain-language summary names every baseline with its numbers, and the audit's size
    text = " ".join(report.verdict.summary)
    assert "boxes alone" in text and "boxes-only floor" in text and "attribute floor" in text
    assert "identities" in text and "quick audit" in text
    for b in ("gaussian_blur", "detect_mask"):
        assert f"{b} (rel. AP" in text
    original = report.identity("original", "reid").value
    for name in ("gaussian_blur", "detect_mask"):
        curve = report.curves[name]
        anchor = curve.points[0]  # every curve starts at the original frames
        assert anchor.strength == curve.none_strength and anchor.identity_worst_case == original
        probed = {p.strength: p.relative_ap for p in curve.utility}
        cal = curve.calibrated
        assert cal is not None
        # the cheap utility probe and the full evaluation agree at the calibrated strength
        assert probed[cal.strength] == pytest.approx(cal.relative_ap)
    assert {"load", "labels", "attacks", "report", "total"} <= set(report.stage_seconds)


def test_utility_is_measured_under_every_offline_detector(audit):
    report, _ = audit
    assert report.detectors == ["yolo", "hog"]
    original = report.method("original")
    # the originals against their own pseudo-labels: full AP under each detector, nobody lost or added
    assert original.relative_ap_by_detector == {"yolo": pytest.approx(1.0), "hog": pytest.approx(1.0)}
    assert original.utility["count_mae"] == 0 and original.utility["idf1"] == pytest.approx(1.0)
    masked = report.method(report.matched("detect_mask"))
    assert set(masked.relative_ap_by_detector) == {"yolo", "hog"}
    assert masked.relative_ap_by_detector["yolo"] == pytest.approx(masked.relative_ap, abs=0.35)
    faces = original.utility["faces_original"]  # every original face is found again on the originals
    assert (original.utility["faces_kept"] == 1.0) if faces else math.isnan(original.utility["faces_kept"])
    for name, m in report.methods.items():
        if m.kind in ("reconstruction", "floor") or "@" in name:
            # an attack, not a deployable transform; a sweep curve's far end is a point of its curve; the
            # boxes-only floor has no frames
            assert m.relative_ap_by_detector == {} and m.utility == {}, name
        else:
            assert m.utility["faces_original"] == faces, name  # the same original frames for every method


def test_every_attribute_attack_says_which_attributes_leak(audit):
    report, _ = audit
    names = set(report.labels.attributes.names)
    for name, m in report.methods.items():
        if m.attributes is None:
            continue
        leak = m.attributes.per_attribute
        assert leak and set(leak) <= names, name
        assert all(0 <= v <= 1 for v in leak.values()), name
        winner = m.attributes.per_attacker[m.attributes.winner].mA.value  # their mean is the winner's mA
        assert sum(leak.values()) / len(leak) == pytest.approx(winner, abs=1e-3), name


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
    for protocol in ("reid", "tracking"):
        assert f'id="privacy-utility-{protocol}"' in dom  # one scatter with error bars per protocol
        assert f'id="attackers-table-{protocol}"' in dom
    assert dom.count("<svg") >= 2
    for table in ("verdict-table", "methods-table", "seeds-table", "budgets-table", "protocols-table",
                  "chance-table", "sweep-table", "times-table", "figures-table", "detectors-table"):
        assert f'id="{table}"' in dom
    leaks = dom.split('id="attributes-table"')[1].split("</table>")[0]  # a column per attacked method
    assert "Which attributes leak" in dom and "<th>original</th>" in leaks and "<th>obfuscator</th>" in leaks
    assert "data:image/jpeg;base64," in dom  # the frame grid, inline
    assert "not distinguishable" in dom or "better" in dom or "worse" in dom
    assert "% [" in dom  # figures carry their intervals
    assert "x: worst-case identity verification AUC over" in dom  # the plots show the verdict's figure
    assert 'src="http' not in dom and 'href="http' not in dom  # self-contained: nothing to fetch
