"""Shared fixtures: real footage (vtest), the real YOLOv8s detector, and a small real dataset."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest


def pytest_configure(config) -> None:
    """Under pytest-xdist (``make test``), each worker gets its share of the cores: torch threads, and
    through the environment those of every CLI subprocess it starts. Two workers with two threads
    each on two cores ran several times slower than one, as idle OpenMP threads spin."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not workers:
        return
    share = str(max(1, (os.cpu_count() or 1) // int(workers)))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(name, share)
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def shared(tmp_path_factory, name: str, build: Callable[[Path], Path]) -> Path:
    """What ``build(path)`` makes, made once per test run, not once per xdist worker: the workers share
    the run's temporary root, and a file lock lets one build while the others wait. A build that
    died half way (no marker) is removed and made again; it is the suite's own temporary file."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # pytest-N/, above this worker's popen-gwK/
    folder = root / "shared"
    folder.mkdir(exist_ok=True)
    target, done = folder / name, folder / f"{name}.done"
    with FileLock(str(folder / f"{name}.lock")):
        if not done.exists():
            if target.is_dir():
                shutil.rmtree(target)
            target.unlink(missing_ok=True)
            build(target)
            done.touch()
    return target


@pytest.fixture(scope="session", autouse=True)
def veil_cache(tmp_path_factory) -> Path:
    """Keep the user's cache untouched unless VEIL_CACHE is set (vtest is fetched once per run)."""
    if "VEIL_CACHE" not in os.environ:
        os.environ["VEIL_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    return Path(os.environ["VEIL_CACHE"])


@pytest.fixture(scope="session")
def vtest(veil_cache) -> Path:
    from veil.data.sources import vtest_path

    return vtest_path()


@pytest.fixture(scope="session")
def yolo():
    from veil.detectors import DETECTORS

    return DETECTORS.build("yolo")


@pytest.fixture(scope="session")
def vtest_clip(vtest, tmp_path_factory) -> Path:
    """The first 30 seconds of vtest, re-encoded: a short real clip for fast tests."""
    from veil.data.video import read_video, write_video

    def build(path: Path) -> Path:
        write_video(path, (f.image for f in read_video(vtest) if f.index < 300), fps=10.0)
        return path

    return shared(tmp_path_factory, "vtest30.avi", build)


@pytest.fixture(scope="session")
def dataset(vtest_clip, yolo, tmp_path_factory) -> Path:
    """A real prepared dataset: 30 s of vtest at 5 fps, 640x480, YOLO pseudo-labels.

    Split 60/10/30 (90/15/45 frames) so the test split is long enough for identity tracks.
    """
    from veil.data.dataset import PrepareConfig, prepare_dataset
    from veil.evaluation.cost import torch_threads

    config = PrepareConfig(fps=5.0, size=(640, 480), split=(0.6, 0.1, 0.3))

    def build(out: Path) -> Path:
        # Every core: the suite's first files all need the dataset, so the other workers wait on its lock.
        with torch_threads(os.cpu_count() or 1):
            return prepare_dataset(str(vtest_clip), out, yolo, config)

    # read-only for the tests: one that changes a dataset makes its own (tests/audit/test_report.small_dataset)
    return shared(tmp_path_factory, "vtest30", build)


@pytest.fixture(scope="session")
def short_clip(vtest, tmp_path_factory) -> Path:
    """The first 3 s of vtest (30 frames at its native 10 fps and 768x576), as MJPEG AVI."""
    from veil.data.video import read_video, write_video

    path = tmp_path_factory.mktemp("short") / "vtest3s.avi"
    frames = (f.image for f in itertools.takewhile(lambda f: f.index < 30, read_video(vtest)))
    assert write_video(path, frames, fps=10.0) == 30
    return path
