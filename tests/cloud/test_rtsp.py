"""veil edge on a real RTSP camera: GStreamer's RTSP server -> the agent -> nginx (TLS) -> veil serve.

The camera is killed mid-stream and restarted on the same port: the agent reports the outage on
its status line, reconnects with backoff and goes on uploading, without a traceback.
"""

import re
import selectors
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.cloud.conftest import decode, free_port, mean_abs
from tests.cloud.tls import make_certificates, run_tls_nginx
from veil.data.sources import open_stream
from veil.deployment.edge import EdgeAgent, EdgeConfig, load_obfuscator
from veil.errors import VeilError

SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's python3-gi lives here, not in the venv
RTSP_SERVER = Path(__file__).with_name("rtsp_server.py")


class RtspCamera:
    """tests/cloud/rtsp_server.py serving ``clip`` at rtsp://127.0.0.1:PORT/cam."""

    def __init__(self, clip: Path, port: int) -> None:
        self.clip, self.port, self.process = clip, port, None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam"

    def start(self, timeout: float = 20.0) -> None:
        self.process = subprocess.Popen([SYSTEM_PYTHON, str(RTSP_SERVER), str(self.clip), str(self.port)],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with selectors.DefaultSelector() as selector:  # bounded wait for its "ready" line
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout) or self.process.stdout.readline().strip() != "ready":
                self.kill()
                pytest.fail(f"the RTSP server did not start: {self.process.stderr.read()}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # SIGKILL: the camera vanishes, no RTSP TEARDOWN
        if self.process is not None:
            self.process.wait(10)


@pytest.fixture(scope="module")
def h264_clip(vtest, tmp_path_factory) -> Path:
    """20 s of real vtest at 320x240 and 10 fps, H.264 with a key frame each second (an IP camera's GOP)."""
    path = tmp_path_factory.mktemp("rtsp") / "camera.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-ss", "10", "-t", "20", "-i", str(vtest), "-vf",
                    "scale=320:240", "-r", "10", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
                    "-g", "10", "-bf", "0", "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def test_edge_pulls_rtsp_survives_a_camera_restart(server, tokens, onnx_obfuscator, h264_clip, tmp_path):
    obfuscate, size = load_obfuscator(onnx_obfuscator, threads=1)
    camera = RtspCamera(h264_clip, free_port())
    certificates = make_certificates(tmp_path / "tls")
    store = server.store / "cam2"
    before = set(store.iterdir()) if store.is_dir() else set()
    statuses: list[str] = []
    events: list[str] = []
    result: dict = {}
    with run_tls_nginx(free_port(), f"127.0.0.1:{server.port}", certificates, tmp_path / "nginx") as url:
        camera.start()
        config = EdgeConfig(source=camera.url, server=url, token=tokens[1]["cam2"], camera="cam2", size=size,
                            ca_file=str(certificates.ca), queue_size=4, backoff_start=0.2, backoff_max=1.0,
                            retry_for=60)
        agent = EdgeAgent(config, obfuscate, on_status=lambda s: statuses.append(s.line()), on_event=events.append)

        def run() -> None:
            try:
                result["stats"] = agent.run()
            except BaseException as exc:  # noqa: BLE001  reported by the assertion below
                result["error"] = exc

        runner = threading.Thread(target=run, daemon=True)
        try:
            runner.start()
            wait_for(lambda: agent.stats.sent >= 5 or not runner.is_alive(), 60, "5 frames from the camera")
            camera.kill()
            wait_for(lambda: agent.stats.source_attempts >= 3 or not runner.is_alive(), 20,
                     "3 failed reconnection attempts")
            camera.start()  # same port, the stream from its start
            wait_for(lambda: agent.stats.source_reconnects >= 1 or not runner.is_alive(), 30, "the reconnection")
            sent_back = agent.stats.sent  # the queue emptied during the outage: what follows is the new stream
            wait_for(lambda: agent.stats.sent >= sent_back + 5 or not runner.is_alive(), 60,
                     "5 more frames after the restart")
        finally:
            agent.stop.set()
            runner.join(30)
            camera.kill()
    assert not runner.is_alive(), "the agent did not stop"
    assert "error" not in result, repr(result.get("error"))
    stats = result["stats"]
    assert stats.source_reconnects == 1 and stats.sent >= sent_back + 5 and stats.rejected == 0, stats
    # Stopped mid-stream: every frame is accounted for; besides what was sent or dropped, only the queue's
    # frames and the one the sender had taken went unsent (the bound once missed that one, under load)
    assert stats.captured == stats.sent + stats.dropped + stats.unsent, stats
    assert 0 <= stats.unsent <= config.queue_size + 1, stats
    source_events = [e for e in events if e.startswith("source")]
    assert len(source_events) == 2, events
    assert source_events[0] == f"source lost: {camera.url} stopped delivering frames; reconnecting"
    assert source_events[1].startswith("source back after ")
    # The status line reported the outage, with backoff growing between attempts (0.2 -> 0.4 -> 0.8 -> 1 s;
    # it is sampled while the sender is idle, so the first steps may go unseen).
    outage = [line for line in statuses if "source lost for" in line]
    assert outage and "source lost" not in statuses[-1]
    waits = [float(w) for w in re.findall(r"next after ([\d.]+) s", " ".join(outage))]
    assert waits == sorted(waits) and len(set(waits)) >= 2 and max(waits) >= 0.8 and max(waits) <= 1.0
    # What arrived is the obfuscated camera picture, never the raw one.
    originals = list(open_stream(h264_clip))
    obfuscated = [obfuscate(image) for image in originals]
    new = sorted(set(store.iterdir()) - before)
    assert len(new) == stats.sent
    for path in new[:: max(1, len(new) // 8)]:
        image = decode(path.read_bytes())
        distance = [mean_abs(image, o) for o in obfuscated]
        assert min(distance) < 4.0, min(distance)
        assert min(mean_abs(image, o) for o in originals) > 20
    assert "Traceback" not in server.log.read_text()


def test_edge_gives_up_on_a_camera_gone_past_retry_for(server, tokens, onnx_obfuscator, h264_clip):
    obfuscate, size = load_obfuscator(onnx_obfuscator, threads=1)
    camera = RtspCamera(h264_clip, free_port())
    camera.start()
    config = EdgeConfig(source=camera.url, server=server.url, token=tokens[1]["cam2"], camera="cam2", size=size,
                        backoff_start=0.1, backoff_max=0.5, retry_for=1.5)
    agent = EdgeAgent(config, obfuscate)
    result: dict = {}

    def run() -> None:
        try:
            result["stats"] = agent.run()
        except VeilError as exc:
            result["error"] = exc

    runner = threading.Thread(target=run, daemon=True)
    try:
        runner.start()
        wait_for(lambda: agent.stats.sent >= 1 or not runner.is_alive(), 60, "a first frame")
        camera.kill()  # and never back
        runner.join(30)
    finally:
        agent.stop.set()
        runner.join(30)
        camera.kill()
    assert str(result.get("error")) == f"gave up after 1.5 s without the source: cannot open {camera.url}"
    assert agent.stats.source_attempts >= 3 and agent.stats.sent >= 1
