"""Fuzz ``veil serve`` from its own OpenAPI schema (schemathesis) and with raw, hand-shaped requests -> JSON.

    PYTHONPATH=src python bench/fuzz_service.py [--requests 10000] [--seed 0]
                                                [--out bench/results/fuzz-service.json]

Starts one real ``veil serve`` (real YOLO, SQLite state, a small body limit) and sends:

* schema cases: for every operation, schemathesis draws positive and negative cases (wrong
  types, patterns, missing parameters, bodies of every kind), each with a token drawn from valid
  ones of every role, malformed, unknown, huge, or none;
* raw cases, over a plain socket so nothing normalises them: every method, path tricks
  (``..``, ``%2e%2e``, ``%00``, ``//``, very long and non-ASCII paths), huge headers, wrong media
  types, malformed bodies, bad tokens.

Each request comes "from" one of 16 client addresses (``X-Forwarded-For``, trusted from loopback),
so the failed-authentication limit (429) is reached too. Records every status, every response
>= 500, every status the schema does not document for its operation, connections closed without
an answer, and tracebacks in the server's log. Target: 0 responses >= 500, 0 tracebacks.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import platform
import socket
import sys
import tempfile
import time
from pathlib import Path

import h11
import httpx
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

STATUSES_WITHOUT_OPERATION = {404, 405}  # unknown paths and methods: Starlette's JSON 404/405
CLIENTS = [f"10.250.0.{i}" for i in range(1, 17)]  # few enough that some reach the 429 limit


class Tally:
    """Everything the fuzz saw."""

    def __init__(self) -> None:
        self.statuses: collections.Counter = collections.Counter()
        self.by_phase: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.server_errors: list[dict] = []
        self.undocumented: collections.Counter = collections.Counter()
        self.closed = 0  # the server closed the connection without an answer (e.g. an over-long header line)
        self.unsendable = 0  # a drawn case the HTTP client itself refuses to send

    @property
    def sent(self) -> int:
        return sum(self.statuses.values()) + self.closed

    def add(self, phase: str, method: str, path: str, status: int, body: bytes, documented: set[int] | None) -> None:
        self.statuses[status] += 1
        self.by_phase[phase][status] += 1
        if status >= 500:
            self.server_errors.append({"phase": phase, "method": method, "path": path[:200], "status": status,
                                       "body": body[:300].decode(errors="replace")})
        if documented is not None and status not in documented and status not in STATUSES_WITHOUT_OPERATION:
            self.undocumented[f"{method} {path.split('?')[0][:60]} -> {status}"] += 1

    def as_json(self) -> dict:
        return {"requests": self.sent, "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "by_phase": {p: {str(k): v for k, v in sorted(c.items())} for p, c in self.by_phase.items()},
                "responses_5xx": len(self.server_errors), "server_errors": self.server_errors[:20],
                "undocumented_statuses": dict(self.undocumented.most_common(20)),
                "undocumented_total": sum(self.undocumented.values()),
                "closed_without_answer": self.closed, "unsendable_cases_skipped": self.unsendable}


def token_choices(tokens: dict[str, str]) -> list[str | None]:
    """Valid tokens of every role, and every kind of invalid one."""
    some = next(iter(tokens.values()))
    return [*tokens.values(), *tokens.values(), None, "", "x", "not a token", "0123456789ab." + "A" * 43,
            some[:-1] + ("A" if some[-1] != "A" else "B"), some.split(".")[0] + ".", "." + some.split(".")[1],
            some + "." + some, "Z" * 20_000, some.upper()]


def authorization(token: str | None, style: int) -> dict[str, str]:
    if token is None:
        return {}
    return {"Authorization": [f"Bearer {token}", f"bearer   {token}", f"Basic {token}", token, "Bearer"][style % 5]}


def fuzz_schema(url: str, tokens: dict[str, str], examples: int, seed_: int, tally: Tally) -> None:
    """schemathesis: positive and negative cases of every operation, ``examples`` each."""
    import requests
    import schemathesis
    from schemathesis import GenerationMode

    spec = httpx.get(f"{url}/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(spec)
    choices = token_choices(tokens)
    session = requests.Session()
    for result in schema.get_all_operations():
        operation = result.ok()
        documented = {int(c) for c in spec["paths"][operation.path][operation.method.lower()]["responses"]}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            with contextlib.suppress(Unsatisfiable):  # no negative case exists for an operation without inputs
                _schema_run(operation, mode, documented, url, session, choices, examples, seed_, tally)()


def _schema_run(operation, mode, documented: set[int], url: str, session, choices: list, examples: int, seed_: int,
                tally: Tally):
    """The hypothesis test for one operation and generation mode."""
    import requests

    @seed(seed_)
    @settings(max_examples=examples, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode), token=st.sampled_from(choices),
           style=st.integers(0, 9), client=st.sampled_from(CLIENTS))
    def run(case, token, style, client):
        headers = {**(case.headers or {}), **authorization(token, style), "X-Forwarded-For": client}
        try:
            # schemathesis builds the request; requests sends it, streaming, so the live stream cannot hang us.
            kwargs = case.as_transport_kwargs(base_url=url, headers=headers)
            response = session.request(**kwargs, stream=True, timeout=60)
        except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL, UnicodeError, ValueError):
            tally.unsendable += 1
            return
        except requests.exceptions.ConnectionError:
            tally.closed += 1
            return
        with response:
            # The live stream never ends by itself: its first bytes are the answer.
            live = response.headers.get("content-type", "").startswith("text/event-stream")
            body = next(response.iter_content(256), b"") if live else response.content
        tally.add(f"schema-{mode.value}", case.method, case.formatted_path, response.status_code, body, documented)

    return run


_TRICKS = ["/v1/cameras/{}/frames", "/v1/cameras/{}/latest", "/v1/cameras/{}/frame", "/v1/cameras/{}/history",
           "/v1/cameras", "/v1/stream", "/metrics", "/v1/tokens", "/v1/tokens/{}", "/v1/access-log?camera={}",
           "/health", "/", "/dashboard.js", "/{}", "//v1//cameras//{}//latest", "/v1/cameras/../metrics",
           "/v1/cameras/%2e%2e/metrics", "/v1/cameras/cam1/../../v1/tokens", "/./v1/./cameras", "/openapi.json"]


@st.composite
def raw_requests(draw, tokens: dict[str, str], jpeg: bytes) -> bytes:
    """One HTTP/1.1 request as bytes: method, tricky path, headers (some huge), body of any kind."""
    method = draw(st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD", "TRACE", "GETT"]))
    segment = draw(st.one_of(
        st.sampled_from(["cam1", "dash", "..", "%2e%2e", "%00", "%2F", "%ff", "a%20b", "*", "0123456789ab",
                         "-start", "x" * 65, "%E2%80%AE", "cam1%3Fx=1", "cam1;x", "cam1#frag"]),
        st.text(alphabet=st.characters(codec="ascii", exclude_characters=" \r\n#?"), max_size=40),
        st.integers(1, 6000).map(lambda n: "a" * n)))
    path = draw(st.sampled_from(_TRICKS)).replace("{}", segment)
    if draw(st.booleans()):
        path += "?" + draw(st.sampled_from(["limit=0", "limit=-1", "limit=99999999999999999999", "camera=",
                                            "camera=%00", "x=" + "y" * 3000, "limit=1&limit=2", "n=1"]))
    headers = [("Host", "127.0.0.1"), ("X-Forwarded-For", draw(st.sampled_from(CLIENTS))), ("Connection", "close")]
    token = draw(st.sampled_from(token_choices(tokens)))
    headers += [(k, v) for k, v in authorization(token, draw(st.integers(0, 9))).items()]
    content_type = draw(st.sampled_from([None, "image/jpeg", "image/png", "image/webp", "image/jpeg; q=1",
                                         "IMAGE/JPEG", "text/plain", "application/json", "multipart/form-data",
                                         "image/gif", "", "image/jpeg" + "x" * 500]))
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    if draw(st.integers(0, 9)) == 0:  # a huge header: 4 KiB to 96 KiB
        headers.append(("X-Junk", "j" * draw(st.integers(4096, 96 * 1024))))
    if draw(st.integers(0, 19)) == 0:
        headers.append(("X-Veil-Frame", draw(st.sampled_from(["-1", "abc", "9" * 40, "1.5", "7"]))))
    kind = draw(st.sampled_from(["none", "random", "jpeg", "truncated", "prefix", "big"]))
    body = {"none": b"", "random": draw(st.binary(max_size=2048)), "jpeg": jpeg,
            "truncated": jpeg[:draw(st.integers(0, len(jpeg)))], "prefix": b"\xff\xd8\xff" + draw(st.binary()),
            "big": b"\xff\xd8\xff" + b"\0" * 500_000}[kind]
    if body or method in ("POST", "PUT", "PATCH"):
        headers.append(("Content-Length", str(len(body))))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return head.encode("latin-1", errors="replace") + body


def send_raw(port: int, data: bytes) -> tuple[int, bytes] | None:
    """Send ``data``; the answer's status and body, or None when the server closed without one."""
    conn = h11.Connection(h11.CLIENT)
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        with contextlib.suppress(OSError):  # the server may answer (413, 431) before reading everything
            s.sendall(data)
        status, body, live = None, bytearray(), False
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    chunk = s.recv(65536)
                except OSError:
                    chunk = b""
                if not chunk and status is None:
                    return None
                conn.receive_data(chunk)
                if not chunk:
                    break
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                live = any(k == b"content-type" and v.startswith(b"text/event-stream") for k, v in event.headers)
            elif isinstance(event, h11.Data):
                body.extend(event.data)
                if live:  # the live stream never ends by itself: its first bytes are the answer
                    break
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
    return status, bytes(body)


def fuzz_raw(url: str, tokens: dict[str, str], jpeg: bytes, count: int, seed_: int, tally: Tally) -> None:
    port = int(url.rsplit(":", 1)[1])

    @seed(seed_)
    @settings(max_examples=count, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=raw_requests(tokens, jpeg))
    def run(data):
        answer = send_raw(port, data)
        method, _, rest = data.partition(b" ")
        if answer is None:
            tally.closed += 1
            return
        tally.add("raw", method.decode(), rest.split(b" ")[0].decode("latin-1"), answer[0], answer[1], None)

    run()


def tracebacks(log: Path) -> list[str]:
    text = log.read_text(errors="replace")
    return [line for line in text.splitlines() if "Traceback" in line or "Exception in ASGI" in line]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=10_000, help="At least this many requests in all.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/fuzz-service.json"))
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.bench_service_faults import Host, frames, free_port
    from veil.cloud.auth import issue_token
    from veil.cloud.state import SharedState

    jpeg = frames(1, 1)[0][0]
    with tempfile.TemporaryDirectory(prefix="veil-fuzz-") as tmp:
        tmp = Path(tmp)
        state = SharedState(tmp / "state")
        tokens = {"cam1": issue_token(state, "camera", ["cam1"])[1],
                  "viewer": issue_token(state, "viewer", ["cam1"])[1],
                  "viewer-all": issue_token(state, "viewer", ["*"])[1], "admin": issue_token(state, "admin")[1]}
        host = Host(str(tmp / "state"), tmp / "serve.log", free_port(), ("--max-bytes", "400000"))
        host.start()
        try:
            host.wait_ready()
            tally = Tally()
            start = time.perf_counter()
            operations = len(httpx.get(f"{host.url}/openapi.json", timeout=30).json()["paths"])
            rounds = 0
            while tally.sent < args.requests:  # schema cases first (half), then raw ones; repeat with new seeds
                per = max(1, (args.requests // 2) // (operations * 2 + 2))
                fuzz_schema(host.url, tokens, per, args.seed + rounds, tally)
                fuzz_raw(host.url, tokens, jpeg, max(1, args.requests - tally.sent), args.seed + rounds, tally)
                rounds += 1
            wall = time.perf_counter() - start
            alive = httpx.get(f"{host.url}/health", timeout=30).status_code == 200
        finally:
            host.stop()
        found = tracebacks(tmp / "serve.log")
    import schemathesis

    result = {"setup": {"server": "one veil serve (real YOLO, SQLite state, --max-bytes 400000), direct",
                        "tools": f"schemathesis {schemathesis.__version__} (positive+negative per operation) + "
                                 "hypothesis over raw sockets", "seed": args.seed, "rounds": rounds,
                        "clients": len(CLIENTS)},
              **tally.as_json(), "tracebacks_in_log": len(found), "traceback_lines": found[:10],
              "server_alive_after": alive, "wall_s": round(wall, 1),
              "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()}}
    from veil.io import write_json

    write_json(args.out, result)
    print(f"{tally.sent} requests, {len(tally.server_errors)} responses >= 500, {len(found)} tracebacks, "
          f"{sum(tally.undocumented.values())} undocumented statuses -> {args.out}")


if __name__ == "__main__":
    main()
