"""The docs stay true: bench/results/README.md is what the JSON files say now, the README's headline
figures are in the JSON files they link, and the docs site builds with ``mkdocs build --strict``
(a broken page link, a missing file or a docstring mkdocstrings cannot render fails it)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import results_index  # noqa: E402  (bench/ is no package)


def test_results_readme_is_current():
    assert results_index.main(["--check"]) == 0, "run `python bench/results_index.py` and commit the README"


def test_results_index_reads_figures_from_the_json_and_refuses_a_missing_path(tmp_path):
    results = tmp_path / "results"
    (results / "run").mkdir(parents=True)
    row = {"relative_ap": 0.912345, "identity_reid": {"value": 0.4, "interval": [0.2, 0.6]}}
    (results / "run.json").write_text(json.dumps({"runs": {"A": row}, "speed_ms": 12.0}))
    (results / "new.json").write_text(json.dumps({"throughput_fps": 7.31, "nested": {"p95_ms": 606.4}}))
    (results / "odd.json").write_text(json.dumps([1, 2, 3]))  # shapes the generator does not know still pass
    (results / "other").mkdir()
    (results / "other" / "report.json").write_text(json.dumps({"methods": ["not", "a", "dict"]}))
    notes = tmp_path / "notes.yaml"
    notes.write_text("run:\n  title: A run\n  about: 'took {{speed_ms}} ms'\n")
    text = results_index.render(results, notes)
    assert "took 12.0 ms" in text
    assert "| A | 0.912 | 0.400 [0.20, 0.60] |" in text
    # an unknown file still gets a section with its top-level figures
    assert "`throughput_fps`: 7.3" in text and "`nested.p95_ms`: 606.4" in text
    assert results_index.main(["--results", str(results), "--notes", str(notes)]) == 0
    assert results_index.main(["--check", "--results", str(results), "--notes", str(notes)]) == 0
    (results / "run.json").write_text(json.dumps({"speed_ms": 13.0}))
    assert results_index.main(["--check", "--results", str(results), "--notes", str(notes)]) == 1
    notes.write_text("run:\n  about: 'took {{speed_s}} s'\n")
    with pytest.raises(results_index.NotesError, match="speed_s"):
        results_index.render(results, notes)


def _numbers(data) -> list[float]:
    if isinstance(data, dict):
        return [n for v in data.values() for n in _numbers(v)]
    if isinstance(data, list):
        return [n for v in data for n in _numbers(v)]
    if isinstance(data, int | float) and not isinstance(data, bool):
        return [float(data)]
    return []


def test_readme_is_short_opens_with_the_two_commands_and_every_headline_figure_is_in_its_json():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    first_block = text.split("```")[1]
    assert "make demo" in first_block and "make test" in first_block
    rows = [line for line in text.splitlines() if line.startswith("|") and "](bench/results/" in line]
    assert len(rows) >= 5
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        value, source = cells[1], cells[-1]
        target = ROOT / re.search(r"\]\((bench/results/[^)]+\.json)\)", source).group(1)
        known = _numbers(json.loads(target.read_text()))
        for shown in re.findall(r"-?\d+\.?\d*", value):
            decimals = len(shown.split(".")[1]) if "." in shown else 0
            assert any(round(n, decimals) == float(shown) for n in known), f"{shown} ({row[:60]}...) not in {target}"


def test_docs_site_builds_strictly(tmp_path):
    mkdocs = pytest.importorskip("mkdocs")
    assert mkdocs
    pytest.importorskip("mkdocstrings")
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    site = tmp_path / "site"
    # the API reference was rendered from the docstrings, and the measured results were published
    assert 'id="veil.audit' in (site / "reference" / "audit" / "index.html").read_text()
    assert (site / "results" / "cpu-525-3seeds.json").is_file()


@pytest.mark.parametrize("page", ["README.md", "CONTRIBUTING.md"])
def test_every_relative_link_of_the_top_level_pages_exists(page):
    text = (ROOT / page).read_text()
    links = [target.split("#")[0] for target in re.findall(r"\]\(([^)\s]+)\)", text)
             if not target.startswith(("http://", "https://", "#"))]
    assert links
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, f"{page} links files that are not there: {missing}"
