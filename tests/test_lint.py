"""Habits the suite enforces: ruff (with import sorting) on src, tests and bench, and mypy on src.

MYPY: ``test_mypy_src`` runs ``mypy src`` with the [tool.mypy] settings of pyproject.toml (annotated
code only, not strict). It fails until the type errors in src/ are fixed (the lead fixes them at merge).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_src_tests_bench():
    pytest.importorskip("ruff")
    run = _run("ruff", "check", "src", "tests", "bench")
    assert run.returncode == 0, run.stdout[-4000:]


def test_mypy_src():
    pytest.importorskip("mypy")
    run = _run("mypy", "src")
    assert run.returncode == 0, run.stdout[-4000:]
