"""Access control against the real service: every role against every endpoint, revocation, expiry,
the failed-authentication limit, the access log, and tokens hashed at rest."""

import json
import time

import httpx
import pytest

from tests.cloud.conftest import FRAME_SIZE, veil_command, veil_env
from veil.cloud.auth import Authenticator, issue_token, parse_duration, revoke, token_rows
from veil.cloud.state import SharedState
from veil.errors import VeilError


@pytest.fixture(scope="module")
def jpeg(clip) -> bytes:
    import cv2

    from tests.cloud.conftest import clip_frames

    frame = clip_frames(clip)[0]
    assert frame.shape[:2] == FRAME_SIZE[::-1]
    return cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))[1].tobytes()


@pytest.fixture(scope="module")
def uploaded(server, tokens, jpeg):
    """cam1 and cam2 each have a frame, so reads have something to find."""
    for camera in ("cam1", "cam2"):
        r = call(server, "POST", f"/v1/cameras/{camera}/frames", tokens[1][camera], jpeg)
        assert r.status_code == 200, r.text


def call(server, method, path, token=None, body=None, client="127.0.0.1", stream=False):
    headers = {"X-Forwarded-For": client}  # trusted from loopback: each test can be its own client
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if body is not None:
        headers["Content-Type"] = "image/jpeg"
    if stream:  # read the stream's first bytes only
        with httpx.stream(method, f"{server.url}{path}", headers=headers, timeout=30) as r:
            r.first = next(r.iter_bytes(), b"") if r.status_code == 200 else r.read()
            return r
    return httpx.request(method, f"{server.url}{path}", headers=headers, content=body, timeout=60)


ENDPOINTS = {
    "upload cam1": ("POST", "/v1/cameras/cam1/frames"),
    "cameras": ("GET", "/v1/cameras"),
    "latest cam1": ("GET", "/v1/cameras/cam1/latest"),
    "frame cam1": ("GET", "/v1/cameras/cam1/frame"),
    "history cam1": ("GET", "/v1/cameras/cam1/history"),
    "latest cam2": ("GET", "/v1/cameras/cam2/latest"),
    "frame cam2": ("GET", "/v1/cameras/cam2/frame"),
    "history cam2": ("GET", "/v1/cameras/cam2/history"),
    "stream": ("GET", "/v1/stream"),
    "metrics": ("GET", "/metrics"),
    "tokens": ("GET", "/v1/tokens"),
    "access log": ("GET", "/v1/access-log"),
}
# Who may do what: status per (endpoint, role). Roles: no token, a malformed one, a well-formed unknown one,
# cam1's camera token, cam2's camera token, a viewer of cam1, a viewer of every camera, an admin.
ROLES = ("none", "garbage", "unknown", "cam1", "cam2", "viewer", "viewer-all", "admin")
TABLE = {
    "upload cam1": (401, 401, 401, 200, 403, 403, 403, 403),
    "cameras": (401, 401, 401, 403, 403, 200, 200, 200),
    "latest cam1": (401, 401, 401, 403, 403, 200, 200, 200),
    "frame cam1": (401, 401, 401, 403, 403, 200, 200, 200),
    "history cam1": (401, 401, 401, 403, 403, 200, 200, 200),
    "latest cam2": (401, 401, 401, 403, 403, 403, 200, 200),
    "frame cam2": (401, 401, 401, 403, 403, 403, 200, 200),
    "history cam2": (401, 401, 401, 403, 403, 403, 200, 200),
    "stream": (401, 401, 401, 403, 403, 200, 200, 200),
    "metrics": (401, 401, 401, 403, 403, 403, 403, 200),
    "tokens": (401, 401, 401, 403, 403, 403, 403, 200),
    "access log": (401, 401, 401, 403, 403, 403, 403, 200),
}
CASES = [(e, role, TABLE[e][i]) for e in TABLE for i, role in enumerate(ROLES)]


def token_for(tokens, role):
    fixed = {"none": None, "garbage": "not a token", "unknown": "0123456789ab." + "A" * 43}
    return fixed[role] if role in fixed else tokens[1][role]


@pytest.mark.parametrize("endpoint, role, expected", CASES, ids=[f"{e}-{r}" for e, r, _ in CASES])
def test_role_against_endpoint(server, tokens, jpeg, uploaded, endpoint, role, expected):
    method, path = ENDPOINTS[endpoint]
    r = call(server, method, path, token_for(tokens, role), jpeg if method == "POST" else None,
             client=f"10.1.{ROLES.index(role)}.{list(TABLE).index(endpoint)}", stream=endpoint == "stream")
    assert r.status_code == expected, (r.status_code, r.read())
    if expected == 200:
        if endpoint == "stream":
            assert r.headers["content-type"].startswith("text/event-stream") and r.first.startswith(b"retry:")
        elif endpoint == "cameras":  # a viewer sees only what it was granted
            names = {c["camera"] for c in r.json()}
            assert names == {"cam1"} if role == "viewer" else {"cam1", "cam2"} <= names
        elif endpoint.startswith("frame"):
            assert r.headers["content-type"] == "image/jpeg" and r.content[:3] == b"\xff\xd8\xff"
        elif endpoint == "tokens":  # ids and roles, never a secret or a hash
            assert all(set(row) == {"id", "role", "cameras", "created", "expires"} for row in r.json())
    else:
        text = r.content.decode()
        assert "\n" not in text.strip() and set(json.loads(text)) == {"detail"}  # one line of JSON
        if expected == 401:
            assert r.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", ["/health", "/", "/dashboard.js", "/dashboard.css", "/openapi.json"])
def test_public_paths_need_no_token_and_carry_security_headers(server, path):
    r = httpx.get(f"{server.url}{path}", timeout=30)
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "img-src 'self' blob:" in csp
    assert "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    if path == "/":
        assert "<style" not in r.text and "<script>" not in r.text  # nothing inline: the CSP allows none


def test_openapi_documents_bearer_auth_and_every_status(server):
    spec = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    scheme = spec["components"]["securitySchemes"]["token"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer") and "Bearer" in scheme["description"]
    for path, method in [("/v1/cameras/{camera}/latest", "get"), ("/v1/cameras/{camera}/frame", "get")]:
        operation = spec["paths"][path][method]
        assert {"200", "401", "403", "404", "422", "429", "503"} <= set(operation["responses"])
        assert operation["security"] == [{"token": []}]
    assert "security" not in spec["paths"]["/health"]["get"]


def test_revoked_token_fails_on_the_next_request(server, tokens, uploaded):
    state = SharedState(tokens[0])
    token_id, token = issue_token(state, "viewer", ["cam1"])
    path = "/v1/cameras/cam1/latest"
    assert call(server, "GET", path, token).status_code == 200
    with httpx.stream("GET", f"{server.url}/v1/stream", headers={"Authorization": f"Bearer {token}"},
                      timeout=30) as live:
        assert live.status_code == 200
        # Revoked by the CLI, another process: the next request fails, and the open stream ends.
        r = __import__("subprocess").run(veil_command("serve", "token", "remove", token_id, "--state", tokens[0]),
                                         capture_output=True, text=True, env=veil_env(), timeout=120)
        assert r.returncode == 0, r.stderr
        assert call(server, "GET", path, token).status_code == 401
        text = b"".join(live.iter_bytes()).decode()  # returns once the server closes the stream
    assert "event: revoked" in text


def test_expired_token_is_refused(server, tokens, uploaded):
    state = SharedState(tokens[0])
    _, token = issue_token(state, "viewer", ["cam1"], expires_in=1.0)
    assert call(server, "GET", "/v1/cameras/cam1/latest", token).status_code == 200
    time.sleep(1.2)
    r = call(server, "GET", "/v1/cameras/cam1/latest", token)
    assert r.status_code == 401 and "expired" in r.json()["detail"]


def test_repeated_failures_from_one_client_get_429(server, tokens):
    bad = "0123456789ab." + "B" * 43
    statuses = [call(server, "GET", "/v1/cameras", bad, client="10.66.0.1").status_code for _ in range(22)]
    assert statuses[:20] == [401] * 20 and statuses[20:] == [429, 429]  # the default limit: 20 a minute
    blocked = call(server, "GET", "/v1/cameras", tokens[1]["viewer"], client="10.66.0.1")
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0  # even a right token waits
    assert call(server, "GET", "/v1/cameras", tokens[1]["viewer"], client="10.66.0.2").status_code == 200


def test_every_read_is_in_the_access_log(server, tokens, uploaded):
    state = SharedState(tokens[0])
    token_id, token = issue_token(state, "viewer", ["cam1", "cam2"])
    before = time.time()
    for path in ("/v1/cameras/cam2/latest", "/v1/cameras/cam2/frame", "/v1/cameras/cam2/history", "/v1/cameras"):
        assert call(server, "GET", path, token, client="10.7.7.7").status_code == 200
    rows = [r for r in call(server, "GET", "/v1/access-log?camera=cam2", tokens[1]["admin"]).json()
            if r["token_id"] == token_id]
    assert sorted(r["path"] for r in rows) == sorted(["/v1/cameras/cam2/latest", "/v1/cameras/cam2/frame",
                                                      "/v1/cameras/cam2/history", "/v1/cameras"])
    assert all(r["ts"] >= before and r["client"] == "10.7.7.7" for r in rows)


def test_tokens_are_hashed_at_rest_and_cached_per_process(tmp_path):
    state = SharedState(tmp_path / "state")
    token_id, token = issue_token(state, "camera", ["door"])
    raw = (tmp_path / "state" / "state.sqlite").read_bytes()
    secret = token.split(".", 1)[1]
    assert secret.encode() not in raw and secret.encode().hex().encode() not in raw
    assert [r["id"] for r in token_rows(state)] == [token_id]
    auth = Authenticator(state)
    start = time.perf_counter()
    who = auth.authenticate(token)
    first = time.perf_counter() - start
    start = time.perf_counter()
    assert auth.authenticate(token) == who and who.can_upload("door") and not who.can_upload("window")
    assert time.perf_counter() - start < first  # the second check skips scrypt
    assert auth.authenticate(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert not who.can_read("door")
    assert revoke(state, "door") == [token_id] and auth.authenticate(token) is None  # the cache does not outlive it


@pytest.mark.parametrize("role, cameras, fragment", [
    ("camera", [], "exactly one camera"), ("viewer", [], "needs the cameras"), ("admin", ["x"], "give no --camera"),
    ("root", [], "--role must be one of"), ("camera", ["no/slash"], "camera name must be")])
def test_bad_token_requests(tmp_path, role, cameras, fragment):
    with pytest.raises(VeilError, match=fragment):
        issue_token(SharedState(tmp_path / "s"), role, cameras)


def test_durations():
    assert parse_duration("90m") == 5400 and parse_duration("2d") == 172800 and parse_duration("1.5h") == 5400
    for bad in ("", "10", "-1d", "0s", "1y"):
        with pytest.raises(VeilError, match="duration"):
            parse_duration(bad)
