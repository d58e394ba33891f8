"""Two ``veil serve`` hosts on one real PostgreSQL (Debian's) behind a real nginx: uploads spread, reads
agree, a token revoked on one host is refused by the other, ``--workers 2`` really forks, and a database
restart costs retried 503s, never a 500 or a lost acknowledged frame. Plus the SQLite v1 migration."""

import concurrent.futures
import sqlite3
import subprocess
import time

import httpx
import pytest

from tests.cloud.conftest import Server, clip_frames, veil_command, veil_env
from veil.cloud.auth import issue_token
from veil.cloud.loadbalancer import run_nginx
from veil.cloud.postgres import free_port, run_postgres
from veil.cloud.state import SharedState


@pytest.fixture(scope="module")
def pg():
    with run_postgres(options={"fsync": "off"}) as server:
        yield server


@pytest.fixture(scope="module")
def hosts(pg, tmp_path_factory):
    """Host A with two worker processes, host B with one, both on ``pg``; and nginx over them."""
    root = tmp_path_factory.mktemp("hosts")
    r = subprocess.run(veil_command("serve", "token", "add", "street", "--state", pg.url), capture_output=True,
                       text=True, env=veil_env(), timeout=300)
    assert r.returncode == 0, r.stderr
    a = Server(pg.url, root / "a.log", extra=("--workers", 2)).start(wait=False)
    b = Server(pg.url, root / "b.log").start(wait=False)
    try:
        a.wait_ready()
        b.wait_ready()
        with run_nginx(free_port(), [f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"]) as url:
            yield a, b, url, r.stdout.strip()
    finally:
        a.stop()
        b.stop()
    for host in (a, b):
        assert "Traceback" not in host.log.read_text()


@pytest.fixture(scope="module")
def jpegs(clip, onnx_obfuscator):
    from veil.data.codec import encode
    from veil.deployment.edge import load_obfuscator

    obfuscate, _ = load_obfuscator(onnx_obfuscator, threads=1)
    return [encode(obfuscate(f), "jpeg", 85) for f in clip_frames(clip)[:9]]


def send(url, token, body, frame):
    return httpx.post(f"{url}/v1/cameras/street/frames", content=body, timeout=60,
                      headers={"Authorization": f"Bearer {token}", "Content-Type": "image/jpeg",
                               "X-Veil-Frame": str(frame)})


def test_uploads_spread_and_every_host_reads_the_same(pg, hosts, jpegs):
    a, b, url, camera_token = hosts
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        responses = list(pool.map(send, [url] * len(jpegs), [camera_token] * len(jpegs), jpegs, range(len(jpegs))))
    assert [r.status_code for r in responses] == [200] * len(jpegs), [r.text for r in responses]
    assert len({r.json()["worker"] for r in responses}) >= 2  # nginx spread them over the hosts
    viewer = {"Authorization": f"Bearer {issue_token(SharedState(pg.url), 'viewer', ['street'])[1]}"}
    views = []
    for host in (a.url, b.url, url, url):
        cameras = httpx.get(f"{host}/v1/cameras", headers=viewer, timeout=30).json()
        history = httpx.get(f"{host}/v1/cameras/street/history", headers=viewer, timeout=30).json()
        latest = httpx.get(f"{host}/v1/cameras/street/latest", headers=viewer, timeout=30).json()
        views.append((cameras, history, latest))
    assert all(v == views[0] for v in views)  # every host, and nginx, answers the same
    assert views[0][0][0]["frames"] == len(jpegs) and len(views[0][1]) == len(jpegs)
    assert sorted(SharedState(pg.url).frame_ids("street")) == list(range(len(jpegs)))  # nothing acknowledged lost


def test_workers_flag_forks_real_processes(hosts):
    a, *_ = hosts
    pids = set()
    for _ in range(200):  # fresh connections: the kernel hands them to either worker
        pids.add(httpx.get(f"{a.url}/health", timeout=10, headers={"Connection": "close"}).json()["worker"])
        if len(pids) == 2:
            break
    assert len(pids) == 2 and a.process.pid not in pids


def test_token_revoked_on_one_host_is_refused_by_the_other(pg, hosts):
    a, b, _, _ = hosts
    state = SharedState(pg.url)
    token_id, token = issue_token(state, "viewer", ["street"])
    _, admin = issue_token(state, "admin")
    viewer = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{a.url}/v1/cameras/street/latest", headers=viewer, timeout=30).status_code == 200
    r = httpx.delete(f"{b.url}/v1/tokens/{token_id}", headers={"Authorization": f"Bearer {admin}"}, timeout=30)
    assert r.status_code == 200 and r.json() == {"revoked": token_id}
    for _ in range(4):  # whichever of host A's workers answers: refused, at once
        assert httpx.get(f"{a.url}/v1/cameras/street/latest", headers=viewer, timeout=30).status_code == 401
    assert httpx.get(f"{a.url}/metrics", headers={"Authorization": f"Bearer {admin}"}, timeout=30).status_code == 200


def test_database_restart_costs_retries_not_errors(pg, hosts, jpegs):
    _, _, url, camera_token = hosts
    pg.restart()
    statuses, acked = [], []
    for i, body in enumerate(jpegs[:4]):
        for _ in range(20):  # a client retries 503 (and nginx's 502) as it would a dropped connection
            r = send(url, camera_token, body, 100 + i)
            statuses.append(r.status_code)
            if r.status_code == 200:
                acked.append(100 + i)
                break
            assert r.status_code in (502, 503) and r.json()["detail"], r.text
            time.sleep(0.25)
    assert acked == [100, 101, 102, 103] and all(s < 500 or s in (502, 503) for s in statuses)
    assert set(acked) <= set(SharedState(pg.url).frame_ids("street"))


def test_cameras_ride_out_a_host_kill_and_a_database_restart(pg, hosts, jpegs):
    """A seeded slice of bench/bench_service_faults.py: kill -9 host B, restart PostgreSQL, lose nothing."""
    from bench.bench_service_faults import run_load, summary

    _, b, url, _ = hosts
    state = SharedState(pg.url)
    cams = {name: (issue_token(state, "camera", [name])[1], jpegs) for name in ("avenue", "square")}
    faults = [(1.5, "SIGKILL host B", b.kill), (3.5, "restart PostgreSQL", pg.restart)]
    load, log = run_load(url, cams, fps=2.0, duration=6.0, faults=faults, give_up=60.0)
    result = summary(load, {name: state.frame_ids(name) for name in cams}, 6.0)
    assert [f["fault"] for f in log] == ["SIGKILL host B", "restart PostgreSQL"]
    assert result["frames"] == result["acknowledged"] == 24, result  # every frame retried until acknowledged
    assert result["records_lost"] == 0 and not result["client_errors_reported"] and result["gave_up"] == 0
    assert set(result["failed_attempts_by_status"]) <= {"0", "502", "503", "504"}  # never a 500


def test_sqlite_state_from_before_tokens_is_migrated(tmp_path):
    """A v1 state file (single-host SQLite, no token tables) opens with its data and gains the new schema."""
    db = sqlite3.connect(tmp_path / "state.sqlite")
    db.executescript("""
        CREATE TABLE latest (camera TEXT PRIMARY KEY, ts REAL NOT NULL, people INTEGER NOT NULL,
            width INTEGER NOT NULL, height INTEGER NOT NULL, detections TEXT NOT NULL,
            media_type TEXT, image BLOB, frames INTEGER NOT NULL);
        CREATE TABLE counts (camera TEXT NOT NULL, ts REAL NOT NULL, people INTEGER NOT NULL);
        INSERT INTO latest VALUES ('door', 100.0, 2, 320, 240, '[]', 'image/jpeg', x'ffd8ff', 5);
        INSERT INTO counts VALUES ('door', 100.0, 2);
    """)
    db.commit()
    db.close()
    state = SharedState(tmp_path)
    assert state.latest("door", 0)["frames"] == 5 and state.history_of("door", 0) == [{"ts": 100.0, "people": 2}]
    state.record("door", 3, 320, 240, [], None, None, ts=200.0, frame=9)
    assert state.frame_ids("door") == [9] and state.tokens() == []
    assert state.sweep(state.retention(), now=200.0 + 301)["frames"] == 1  # detections may now expire to NULL
