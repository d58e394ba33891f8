"""Retention: old frames, history, log rows and --store files go, by age and by count, from the limits in
the shared state; first on a real SQLite state directly, then on the running server (set through the CLI)."""

import os
import subprocess
import time

import httpx

from tests.cloud.conftest import veil_command, veil_env
from veil.cloud.state import Retention, SharedState
from veil.cloud.store import prune_store, store_frame, stored_files


def test_sweep_drops_what_the_limits_no_longer_allow(tmp_path):
    state = SharedState(tmp_path / "state")
    now = time.time()
    for i in range(6):  # cam-a: six points, 180 s apart, the last 100 s ago
        state.record("cam-a", i, 10, 10, [{"box": [0, 0, 1, 1], "score": 0.9}], b"\xff\xd8\xffA", "image/jpeg",
                     ts=now - 1000 + i * 180)
    state.record("cam-b", 1, 10, 10, [], b"\xff\xd8\xffB", "image/jpeg", ts=now - 5)  # fresh
    state.log_access("t1", ["cam-a"], "/v1/cameras/cam-a/latest", "10.0.0.1")
    limits = Retention(latest_frame_s=60, history_s=500, history_count=2, access_log_s=3600)
    gone = state.sweep(limits, now=now)
    assert gone["frames"] == 1  # cam-a's frame and boxes are past 60 s; cam-b's are not
    assert state.latest_image("cam-a", 0) is None and state.latest_image("cam-b", 0) is not None
    assert state.latest("cam-a", 0)["detections"] == [] and state.latest("cam-a", 0)["people"] == 5  # count stays
    assert [p["ts"] for p in state.history_of("cam-a", 0)] == [now - 280, now - 100]
    assert len(state.access_log()) == 1  # one minute old, kept for an hour
    assert state.sweep(limits, now=now + 7200)["access_log"] == 1 and state.access_log() == []
    assert state.history_of("cam-a", 0) == [] and state.history_of("cam-b", 0) == []  # past history_s


def test_store_is_bounded_by_age_size_and_count_and_keeps_foreign_files(tmp_path):
    store = tmp_path / "store"
    paths = [store_frame(store, "cam", bytes(100), "image/jpeg") for _ in range(6)]
    now = time.time()
    for i, path in enumerate(paths):  # ages 600, 500, ..., 100 s
        os.utime(path, (now - 600 + i * 100, now - 600 + i * 100))
    foreign = store / "cam" / "notes.txt"
    foreign.write_text("not Veil's")
    (store / "not-a-camera!").mkdir()
    assert prune_store(store, max_age_s=450, max_bytes=10_000, max_files=100, now=now) == 2  # ages 600 and 500
    assert prune_store(store, max_age_s=450, max_bytes=250, max_files=100, now=now) == 2  # down to 200 bytes
    assert prune_store(store, max_age_s=450, max_bytes=250, max_files=1, now=now) == 1
    assert [p for _, _, p in stored_files(store)] == [paths[-1]] and foreign.exists()


def test_running_service_forgets_on_schedule(server, tokens, clip):
    """Limits set with 'veil serve retention' reach the running server (no restart) and its sweeps."""
    import cv2

    from tests.cloud.conftest import clip_frames

    state = tokens[0]
    jpeg = cv2.imencode(".jpg", cv2.cvtColor(clip_frames(clip)[3], cv2.COLOR_RGB2BGR))[1].tobytes()
    viewer = {"Authorization": f"Bearer {tokens[1]['admin']}"}
    r = subprocess.run(veil_command("serve", "retention", "--state", state, "--latest-frame", "2s",
                                    "--store-age", "3s"), capture_output=True, text=True, env=veil_env(), timeout=300)
    assert r.returncode == 0, r.stderr
    try:
        time.sleep(1.5)  # the server re-reads the limits within a sweep interval (1 s here)
        up = httpx.post(f"{server.url}/v1/cameras/ret/frames", content=jpeg, timeout=60,
                        headers={"Authorization": f"Bearer {tokens[1]['ret']}", "Content-Type": "image/jpeg"})
        assert up.status_code == 200
        assert httpx.get(f"{server.url}/v1/cameras/ret/frame", headers=viewer, timeout=30).status_code == 200
        assert len(list((server.store / "ret").iterdir())) == 1
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any((server.store / "ret").iterdir()):
            time.sleep(0.5)
        frame = httpx.get(f"{server.url}/v1/cameras/ret/frame", headers=viewer, timeout=30)
        latest = httpx.get(f"{server.url}/v1/cameras/ret/latest", headers=viewer, timeout=30).json()
        assert frame.status_code == 404 and latest["expired"] and latest["detections"] == []
        assert not any((server.store / "ret").iterdir())  # the stored file went too
        summary = {c["camera"]: c for c in httpx.get(f"{server.url}/v1/cameras", headers=viewer, timeout=30).json()}
        assert summary["ret"]["has_image"] is False
        row = SharedState(state).latest_image("ret", 0)
        assert row is None  # gone from the database itself, not just hidden
    finally:
        SharedState(state).set_retention(Retention())
