"""Time the test suite as `make test` runs it and record it: bench/results/suite-cpu.json.

    python bench/time_suite.py [--out bench/results/suite-cpu.json] [--clean-clone] [-- PYTEST ARGS]

Records the wall time, the pytest summary line, the slowest tests and the files that cost the most (each
file's setup, call and teardown seconds added up: under ``--dist loadfile`` a file is the unit the workers
share out, so it is what to cut when the suite runs over) and the machine, so the
suite's budget (about 15 minutes on a 2-core machine with the install, 90 at most in CI) is a measured
figure. With ``--clean-clone`` it clones this repository's HEAD into a temporary folder, times
``make install`` there (a fresh .venv from the registry, as CI does), and then the suite in that clone.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from veil.io import write_json  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "suite-cpu.json")
    parser.add_argument("--clean-clone", action="store_true", help="clone HEAD, time `make install`, then the suite")
    parser.add_argument("pytest_args", nargs="*")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="veil-clean-")) if args.clean_clone else None
    try:
        code = run_and_record(args.out, args.pytest_args, scratch)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch)  # the clone this script made, .venv and all, also when a step failed
    sys.exit(code)


def run_and_record(out_json: Path, pytest_args: list[str], scratch: Path | None) -> int:
    """Run the suite (in a fresh clone under ``scratch``, installed first, when given), write the JSON,
    and return pytest's exit code."""
    load_before = os.getloadavg()
    where, python, install = ROOT, sys.executable, None
    if scratch is not None:
        where = scratch / "veil"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(where)], check=True)
        start = time.perf_counter()
        # cold, as on a fresh machine: nothing from uv's or pip's download cache
        env = {**os.environ, "UV_NO_CACHE": "1", "PIP_NO_CACHE_DIR": "1"}
        made = subprocess.run(["make", "install"], cwd=where, capture_output=True, text=True, env=env)
        install = {"seconds": round(time.perf_counter() - start, 1), "exit_code": made.returncode,
                   "command": "make install (a fresh .venv from the registry)"}
        if made.returncode != 0:
            sys.exit(f"error: make install failed in the clean clone:\n{made.stderr[-2000:]}")
        python = str(where / ".venv" / "bin" / "python")
    start = time.perf_counter()
    # the command `make test` runs (its PYTEST_ARGS), plus every test's duration
    make_args = re.search(r"^PYTEST_ARGS\s*:=\s*(.+)$", (where / "Makefile").read_text(), re.M)
    command = [python, "-m", "pytest", *(make_args.group(1).split() if make_args else ["-q"]),
               "--durations=0", "--durations-min=0", *pytest_args]
    run = subprocess.run(command, cwd=where, capture_output=True, text=True)
    wall = time.perf_counter() - start
    out = run.stdout
    summary = next((ln.strip("= ") for ln in reversed(out.splitlines()) if re.search(r"\d+ (passed|failed)", ln)), "")
    slowest = re.findall(r"^([\d.]+)s (call|setup|teardown)\s+(\S+)", out, re.M)
    files: dict[str, float] = {}
    for seconds, _, test in slowest:
        name = test.split("::")[0]
        files[name] = files.get(name, 0.0) + float(seconds)
    result = {"date": datetime.now(UTC).strftime("%Y-%m-%d"), "wall_seconds": round(wall, 1),
              "wall_minutes": round(wall / 60, 1), "exit_code": run.returncode, "summary": summary,
              "slowest": [{"seconds": float(s), "phase": p, "test": t} for s, p, t in slowest[:15]],
              "test_seconds": round(sum(files.values()), 1),
              "costliest_files": [{"seconds": round(s, 1), "file": f}
                                  for f, s in sorted(files.items(), key=lambda x: -x[1])[:20]],
              "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                          "python": platform.python_version(),
                          "loadavg_before": [round(x, 2) for x in load_before],
                          "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
              "command": " ".join(["python", *command[1:]]), "budget_minutes": 15}
    if run.returncode != 0:
        # what failed and why, kept: a failure seen once under the suite's load may not come back on its own
        failures = out.find("= FAILURES =")
        result["failures"] = out[failures:failures + 6000] if failures >= 0 else out[-3000:]
    if install is not None:
        result["clean_clone"] = {"install": install, "install_plus_suite_minutes": round(
            (install["seconds"] + wall) / 60, 1)}
    write_json(out_json, result)
    sys.stdout.write(out[-1500:])
    print(f"suite: {wall / 60:.1f} min -> {out_json}")
    return run.returncode


if __name__ == "__main__":
    main()
