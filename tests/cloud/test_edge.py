"""The edge agent against a real server: raw frames never leave, drop-oldest, restart and reconnect."""

import threading
import time

import numpy as np
import pytest

from tests.cloud.conftest import clip_frames, decode, mean_abs
from tests.cloud.recording_proxy import RecordingProxy
from veil.deployment.edge import DropOldestQueue, EdgeAgent, EdgeConfig, load_obfuscator
from veil.errors import VeilError


@pytest.fixture(scope="module")
def obfuscate(onnx_obfuscator):
    model, size = load_obfuscator(onnx_obfuscator, threads=1)
    assert size == (320, 240)  # read from the model card beside the .onnx
    return model


def assert_obfuscated(body: bytes, original: np.ndarray, obfuscated: np.ndarray) -> None:
    """``body`` decodes to the obfuscated frame (within JPEG error), far from the original."""
    image = decode(body)
    to_obfuscated, to_original = mean_abs(image, obfuscated), mean_abs(image, original)
    assert to_obfuscated < 4.0, to_obfuscated
    assert to_original > 8 * to_obfuscated and to_original > 20, (to_original, to_obfuscated)


def test_raw_frames_never_leave_the_edge(server, tokens, clip, obfuscate):
    originals = clip_frames(clip)[:12]
    with RecordingProxy(server.port) as proxy:
        config = EdgeConfig(source=str(clip), server=proxy.url, token=tokens[1]["cam1"], camera="cam1",
                            quality=90, max_frames=len(originals))
        stats = EdgeAgent(config, obfuscate).run()
    assert (stats.captured, stats.sent, stats.dropped, stats.rejected, stats.unsent) == (12, 12, 0, 0, 0)
    requests = proxy.requests()
    # Every byte the agent sent belongs to one of these requests, and each is one frame upload.
    assert sum(len(s) for s in proxy.streams) > 0 and len(requests) == 12
    for req in requests:
        assert (req.method, req.target) == ("POST", "/v1/cameras/cam1/frames")
        assert req.headers["content-type"] == "image/jpeg"
        i = int(req.headers["x-veil-frame"])
        assert_obfuscated(req.body, originals[i], obfuscate(originals[i]))
    assert sorted(int(r.headers["x-veil-frame"]) for r in requests) == list(range(12))


def test_webp_upload(server, tokens, clip, obfuscate):
    originals = clip_frames(clip)[:2]
    with RecordingProxy(server.port) as proxy:
        config = EdgeConfig(source=str(clip), server=proxy.url, token=tokens[1]["cam2"], camera="cam2",
                            encoding="webp", quality=95, max_frames=2)
        assert EdgeAgent(config, obfuscate).run().sent == 2
    for req in proxy.requests():
        assert req.headers["content-type"] == "image/webp" and req.body[8:12] == b"WEBP"
        i = int(req.headers["x-veil-frame"])
        assert_obfuscated(req.body, originals[i], obfuscate(originals[i]))


def test_wrong_token_stops_the_agent(server, clip, obfuscate):
    config = EdgeConfig(source=str(clip), server=server.url, token="not-a-token", camera="cam1", max_frames=3)
    with pytest.raises(VeilError, match="refused camera 'cam1'"):
        EdgeAgent(config, obfuscate).run()


def test_drop_oldest_queue():
    queue = DropOldestQueue(3)
    assert [queue.put(i) for i in range(10)] == [0, 0, 0] + [1] * 7
    queue.close()
    assert [queue.get() for _ in range(3)] == [7, 8, 9] and queue.drained
    blocking = DropOldestQueue(1)
    blocking.put("a")
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    start = time.monotonic()
    assert blocking.put("b", block=True, stop=stop) == 1  # waited for room until told to stop
    assert time.monotonic() - start >= 0.25


def test_worker_killed_and_restarted_mid_stream(server, tokens, clip, obfuscate):
    """kill -9 the worker while a live-paced stream runs; the agent backs off, reconnects and finishes."""
    originals = clip_frames(clip)
    config = EdgeConfig(source=str(clip), server=server.url, token=tokens[1]["fault"], camera="fault", quality=90,
                        realtime=True, queue_size=4, backoff_start=0.1, backoff_max=1.0, retry_for=600)
    events: list[str] = []
    agent = EdgeAgent(config, obfuscate, on_event=events.append)
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(stats=agent.run()), daemon=True)
    try:
        runner.start()
        for _ in range(300):  # wait (bounded) until the stream is under way
            if agent.stats.sent >= 3:
                break
            time.sleep(0.05)
        server.kill()
        killed_at = agent.stats.sent
        time.sleep(0.5)
        server.start(wait=False)  # same port, same state and store
        runner.join(120)
        assert not runner.is_alive(), "the agent did not finish"
    finally:
        agent.stop.set()
        server.wait_ready()  # the other tests share this server
    stats = result["stats"]
    assert stats.reconnects >= 1 and stats.retries >= 1 and stats.sent > killed_at
    assert any(e.startswith("reconnected after") for e in events)
    assert stats.captured == len(originals) == stats.sent + stats.dropped + stats.rejected and stats.unsent == 0
    assert stats.dropped > 0  # a live stream cannot wait for the outage: the oldest frames went
    assert "Traceback" not in server.log.read_text()
    # What the server received, before and after the restart, is obfuscated frames only.
    stored = sorted((server.store / "fault").iterdir())
    assert len(stored) >= stats.sent
    obfuscated = [obfuscate(f) for f in originals]
    for path in stored:
        image = decode(path.read_bytes())
        nearest = min(range(len(originals)), key=lambda i: mean_abs(image, obfuscated[i]))
        assert_obfuscated(path.read_bytes(), originals[nearest], obfuscated[nearest])
        assert min(mean_abs(image, o) for o in originals) > 20
