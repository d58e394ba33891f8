"""The codebase's shape, checked: imports only go downward through the layers, the edge and the
cloud do not import each other, sibling modules have no import cycles (import-linter, with the
contracts in pyproject.toml), and nothing outside the report module reads the audit report by
string keys."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    kept = re.findall(r"^(.+) KEPT$", result.stdout, re.M)
    # every contract ran (a contract missing from the config would pass silently)
    assert len(kept) == 3, result.stdout[-2000:]


def test_an_upward_import_breaks_the_layers_contract(tmp_path):
    """The contract can fail: a copy of the package whose data layer imports the audit is refused."""
    import shutil

    shutil.copytree(ROOT / "src" / "veil", tmp_path / "veil", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "veil" / "data" / "upward.py").write_text("from veil.audit import config  # noqa\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "pyproject.toml"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode != 0
    assert "Imports only go downward BROKEN" in result.stdout
    assert "veil.data.upward -> veil.audit" in result.stdout


REPORT_KEYS = re.compile(r"""\[["'](worst_case|verdict|methods|per_attacker|obfuscators|curves|calibrated)["']\]""")


def test_no_code_outside_the_report_module_reads_the_report_by_string_keys():
    offenders = []
    for folder in ("src", "bench", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "report.py" and path.parent.name == "audit" or path.name == "test_architecture.py":
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if REPORT_KEYS.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
