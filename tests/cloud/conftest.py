"""Real services on loopback: ``veil serve`` in subprocesses, a short vtest clip, a tiny ONNX obfuscator.

Every loop here is bounded: servers get a deadline to come up, and are stopped (SIGTERM, then
SIGKILL) when their fixture ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import shared

SRC = Path(__file__).resolve().parents[2] / "src"
FRAME_SIZE = (320, 240)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def veil_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    return env


def veil_command(*args) -> list[str]:
    return [sys.executable, "-m", "veil.cli.main", *map(str, args)]


@dataclass
class Server:
    """One ``veil serve`` process on 127.0.0.1 (a stand-in for one host)."""

    state: str | Path  # a folder (SQLite) or a postgresql:// URL
    log: Path
    port: int = field(default_factory=free_port)
    extra: tuple = ()
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> Server:
        args = ["serve", "--state", self.state, "--port", self.port, "--threads", 1, *self.extra]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(veil_command(*args), stdout=log, stderr=subprocess.STDOUT, env=veil_env())
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"veil serve exited with {self.process.returncode}:\n{self.log.read_text()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"veil serve did not come up in {timeout} s:\n{self.log.read_text()}")

    def kill(self) -> None:
        """Kill -9: the crash a worker suffers, no graceful shutdown."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)


# Tokens the package's tests use: a camera token per camera, and readers of each role.
CAMERAS = ("cam1", "cam2", "fault", "dash", "lb", "ret")
READERS = {"viewer": ("viewer", ["cam1"]), "viewer-all": ("viewer", ["*"]), "admin": ("admin", [])}


@pytest.fixture(scope="session")
def tokens(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The shared state folder holding the tokens, and the plain tokens by name (the state keeps only hashes).

    ``tokens[1][CAMERA]`` uploads to CAMERA; ``viewer`` reads cam1, ``viewer-all`` every camera, ``admin`` all.
    """
    from veil.cloud.auth import issue_token
    from veil.cloud.state import SharedState

    folder = tmp_path_factory.mktemp("serve") / "state"
    state = SharedState(folder)
    plain = {name: issue_token(state, "camera", [name])[1] for name in CAMERAS}
    plain.update({name: issue_token(state, role, cameras)[1] for name, (role, cameras) in READERS.items()})
    state.close()
    return folder, plain


@pytest.fixture(scope="session")
def server(tokens, tmp_path_factory, request):
    """The package's shared server (real YOLO), storing what it receives, with small size limits.

    Session-scoped, so one per xdist worker: ``--dist loadfile`` interleaves packages on a worker, and a
    package-scoped server (with its clip and obfuscator export) was torn down and built again, about 25 s
    each time, whenever a worker's next file came from another package."""
    root = tmp_path_factory.mktemp("serve-run")
    srv = Server(tokens[0], root / "serve.log",
                 extra=("--store", root / "store", "--max-bytes", 400_000, "--max-pixels", 1_000_000,
                        "--sweep-interval", 1))
    srv.store = root / "store"
    srv.start(wait=False)
    try:
        # Both take seconds of CPU: make the clip and export the obfuscator while the server boots.
        request.getfixturevalue("clip")
        request.getfixturevalue("onnx_obfuscator")
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def clip(vtest, tmp_path_factory) -> Path:
    """40 real vtest frames at 320x240 and 10 fps: a short camera recording."""
    from veil.data.video import read_video, resize, write_video

    path = tmp_path_factory.mktemp("clip") / "clip.avi"
    frames = (resize(f.image, FRAME_SIZE) for f in read_video(vtest) if 100 <= f.index < 140)
    write_video(path, frames, fps=10.0)
    return path


def clip_frames(path: Path) -> list[np.ndarray]:
    """The clip decoded as the agent decodes it (OpenCV, RGB)."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    out = []
    for _ in range(1000):
        ok, bgr = capture.read()
        if not ok:
            break
        out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    return out


@pytest.fixture(scope="session")
def onnx_obfuscator(tmp_path_factory) -> Path:
    """A tiny untrained obfuscator exported with ``veil export``'s code (its output is what matters);
    exported once per run, not once per xdist worker (the export takes about 15 CPU-seconds)."""

    def build(folder: Path) -> Path:
        from veil.deployment.export import export_onnx
        from veil.training.config import TrainConfig
        from veil.training.state import build_models, save_models

        folder.mkdir()
        config = TrainConfig(obfuscator_width=0.25)
        obfuscator, deobfuscator = build_models(config)
        save_models(folder / "obfuscator.safetensors", config, obfuscator, deobfuscator,
                    {"frame_size": list(FRAME_SIZE)})
        export_onnx(folder / "obfuscator.safetensors", folder / "obfuscator.onnx")
        return folder

    return shared(tmp_path_factory, "cloud-obfuscator", build) / "obfuscator.onnx"


def decode(body: bytes) -> np.ndarray:
    """An uploaded JPEG/WebP body as RGB."""
    import cv2

    bgr = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert bgr is not None, "an uploaded body is not an image"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute luma difference of two RGB frames.

    Luma, because JPEG keeps chroma at half resolution (4:2:0): on the untrained obfuscator's
    colour noise that alone costs ~11 levels per channel, while luma survives within ~2.
    """
    import cv2

    def luma(x):
        return cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).astype(np.float32)

    return float(np.abs(luma(a) - luma(b)).mean())
