"""Habits the suite enforces: ruff (with import sorting) on src, tests and bench, and mypy on src.

``test_mypy_src`` runs ``mypy src`` with the [tool.mypy] settings of pyproject.toml (annotated code
only, not strict). Both tools are dev dependencies, so neither test is skipped: a skipped check cannot fail.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_src_tests_bench():
    run = _run("ruff", "check", "src", "tests", "bench")
    assert run.returncode == 0, run.stdout[-4000:]


def test_mypy_src():
    run = _run("mypy", "src")
    assert run.returncode == 0, run.stdout[-4000:]
