"""Several obfuscators in one audit: prepared once, measured under identical crops, labels,
attackers and seeds, compared in one table and one plot (real components, smoke budget)."""

from __future__ import annotations

import copy

import pytest
import torch

from tests.audit.test_report import small_dataset


@pytest.fixture(scope="module")
def compared(tmp_path_factory, yolo, dataset):
    from veil.audit import run_audit
    from veil.obfuscators import OBFUSCATORS

    ds = small_dataset(dataset, tmp_path_factory.mktemp("compare") / "ds")
    torch.manual_seed(1)
    a = OBFUSCATORS.build("mobilenet_ae", width=0.25)  # untrained: the pipeline, not the result
    b = OBFUSCATORS.build("mobilenet_ae", width=0.5)
    info = {"a": {"obfuscator": "mobilenet_ae", "obfuscator_args": {"width": 0.25}, "adversaries": {"budget": 2.0}}}
    out = ds.parent / "report"
    report = run_audit(ds, {"a": a, "a copy": copy.deepcopy(a), "b": b}, out, yolo, preset="smoke",
                       overrides={"baselines": ("gaussian_blur",), "seeds": 2}, info=info)
    return report, out, ds


def test_each_obfuscator_gets_its_own_entry_under_identical_conditions(compared):
    report, _, _ = compared
    methods = report["methods"]
    for name in ("a", "a copy", "b"):
        assert methods[name]["kind"] == "obfuscator"
        assert methods[f"{name} (reconstruction)"]["kind"] == "reconstruction"
        o = report["obfuscators"][name]
        assert o["reconstruction"]["method"] == f"{name} (reconstruction)"
        assert o["cost"]["parameters"] > 0
        assert o["cost"]["macs"] > 0 and o["cost"]["latency_ms"] > 0 and o["cost"]["latency"]["threads"] == 1
    # the same weights measured twice give the same figures: same frames, crops, labels, seeds
    for key in ("relative_ap", "identity", "attributes"):
        assert methods["a"][key] == methods["a copy"][key]
    # a wider network costs more, and the table says so
    rows = {r["method"]: r for r in report["obfuscator_table"]}
    assert rows["b"]["parameters"] > rows["a"]["parameters"] and rows["b"]["macs"] > rows["a"]["macs"]
    assert rows["a"]["adversaries"] == {"budget": 2.0} and rows["a"]["obfuscator_args"] == {"width": 0.25}
    for p in report["protocols"]:
        lo, hi = rows["a"]["identity"][p]["interval"]
        assert lo <= rows["a"]["identity"][p]["value"] <= hi
    # one set of labels and one chance level for all of them
    assert set(report["chance"]["identity"]) == set(report["protocols"])
    assert "gaussian_blur" in methods and report["sweep_target"] is None


def test_verdict_compares_the_obfuscators_with_each_other(compared):
    report, _, _ = compared
    v = report["verdict"]
    assert v["obfuscator"] == "a" and set(v["obfuscators"]) == {"a", "a copy", "b"}
    pairs = {(c["a"], c["b"]): c for c in v["pairs"]}
    assert set(pairs) == {("a", "a copy"), ("a", "b"), ("a copy", "b")}
    same = pairs[("a", "a copy")]
    assert all(o == "not distinguishable" for o in same["identity"].values()) and same["relative_ap_a_minus_b"] == 0
    for name in v["obfuscators"]:
        assert set(v["obfuscators"][name]["protocols"]["reid"]["baselines"]) == {"gaussian_blur"}


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


def test_one_module_keeps_the_old_names(compared, yolo, tmp_path):
    from veil.audit import run_audit
    from veil.obfuscators import OBFUSCATORS

    _, _, ds = compared
    report = run_audit(ds, OBFUSCATORS.build("mobilenet_ae", width=0.25), tmp_path, yolo, preset="smoke",
                       overrides={"baselines": (), "protocols": ("tracking",)})
    assert {"original", "obfuscator", "reconstruction"} == set(report["methods"])
    assert report["reconstruction"]["steps"] == 5 and report["verdict"]["obfuscator"] == "obfuscator"
    assert "obfuscator" in report["verdict"]["protocols"]["tracking"] and "pairs" not in report["verdict"]
    assert (tmp_path / "report.html").is_file()


def test_names_must_not_clash_with_the_audits_own():
    from veil.audit.runner import named_obfuscators
    from veil.errors import VeilError

    with pytest.raises(VeilError, match="original"):
        named_obfuscators({"original": torch.nn.Identity()})
