"""Several checkpoints in one ``veil audit A B C`` through the real CLI: prepared once, measured
under identical crops, labels, attackers and seeds, compared in one table and one plot (real
components, smoke budget)."""

from __future__ import annotations

import shutil

import pytest
import torch

from tests.audit.test_report import small_dataset
from tests.cli.test_bad_input import assert_one_line_error, veil
from veil.audit.report import Difference, load_report
from veil.training.config import TrainConfig
from veil.training.state import build_models, save_models


def checkpoint(folder, width, adversaries):
    """An untrained checkpoint (the pipeline, not the result) as ``veil train`` writes it."""
    config = TrainConfig(obfuscator_width=width)
    o, _ = build_models(config)
    folder.mkdir(parents=True)
    save_models(folder / "obfuscator.safetensors", config, o, None, {"adversaries": adversaries})
    return folder / "obfuscator.safetensors"


@pytest.fixture(scope="module")
def compared(tmp_path_factory, dataset):
    root = tmp_path_factory.mktemp("compare")
    ds = small_dataset(dataset, root / "ds")
    torch.manual_seed(1)
    a = checkpoint(root / "a", 0.25, {"budget": 2.0})
    (root / "a copy").mkdir()
    for suffix in ("safetensors", "json"):
        shutil.copy(a.with_suffix(f".{suffix}"), root / "a copy" / f"obfuscator.{suffix}")
    b = checkpoint(root / "b", 0.5, {"reconstruction": 1.0})
    out = root / "report"
    r = veil("audit", a, root / "a copy" / "obfuscator.safetensors", b, "--dataset", ds, "--out", out,
             "--preset", "smoke", "--baselines", "gaussian_blur", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    return load_report(out), out, ds


def test_each_obfuscator_gets_its_own_entry_under_identical_conditions(compared):
    report, _, _ = compared
    methods = report.methods
    for name in ("a", "a copy", "b"):
        assert methods[name].kind == "obfuscator"
        assert methods[f"{name} (reconstruction)"].kind == "reconstruction"
        o = report.obfuscators[name]
        assert o.reconstruction.method == f"{name} (reconstruction)"
        assert o.cost.parameters > 0
        assert o.cost.macs > 0 and o.cost.latency_ms > 0 and o.cost.latency["threads"] == 1
    # the same weights measured twice give the same figures: same frames, crops, labels, seeds
    for key in ("relative_ap", "identity", "attributes"):
        assert getattr(methods["a"], key) == getattr(methods["a copy"], key)
    # a wider network costs more, and the table says so
    rows = {r.method: r for r in report.obfuscator_table}
    assert rows["b"].parameters > rows["a"].parameters and rows["b"].macs > rows["a"].macs
    # what each checkpoint was trained with comes from the checkpoint itself
    assert rows["a"].adversaries == {"budget": 2.0} and rows["a"].obfuscator_args == {"width": 0.25}
    assert rows["b"].adversaries == {"reconstruction": 1.0} and rows["b"].obfuscator_args == {"width": 0.5}
    for p in report.protocols:
        lo, hi = rows["a"].identity[p].interval
        assert lo <= rows["a"].identity[p].value <= hi
    # one set of labels and one chance level for all of them
    assert set(report.chance.identity) == set(report.protocols)
    assert "gaussian_blur" in methods and report.sweep_target is None


def test_verdict_compares_the_obfuscators_with_each_other(compared):
    report, out, _ = compared
    v = report.verdict
    assert v is not None and v.obfuscator == "a" and set(v.obfuscators) == {"a", "a copy", "b"}
    pairs = {(c.a, c.b): c for c in v.pairs}
    assert set(pairs) == {("a", "a copy"), ("a", "b"), ("a copy", "b")}
    same = pairs[("a", "a copy")]
    assert all(o == "not distinguishable" for o in same.identity.values()) and same.relative_ap_a_minus_b == 0
    # paired on the same resamples, identical predictions differ by exactly 0 in every resample
    for p in report.protocols:
        assert same.identity_difference[p] == Difference(value=0.0, interval=(0.0, 0.0), detectable=0.0)
        ab = pairs[("a", "b")]
        d = ab.identity_difference[p]
        assert d is not None
        lo, hi = d.interval
        assert ab.identity[p] == ("better" if hi < 0 else "worse" if lo > 0 else "not distinguishable")
    # 3 pairs x (2 protocols + mA), each at 95 % on its own
    assert v.pairs_summary is not None and v.pairs_summary.comparisons == 3 * (len(report.protocols) + 1)
    assert v.pairs_summary.expected_by_chance == round(0.05 * v.pairs_summary.comparisons, 1)
    # the replicates served the verdict and are not written out
    assert '"paired"' not in (out / "report.json").read_text() and (out / "report.schema.json").is_file()
    for name in v.obfuscators:
        assert set(v.obfuscators[name].protocols["reid"].baselines) == {"gaussian_blur"}


def test_the_html_holds_one_comparison_table_and_plot(compared):
    report, out, _ = compared
    html = (out / "report.html").read_text()
    assert html.count('id="obfuscators-table"') == 1 and html.count('id="obfuscators-plot"') == 1
    table = html[html.index('id="obfuscators-table"'):html.index("</table>", html.index('id="obfuscators-table"'))]
    for name in ("a", "a copy", "b"):
        assert f'<td class="l">{name}</td>' in table
    assert "% [" in table  # intervals
    assert 'id="pairs-table"' in html
    plot = html[html.index('id="obfuscators-plot"'):]
    assert "<svg" in plot[:2000]


def test_same_run_folder_names_are_told_apart(tmp_path):
    from veil.cli.audit import method_names

    paths = [tmp_path / "x" / "seed0" / "o.safetensors", tmp_path / "y" / "seed0" / "o.safetensors",
             tmp_path / "z" / "o.safetensors", tmp_path / "z" / "o.safetensors"]
    here = tmp_path.name
    assert method_names(paths) == ["x/seed0", "y/seed0", f"{here}/z", f"{here}/z-2"]
    assert method_names([paths[0], paths[2]]) == ["seed0", "z"]
    assert method_names(paths[:1]) == ["obfuscator"]
    # snapshots of two runs, to audit privacy over training: run and epoch
    snaps = [tmp_path / r / "snapshots" / f"epoch{e:03d}.safetensors" for r in ("a", "b") for e in (7, 14)]
    assert method_names(snaps) == ["a/epoch007", "a/epoch014", "b/epoch007", "b/epoch014"]
    twins = [tmp_path / top / "a" / "snapshots" / "epoch007.safetensors" for top in ("x", "y")]
    assert method_names(twins) == ["x/a/epoch007", "y/a/epoch007"]


def test_baselines_are_named_or_none():
    from veil.cli.common import parse_baselines

    assert parse_baselines("none") == parse_baselines(" None ") == ()
    assert parse_baselines("gaussian_blur, detect_mask") == ("gaussian_blur", "detect_mask")


def test_unknown_baseline_is_one_line(tmp_path, dataset):
    r = veil("audit", "--dataset", dataset, "--out", tmp_path / "audit", "--baselines", "gaussian_blur,nope")
    assert_one_line_error(r, "unknown: 'nope'")
    assert not (tmp_path / "audit").exists()


def test_names_must_not_clash_with_the_audits_own():
    from veil.audit.measure import named_obfuscators
    from veil.errors import VeilError

    with pytest.raises(VeilError, match="original"):
        named_obfuscators({"original": torch.nn.Identity()})
