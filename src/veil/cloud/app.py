"""The cloud service: the unmodified detector on obfuscated frames, as a FastAPI app.

A camera POSTs one encoded frame (JPEG, WebP or PNG bytes as the request body) to
``/v1/cameras/{camera}/frames`` with ``Authorization: Bearer TOKEN``; the answer is the
person detections and the people count. Checks run cheapest first: rate limit (429), token
(401 missing or invalid, 403 not allowed), content type (415), size (413), decoding (400);
bad input never reaches the detector and never ends in a 500. A database outage is a 503
that clients retry.

Every data endpoint needs a token (see :mod:`veil.cloud.auth` for the roles); only
``/health``, the OpenAPI schema and the dashboard's static shell load without one. Every
read is written to the access log in the shared state. Workers hold no state of their own
beyond the loaded detector and a cache of verified secrets: everything else lives in
:class:`~veil.cloud.state.SharedState`, so any number of workers and hosts can sit behind
one load balancer.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from PIL import Image
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders

from veil.cloud import metrics
from veil.cloud.auth import Authenticator, Principal, token_rows
from veil.cloud.state import Retention, SharedState
from veil.cloud.store import SUFFIXES, prune_store, store_frame
from veil.names import CAMERA_NAME

MEDIA_TYPES = {"image/jpeg": "JPEG", "image/webp": "WEBP", "image/png": "PNG"}
# The first bytes every file of the type starts with (WebP: "RIFF", a size, then "WEBP").
_SIGNATURES = {"image/jpeg": lambda b: b[:3] == b"\xff\xd8\xff",
               "image/png": lambda b: b[:8] == b"\x89PNG\r\n\x1a\n",
               "image/webp": lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP"}
SETTINGS_ENV = "VEIL_SERVE_SETTINGS"
__all__ = ["SUFFIXES", "ServeSettings", "create_app", "decode_image"]
log = logging.getLogger("veil.serve")

# The dashboard needs its own script, stylesheet, fetch() to this origin and blob: images; nothing else.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {"content-security-policy": CSP, "x-content-type-options": "nosniff", "x-frame-options": "DENY",
                    "referrer-policy": "no-referrer", "cross-origin-opener-policy": "same-origin",
                    "cross-origin-resource-policy": "same-origin",
                    "permissions-policy": "camera=(), microphone=(), geolocation=()"}


@dataclass
class ServeSettings:
    """Everything a worker needs; JSON-serialisable so uvicorn's forked workers get it via env."""

    state: str  # a folder (SQLite) or a postgresql:// URL
    detector: str = "yolo"
    detector_weights: str | None = None
    conf: float | None = None  # default: the detector's own pseudo-label threshold
    max_bytes: int = 8 * 1024 * 1024
    max_pixels: int = 4096 * 4096
    store: str | None = None
    keep_latest_frame: bool = True
    threads: int | None = None
    auth_fail_limit: int = 20  # failed authentications per client ...
    auth_fail_window_s: float = 60.0  # ... in this window, then 429 until they age out
    sweep_interval_s: float = 30.0  # how often this worker applies the retention limits
    stream_interval_s: float = 0.5  # how often a live stream looks for new frames


class Error(BaseModel):
    """Every error: one line of JSON."""

    detail: str


_ERRORS = {400: "malformed request or undecodable image", 401: "no token, or an unknown, revoked or expired one",
           403: "the token's role or grants do not allow this", 404: "not found",
           413: "body or image too large", 415: "not JPEG, WebP or PNG", 422: "a parameter fails validation",
           429: "too many failed authentications from this client: wait (Retry-After)",
           503: "the shared state is unavailable: retry (Retry-After)"}


def _responses(*codes: int) -> dict:
    return {c: {"model": Error, "description": _ERRORS[c]} for c in codes}


class BadImage(HTTPException):
    """A client error about the uploaded image (always 4xx, with a readable message)."""


def decode_image(body: bytes, media_type: str, max_pixels: int) -> np.ndarray:
    """Decode ``body`` as ``media_type`` into an RGB uint8 array; raise BadImage when it is not one."""
    if not body:
        raise BadImage(400, "empty body: send the encoded frame as the request body")
    fmt = MEDIA_TYPES[media_type]
    if not _SIGNATURES[media_type](body):
        raise BadImage(400, f"the body is not a {fmt} image (its first bytes are not a {fmt} signature)")
    try:
        with Image.open(io.BytesIO(body), formats=[fmt]) as img:
            if img.width * img.height > max_pixels:
                raise BadImage(413, f"image is {img.width}x{img.height}, over the limit of {max_pixels} pixels")
            img.load()  # raises on a truncated or corrupt stream (LOAD_TRUNCATED_IMAGES stays off)
            return np.asarray(img.convert("RGB"))
    except BadImage:
        raise
    except Exception as exc:  # noqa: BLE001  any decoder failure on untrusted bytes is the client's bad input
        raise BadImage(400, f"corrupt {fmt} image: {_one_line(str(exc))}") from None


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]


def _media_type(request: Request) -> str:
    value = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if value not in MEDIA_TYPES:
        raise HTTPException(415, f"content type must be one of {', '.join(MEDIA_TYPES)}, got {value[:40] or 'none'!r}")
    return value


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPException(400, f"bad Content-Length header {declared[:40]!r}")
        if int(declared) > limit:
            raise HTTPException(413, f"body of {declared} bytes is over the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():  # chunked uploads declare no length: count as they come
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _frame_id(request: Request) -> int | None:
    """The client's own frame number (``X-Veil-Frame``), kept with the history point."""
    value = request.headers.get("x-veil-frame")
    if value is None:
        return None
    if not value.isdigit() or len(value) > 18:
        raise HTTPException(400, f"X-Veil-Frame must be a non-negative integer, got {value[:40]!r}")
    return int(value)


class Analyzer:
    """The frozen detector, one frame at a time (a worker scales by processes, not threads)."""

    def __init__(self, settings: ServeSettings) -> None:
        from veil.detectors import DETECTORS

        if settings.threads:
            torch.set_num_threads(settings.threads)
        kwargs = {"weights": settings.detector_weights} if settings.detector_weights else {}
        self.detector = DETECTORS.build(settings.detector, **kwargs).eval()
        self.conf = settings.conf if settings.conf is not None else self.detector.pseudo_label_threshold
        self._lock = threading.Lock()

    def __call__(self, image: np.ndarray) -> list[dict]:
        x = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).float().div_(255)
        with self._lock, torch.no_grad():
            found = self.detector.detect(x, conf=self.conf)[0]
        return [{"box": [round(float(v), 1) for v in box], "score": round(float(score), 4)}
                for box, score in zip(found.boxes.tolist(), found.scores.tolist())]


class Limits:
    """The retention limits from the shared state, re-read at most every ``ttl`` seconds."""

    def __init__(self, state: SharedState, ttl: float) -> None:
        self.state, self.ttl = state, ttl
        self._value, self._at = Retention(), -float("inf")

    def get(self) -> Retention:
        if time.monotonic() - self._at > self.ttl:
            self._value, self._at = self.state.retention(), time.monotonic()
        return self._value

    def fresh_after(self) -> float:
        return time.time() - self.get().latest_frame_s


class Sweeper(threading.Thread):
    """Applies the retention limits every ``interval`` seconds (each worker; deleting twice is harmless)."""

    def __init__(self, state: SharedState, limits: Limits, store: str | None, interval: float) -> None:
        super().__init__(daemon=True, name="veil-retention")
        self.state, self.limits, self.store, self.interval = state, limits, store, interval
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                retention = self.limits.get()
                self.state.sweep(retention)
                if self.store:
                    prune_store(Path(self.store), retention.store_s, retention.store_bytes, retention.store_files)
            except (OperationalError, DBAPIError, PoolTimeout) as exc:  # the database is down: try next round
                log.warning("retention sweep skipped: %s", _one_line(str(exc.orig if hasattr(exc, "orig") else exc)))


class Headers:
    """ASGI middleware: request metrics, and the security headers on every response.

    Plain ASGI rather than ``@app.middleware``, so a long-lived event stream passes through untouched.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), [500]

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    headers.setdefault(key, value)
                headers.setdefault("cache-control", "no-store")
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            name = getattr(scope.get("route"), "path", "unmatched")
            metrics.REQUESTS.labels(name, str(status[0])).inc()
            metrics.LATENCY.labels(name).observe(time.perf_counter() - start)


_UPLOAD_BODY = {"required": True, "content": {t: {"schema": {"type": "string", "format": "binary"}}
                                               for t in MEDIA_TYPES}}
_CAMERA = PathParam(..., pattern=f"^{CAMERA_NAME.pattern}$", max_length=64, description="Camera name.")
_TOKEN_ID = PathParam(..., pattern="^[0-9a-f]{12}$", description="Token id (the part before the dot).")
_BEARER = HTTPBearer(auto_error=False, scheme_name="token",
                     description="`Authorization: Bearer ID.SECRET` from 'veil serve token add'.")


def create_app(settings: ServeSettings) -> FastAPI:
    """Build the app (loads the detector and opens the shared state)."""
    state = SharedState(settings.state, keep_frames=settings.keep_latest_frame)
    authenticator = Authenticator(state)
    limits = Limits(state, ttl=min(5.0, settings.sweep_interval_s))
    analyze = Analyzer(settings)
    sweeper = Sweeper(state, limits, settings.store, settings.sweep_interval_s)

    async def lifespan(_app):
        sweeper.start()
        yield
        sweeper.stop.set()

    app = FastAPI(title="Veil cloud service", version="2", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Runs the unmodified person detector on obfuscated camera frames. Every endpoint but "
                              "/health needs a bearer token: camera tokens upload, viewer tokens read their "
                              "cameras, admin tokens read everything and manage tokens.")
    app.add_middleware(Headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors()]
        return JSONResponse({"detail": _one_line("; ".join(parts)) or "invalid request"}, status_code=422)

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeout)
    async def database_down(request: Request, exc: Exception) -> JSONResponse:
        # A database restart or failover: the client retries; one log line, no traceback.
        log.warning("%s %s: shared state unavailable: %s", request.method, request.url.path,
                    _one_line(str(getattr(exc, "orig", None) or exc)))
        return JSONResponse({"detail": "the shared state is unavailable, retry shortly"}, status_code=503,
                            headers={"Retry-After": "1"})

    async def authenticated(request: Request,
                            credentials: HTTPAuthorizationCredentials | None = Depends(_BEARER)) -> Principal:
        client = request.client.host if request.client else "unknown"
        failures = await run_in_threadpool(state.failures, client, time.time() - settings.auth_fail_window_s)
        if failures >= settings.auth_fail_limit:
            raise HTTPException(429, f"too many failed authentications from {client}: retry later",
                                headers={"Retry-After": str(int(settings.auth_fail_window_s))})
        if credentials is None or not credentials.credentials.strip():
            raise HTTPException(401, "missing token: send 'Authorization: Bearer TOKEN'",
                                headers={"WWW-Authenticate": "Bearer"})
        principal = await run_in_threadpool(authenticator.authenticate, credentials.credentials.strip())
        if principal is None:
            await run_in_threadpool(state.note_failure, client)
            raise HTTPException(401, "invalid token: unknown, revoked or expired",
                                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        request.state.principal = principal
        return principal

    def reader(who: Principal = Depends(authenticated)) -> Principal:
        if who.role not in ("viewer", "admin"):
            raise HTTPException(403, f"a {who.role} token cannot read: use a viewer or admin token")
        return who

    def admin(who: Principal = Depends(authenticated)) -> Principal:
        if who.role != "admin":
            raise HTTPException(403, f"a {who.role} token cannot do this: it needs an admin token")
        return who

    def may_read(who: Principal, camera: str) -> None:
        if not who.can_read(camera):
            raise HTTPException(403, f"token {who.token_id} is not granted camera {camera!r}")

    async def logged(request: Request, who: Principal, cameras: list[str]) -> None:
        client = request.client.host if request.client else None
        await run_in_threadpool(state.log_access, who.token_id, cameras, request.url.path, client)

    @app.post("/v1/cameras/{camera}/frames", summary="Analyse one obfuscated frame (camera token)",
              openapi_extra={"requestBody": _UPLOAD_BODY}, responses=_responses(400, 401, 403, 413, 415, 422, 429,
                                                                                 503))
    async def upload(request: Request, camera: str = _CAMERA, who: Principal = Depends(authenticated)) -> dict:
        if not who.can_upload(camera):
            raise HTTPException(403, f"token {who.token_id} ({who.role}) may not upload to camera {camera!r}")
        media_type = _media_type(request)
        frame = _frame_id(request)
        body = await _read_body(request, settings.max_bytes)
        image = await run_in_threadpool(decode_image, body, media_type, settings.max_pixels)
        start = time.perf_counter()
        detections = await run_in_threadpool(analyze, image)
        inference_ms = (time.perf_counter() - start) * 1000
        height, width = image.shape[:2]
        if settings.store:  # before the record: an acknowledged frame is always within the limits' reach
            await run_in_threadpool(store_frame, Path(settings.store), camera, body, media_type)
        await run_in_threadpool(lambda: state.record(camera, len(detections), width, height, detections, body,
                                                     media_type, None, frame, limits.get().history_count))
        metrics.FRAMES.labels(camera).inc()
        metrics.PEOPLE.labels(camera).set(len(detections))
        return {"camera": camera, "people": len(detections), "detections": detections, "width": width,
                "height": height, "inference_ms": round(inference_ms, 2), "worker": os.getpid()}

    @app.get("/health", summary="Liveness and the loaded detector (no token)")
    def health() -> dict:
        return {"status": "ok", "detector": settings.detector, "worker": os.getpid()}

    @app.get("/metrics", summary="Prometheus metrics (admin token)", response_class=Response,
             responses={200: {"content": {"text/plain": {}}}, **_responses(401, 403, 429, 503)})
    def prometheus(_who: Principal = Depends(admin)) -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/v1/cameras", summary="The latest people count of every camera the token may read",
             responses=_responses(401, 403, 429, 503))
    async def cameras(request: Request, who: Principal = Depends(reader)) -> list[dict]:
        every = await run_in_threadpool(lambda: state.cameras(limits.fresh_after()))
        found = [c for c in every if who.can_read(c["camera"])]
        await logged(request, who, [c["camera"] for c in found])
        return found

    @app.get("/v1/cameras/{camera}/latest", summary="A camera's latest detections",
             responses=_responses(401, 403, 404, 422, 429, 503))
    async def latest(request: Request, camera: str = _CAMERA, who: Principal = Depends(reader)) -> dict:
        may_read(who, camera)
        found = await run_in_threadpool(lambda: state.latest(camera, limits.fresh_after()))
        if found is None:
            raise HTTPException(404, f"no frame from camera {camera!r} yet")
        await logged(request, who, [camera])
        return found

    @app.get("/v1/cameras/{camera}/frame", summary="A camera's latest obfuscated frame, while fresh",
             response_class=Response, responses={200: {"content": {t: {"schema": {"type": "string", "format": "binary"}}
                                                                   for t in MEDIA_TYPES}},
                                                 **_responses(401, 403, 404, 422, 429, 503)})
    async def frame(request: Request, camera: str = _CAMERA, who: Principal = Depends(reader)) -> Response:
        may_read(who, camera)
        found = await run_in_threadpool(lambda: state.latest_image(camera, limits.fresh_after()))
        if found is None:
            raise HTTPException(404, f"no fresh frame from camera {camera!r}")
        await logged(request, who, [camera])
        return Response(found[0], media_type=found[1])

    @app.get("/v1/cameras/{camera}/history", summary="A camera's people count over time (last 600 points)",
             responses=_responses(401, 403, 422, 429, 503))
    async def history(request: Request, camera: str = _CAMERA, who: Principal = Depends(reader)) -> list[dict]:
        may_read(who, camera)
        points = await run_in_threadpool(lambda: state.history_of(camera, time.time() - limits.get().history_s))
        await logged(request, who, [camera])
        return points

    @app.get("/v1/stream", summary="Live updates as Server-Sent Events (viewer or admin token, in the header)",
             response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {}}}, **_responses(401, 403, 429, 503)})
    async def stream(request: Request, who: Principal = Depends(reader),
                     credentials: HTTPAuthorizationCredentials | None = Depends(_BEARER)) -> StreamingResponse:
        assert credentials is not None  # `reader` (via `authenticated`) already answered 401 without one
        token = credentials.credentials.strip()

        async def events():
            seen: dict[str, tuple] = {}
            beat = time.monotonic()
            yield "retry: 2000\n\n"
            while not await request.is_disconnected():
                try:
                    # Re-checked every round: a revoked or expired token's stream ends at once.
                    if await run_in_threadpool(authenticator.authenticate, token) is None:
                        yield 'event: revoked\ndata: {"detail": "token revoked or expired"}\n\n'
                        return
                    found = await run_in_threadpool(lambda: state.cameras(limits.fresh_after()))
                except (OperationalError, DBAPIError, PoolTimeout):
                    yield 'event: unavailable\ndata: {"detail": "the shared state is unavailable"}\n\n'
                    return  # the client falls back to polling and reconnects
                changed = [c for c in found if who.can_read(c["camera"])
                           and seen.get(c["camera"]) != (c["frames"], c["has_image"])]
                for c in changed:
                    seen[c["camera"]] = (c["frames"], c["has_image"])
                    yield f"event: camera\ndata: {json.dumps(c)}\n\n"
                if changed:
                    await logged(request, who, [c["camera"] for c in changed])
                elif time.monotonic() - beat > 15:
                    yield ": keep-alive\n\n"  # comments keep proxies from timing the stream out
                    beat = time.monotonic()
                await asyncio.sleep(settings.stream_interval_s)

        # X-Accel-Buffering: nginx passes each event on at once instead of buffering the response.
        return StreamingResponse(events(), media_type="text/event-stream", headers={"X-Accel-Buffering": "no"})

    @app.get("/v1/tokens", summary="Every token's id, role, cameras and expiry (admin token)",
             responses=_responses(401, 403, 429, 503))
    async def list_tokens(_who: Principal = Depends(admin)) -> list[dict]:
        return await run_in_threadpool(token_rows, state)

    @app.delete("/v1/tokens/{token_id}", summary="Revoke a token (admin token)",
                responses=_responses(401, 403, 404, 422, 429, 503))
    async def delete_token(token_id: str = _TOKEN_ID, _who: Principal = Depends(admin)) -> dict:
        if not await run_in_threadpool(state.remove_token, token_id):
            raise HTTPException(404, f"no token with id {token_id!r}")
        return {"revoked": token_id}

    @app.get("/v1/access-log", summary="Who read which camera, and when (admin token)",
             responses=_responses(401, 403, 422, 429, 503))
    async def read_log(camera: str | None = Query(None, pattern=f"^{CAMERA_NAME.pattern}$", max_length=64),
                       limit: int = Query(1000, ge=1, le=10_000), _who: Principal = Depends(admin)) -> list[dict]:
        return await run_in_threadpool(state.access_log, camera, limit)

    for name, media_type in (("index.html", "text/html"), ("dashboard.js", "text/javascript"),
                             ("dashboard.css", "text/css")):
        app.add_api_route("/" if name == "index.html" else f"/{name}", _static(name, media_type),
                          methods=["GET"], include_in_schema=False)
    return app


def _static(name: str, media_type: str):
    body = resources.files("veil.cloud").joinpath("dashboard", name).read_text()

    def asset() -> Response:
        return Response(body, media_type=media_type)
    return asset


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers: the settings come from ``VEIL_SERVE_SETTINGS`` (JSON)."""
    return create_app(ServeSettings(**json.loads(os.environ[SETTINGS_ENV])))


def settings_env(settings: ServeSettings) -> str:
    return json.dumps(asdict(settings))
