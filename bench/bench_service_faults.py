"""Load and faults: K simulated cameras against nginx over 2 ``veil serve`` hosts on PostgreSQL -> JSON.

    PYTHONPATH=src python bench/bench_service_faults.py [--cameras 4] [--fps 0.5] [--duration 90]
        [--kill-at 25] [--host-back-after 5] [--pg-restart-at 60] [--out bench/results/serve-faults-cpu.json]

Each camera sends one obfuscated 320x240 vtest frame (an untrained obfuscator's output, JPEG q85,
as ``veil edge`` sends them) every 1/fps seconds for ``--duration`` seconds, numbered with
``X-Veil-Frame``. A frame is retried (backoff 0.1 s doubling to 2 s) on a dropped connection,
502, 503 or 429 until acknowledged or ``--give-up`` seconds pass; any other refusal is reported,
not retried. During the run host B is killed with SIGKILL (and started again), and PostgreSQL
is restarted once. Afterwards every acknowledged frame number is looked up in the database:
``records_lost`` counts acknowledged frames that are not there (target 0).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

SRC = Path(__file__).resolve().parents[1] / "src"
RETRYABLE = {0, 429, 502, 503, 504}  # 0: the connection dropped or was refused


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Host:
    """One ``veil serve`` process (a stand-in for one host)."""

    state: str
    log: Path
    port: int
    extra: tuple = ()
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Host:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "veil.cli.main", "serve", "--state", self.state, "--port", str(self.port),
                 "--threads", "1", *map(str, self.extra)], stdout=log, stderr=subprocess.STDOUT, env=env)
        return self

    def wait_ready(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"veil serve exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise SystemExit(f"veil serve did not come up in {timeout} s")

    def kill(self) -> None:
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


def frames(cameras: int, count: int, size: tuple[int, int] = (320, 240)) -> list[list[bytes]]:
    """``cameras`` lists of ``count`` JPEG bodies: consecutive vtest frames through an untrained obfuscator."""
    from veil.data.codec import encode
    from veil.data.sources import vtest_path
    from veil.data.video import read_video, resize
    from veil.deployment.obfuscate import apply
    from veil.training.config import TrainConfig
    from veil.training.state import build_models

    obfuscator = build_models(TrainConfig(obfuscator_width=0.25))[0].eval()
    raw = [resize(f.image, size) for f in read_video(vtest_path()) if 100 <= f.index < 100 + cameras * count]
    bodies = [encode(o, "jpeg", 85) for i in range(0, len(raw), 8) for o in apply(obfuscator, raw[i:i + 8])]
    return [bodies[c * count:(c + 1) * count] for c in range(cameras)]


@dataclass
class Load:
    """What the simulated cameras saw."""

    attempts: list[tuple[str, int, float, float, int]] = field(default_factory=list)  # camera, frame, t, s, status
    frames: list[tuple[str, int, bool, float, int, int]] = field(default_factory=list)  # ..., acked, s, tries, last
    lock: threading.Lock = field(default_factory=threading.Lock)


def camera(url: str, name: str, token: str, bodies: list[bytes], fps: float, duration: float, give_up: float,
           t0: float, load: Load) -> None:
    """One camera: a frame every 1/fps s (late frames go at once, none dropped), each retried until acknowledged."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "image/jpeg"}
    with httpx.Client(timeout=30) as client:
        for i in range(int(duration * fps)):
            delay = t0 + i / fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            first, tries, backoff, status = time.monotonic(), 0, 0.1, 0
            while time.monotonic() - first < give_up:
                tries += 1
                start = time.monotonic()
                try:
                    r = client.post(f"{url}/v1/cameras/{name}/frames", content=bodies[i % len(bodies)],
                                    headers={**headers, "X-Veil-Frame": str(i)})
                    status = r.status_code
                except httpx.TransportError:
                    status = 0
                with load.lock:
                    load.attempts.append((name, i, start - t0, time.monotonic() - start, status))
                if status not in RETRYABLE:
                    break
                time.sleep(backoff)
                backoff = min(2 * backoff, 2.0)
            with load.lock:
                load.frames.append((name, i, status == 200, time.monotonic() - first, tries, status))


def run_load(url: str, cameras: dict[str, tuple[str, list[bytes]]], fps: float, duration: float,
             faults: list[tuple[float, str, Callable[[], None]]], give_up: float = 60.0) -> tuple[Load, list[dict]]:
    """Run the cameras for ``duration`` s; call each fault at its time; return the load and the fault log."""
    load, log = Load(), []
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(len(cameras) + 1) as pool:
        runs = [pool.submit(camera, url, name, token, bodies, fps, duration, give_up, t0, load)
                for name, (token, bodies) in cameras.items()]
        for at, what, action in sorted(faults, key=lambda f: f[0]):
            delay = t0 + at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            start = time.monotonic()
            action()
            log.append({"fault": what, "at_s": round(start - t0, 2), "took_s": round(time.monotonic() - start, 2)})
        for run in runs:
            run.result()
    return load, log


def summary(load: Load, stored: dict[str, list[int]], wall: float) -> dict:
    """Throughput, latency percentiles, errors, and the loss check against what the database holds."""
    acked = [(c, i) for c, i, ok, *_ in load.frames if ok]
    lost = sorted((c, i) for c, i in acked if i not in set(stored.get(c, [])))
    ack_ms = np.array([s for _, _, ok, s, _, _ in load.frames if ok]) * 1000
    errors = Counter(str(status) for *_, status in load.attempts if status != 200)
    refused = Counter(str(last) for *_, ok, _, _, last in load.frames if not ok and last not in RETRYABLE)

    def pct(a):
        return {f"p{q}": round(float(np.percentile(a, q)), 1) for q in (50, 95, 99)} | {
            "max": round(float(a.max()), 1)} if len(a) else None

    return {"frames": len(load.frames), "acknowledged": len(acked), "throughput_fps": round(len(acked) / wall, 3),
            "latency_ms_until_acknowledged": pct(ack_ms),
            "latency_ms_per_attempt": pct(np.array([s for *_, s, st in load.attempts if st == 200]) * 1000),
            "attempts": len(load.attempts), "retries": len(load.attempts) - len(load.frames),
            "failed_attempts_by_status": dict(errors),  # "0": connection dropped or refused
            "gave_up": sum(1 for *_, ok, _, _, last in load.frames if not ok and last in RETRYABLE),
            "client_errors_reported": dict(refused),
            "records_lost": len(lost), "lost": [f"{c}#{i}" for c, i in lost[:20]],
            "duplicates_stored": sum(len(v) - len(set(v)) for v in stored.values())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--fps", type=float, default=0.5, help="Frames per second per camera.")
    parser.add_argument("--duration", type=float, default=90.0)
    parser.add_argument("--kill-at", type=float, default=25.0)
    parser.add_argument("--host-back-after", type=float, default=5.0)
    parser.add_argument("--pg-restart-at", type=float, default=60.0)
    parser.add_argument("--give-up", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/serve-faults-cpu.json"))
    args = parser.parse_args()
    from veil.cloud.auth import issue_token
    from veil.cloud.loadbalancer import run_nginx
    from veil.cloud.postgres import run_postgres
    from veil.cloud.state import SharedState
    from veil.io import write_json

    bodies = frames(args.cameras, 10)
    with run_postgres() as pg, tempfile.TemporaryDirectory(prefix="veil-bench-faults-") as tmp:
        tmp = Path(tmp)
        state = SharedState(pg.url)
        cams = {f"cam{c}": (issue_token(state, "camera", [f"cam{c}"])[1], bodies[c]) for c in range(args.cameras)}
        a = Host(pg.url, tmp / "a.log", free_port()).start()
        b = Host(pg.url, tmp / "b.log", free_port()).start()
        try:
            a.wait_ready()
            b.wait_ready()
            with run_nginx(free_port(), [f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"]) as url:
                back: list[threading.Thread] = []

                def restart_b() -> None:
                    b.start()
                    back.append(threading.Thread(target=b.wait_ready, daemon=True))
                    back[-1].start()

                faults = [(args.kill_at, "SIGKILL host B", b.kill),
                          (args.kill_at + args.host_back_after, "start host B again", restart_b),
                          (args.pg_restart_at, "restart PostgreSQL (fast shutdown, start)", pg.restart)]
                load_before = os.getloadavg()
                start = time.perf_counter()
                load, fault_log = run_load(url, cams, args.fps, args.duration, faults, args.give_up)
                wall = time.perf_counter() - start
                for t in back:
                    t.join(300)
                stored = {name: SharedState(pg.url).frame_ids(name) for name in cams}
        finally:
            a.stop()
            b.stop()
        logs = {name: (tmp / f"{name}.log").read_text(errors="replace") for name in ("a", "b")}
    result = {"setup": {"balancer": "nginx (Debian), round robin, max_fails=1 fail_timeout=2s",
                        "hosts": 2, "state": "PostgreSQL (Debian), one database", "cameras": args.cameras,
                        "fps_per_camera": args.fps, "duration_s": args.duration, "frame": "320x240 jpeg q85",
                        "detector": "yolo (YOLOv8s)", "torch_threads_per_host": 1,
                        "retry": "dropped connection, 429, 502, 503, 504: backoff 0.1-2 s, give up after "
                                 f"{args.give_up:g} s; other refusals reported"},
              "faults": fault_log, **summary(load, stored, wall), "wall_s": round(wall, 1),
              "tracebacks_in_host_logs": sum(text.count("Traceback") for text in logs.values()),
              "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                          "loadavg_before": load_before, "loadavg_after": os.getloadavg()}}
    write_json(args.out, result)
    print(f"{result['acknowledged']}/{result['frames']} acknowledged, {result['throughput_fps']} frames/s, "
          f"p50/p95/p99 {result['latency_ms_until_acknowledged']}, lost {result['records_lost']}, "
          f"retries {result['retries']} -> {args.out}")


if __name__ == "__main__":
    main()
