"""Time the test suite as `make test` runs it and record it: bench/results/suite-cpu.json.

    python bench/time_suite.py [--out bench/results/suite-cpu.json] [-- PYTEST ARGS]

Records the wall time, the pytest summary line, the slowest tests (--durations) and the machine, so the
suite's budget (about 15 minutes on a 2-core machine, 90 at most in CI) is a measured figure.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from veil.io import write_json  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "suite-cpu.json")
    parser.add_argument("pytest_args", nargs="*")
    args = parser.parse_args()
    load_before = os.getloadavg()
    start = time.perf_counter()
    # the command `make test` runs (its PYTEST_ARGS), plus the slowest tests
    make_args = re.search(r"^PYTEST_ARGS\s*:=\s*(.+)$", (ROOT / "Makefile").read_text(), re.M)
    command = [sys.executable, "-m", "pytest", *(make_args.group(1).split() if make_args else ["-q"]),
               "--durations=15", *args.pytest_args]
    run = subprocess.run(command, cwd=ROOT,
                         capture_output=True, text=True)
    wall = time.perf_counter() - start
    out = run.stdout
    summary = next((ln.strip("= ") for ln in reversed(out.splitlines()) if re.search(r"\d+ (passed|failed)", ln)), "")
    slowest = re.findall(r"^([\d.]+)s (call|setup|teardown)\s+(\S+)", out, re.M)
    result = {"date": datetime.now(UTC).strftime("%Y-%m-%d"), "wall_seconds": round(wall, 1),
              "wall_minutes": round(wall / 60, 1), "exit_code": run.returncode, "summary": summary,
              "slowest": [{"seconds": float(s), "phase": p, "test": t} for s, p, t in slowest[:15]],
              "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                          "python": platform.python_version(),
                          "loadavg_before": [round(x, 2) for x in load_before],
                          "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
              "command": " ".join(["python", *command[1:]]), "budget_minutes": 15}
    write_json(args.out, result)
    sys.stdout.write(out[-3000:])
    print(f"suite: {wall / 60:.1f} min -> {args.out}")
    sys.exit(run.returncode)


if __name__ == "__main__":
    main()
