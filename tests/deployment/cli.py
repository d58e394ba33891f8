"""Running the real ``veil`` entry point in this process (no interpreter start-up per call)."""

from __future__ import annotations

import sys

import pytest

from veil.cli.main import main


def run_veil(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """Call ``veil ARGS`` through :func:`veil.cli.main.main`; returns (exit status, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["veil", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 1), out, err


def assert_one_error_line(result: tuple[int, str, str], fragment: str) -> None:
    code, _, err = result
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), err
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in err
