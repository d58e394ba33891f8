"""``veil sweep width`` through the real CLI: smoke trainings of two widths, one audit over
both, the table, the plot; a finished run is reused, not trained again; bad input is one line."""

from __future__ import annotations

import csv
import json

import pytest

from tests.audit.test_report import small_dataset
from tests.cli.test_bad_input import assert_one_line_error, veil


@pytest.fixture(scope="module")
def small(tmp_path_factory, dataset):
    return small_dataset(dataset, tmp_path_factory.mktemp("sweep") / "ds")


def sweep(ds, out, *extra):
    return veil("sweep", "width", ds, "--widths", "0.25,0.5", "--preset", "smoke", "--audit-preset", "smoke",
                "--device", "cpu", "--out", out, *extra)


def test_sweep_width_end_to_end_and_reuse(small, yolo, tmp_path):
    out = tmp_path / "study"
    r = sweep(small, out)
    assert r.returncode == 0, r.stderr
    table = json.loads((out / "table.json").read_text())
    rows = table["rows"]
    assert [row["width"] for row in rows] == [0.25, 0.5] and {row["status"] for row in rows} == {"trained"}
    assert rows[0]["parameters"] < rows[1]["parameters"] and rows[0]["macs"] < rows[1]["macs"]
    for row in rows:
        assert (out / f"width-{row['width']:g}" / "obfuscator.safetensors").is_file()
        assert row["relative_ap_test"] >= 0 and row["latency_ms"] > 0
        for key in ("identity_reid", "identity_tracking", "attributes_mA"):
            lo, hi = row[f"{key}_interval"]
            assert lo <= row[key] <= hi
    with open(out / "table.csv") as f:
        assert [float(x["width"]) for x in csv.DictReader(f)] == [0.25, 0.5]
    assert (out / "complexity.png").read_bytes()[:4] == b"\x89PNG"
    html = (out / "audit" / "report.html").read_text()
    assert 'id="obfuscators-table"' in html and "width-0.25" in html and "width-0.5" in html
    assert "width 0.25:" in r.stdout and "MMACs" in r.stdout
    # a finished run is reused as it is: nothing trains, nothing is rewritten
    from veil.experiments.width import train_width, width_config

    run = out / "width-0.25"
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    said = []
    checkpoint, status = train_width(small, run, width_config("smoke", small, 0.25, 0), "cpu", yolo, said.append)
    assert (checkpoint, status, said) == (run / "obfuscator.safetensors", "reused", [])
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == before


@pytest.mark.parametrize("widths, fragment", [("0.5,abc", "--widths must be positive numbers"),
                                              ("0,1", "--widths must be positive numbers"),
                                              ("1,1", "lists a width twice")])
def test_bad_widths(small, tmp_path, widths, fragment):
    r = veil("sweep", "width", small, "--widths", widths, "--out", tmp_path / "o")
    assert_one_line_error(r, fragment)
    assert not (tmp_path / "o").exists()


def test_missing_dataset(tmp_path):
    r = veil("sweep", "width", tmp_path / "nowhere", "--out", tmp_path / "o")
    assert_one_line_error(r, "not a prepared dataset")
    assert not (tmp_path / "o").exists()


def test_unknown_audit_preset_fails_before_training(small, tmp_path):
    r = veil("sweep", "width", small, "--audit-preset", "huge", "--preset", "smoke", "--out", tmp_path / "o")
    assert_one_line_error(r, "unknown audit preset")
    assert not (tmp_path / "o").exists()
