"""The cloud service: the unmodified detector on obfuscated frames, as a FastAPI app.

A camera POSTs one encoded frame (JPEG, WebP or PNG bytes as the request body) to
``/v1/cameras/{camera}/frames`` with ``Authorization: Bearer TOKEN``; the answer is the
person detections and the people count. Checks run cheapest first: token (401 missing,
403 wrong), content type (415), size (413), decoding (400); bad input never reaches the
detector and never ends in a 500. Frames are kept only as each camera's latest (for the
dashboard, in the shared state) and, if ``store`` is set, as files there.

Workers hold no state of their own beyond the loaded detector: everything the dashboard
reads comes from :class:`~veil.cloud.state.SharedState`, so any number of workers can sit
behind one load balancer.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from fastapi import FastAPI, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, Response
from PIL import Image
from starlette.concurrency import run_in_threadpool

from veil.cloud import metrics
from veil.cloud.auth import TokenVerifier
from veil.cloud.state import SharedState
from veil.io import atomic_path
from veil.names import CAMERA_NAME

MEDIA_TYPES = {"image/jpeg": "JPEG", "image/webp": "WEBP", "image/png": "PNG"}
# The first bytes every file of the type starts with (WebP: "RIFF", a size, then "WEBP").
_SIGNATURES = {"image/jpeg": lambda b: b[:3] == b"\xff\xd8\xff",
               "image/png": lambda b: b[:8] == b"\x89PNG\r\n\x1a\n",
               "image/webp": lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP"}
SUFFIXES = {"image/jpeg": ".jpg", "image/webp": ".webp", "image/png": ".png"}
SETTINGS_ENV = "VEIL_SERVE_SETTINGS"


@dataclass
class ServeSettings:
    """Everything a worker needs; JSON-serialisable so uvicorn's forked workers get it via env."""

    tokens: str
    state_dir: str
    detector: str = "yolo"
    detector_weights: str | None = None
    conf: float | None = None  # default: the detector's own pseudo-label threshold
    max_bytes: int = 8 * 1024 * 1024
    max_pixels: int = 4096 * 4096
    store: str | None = None
    keep_latest_frame: bool = True
    history: int = 600
    threads: int | None = None


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
        raise BadImage(400, f"corrupt {fmt} image: {exc}") from None


def _media_type(request: Request) -> str:
    value = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if value not in MEDIA_TYPES:
        raise HTTPException(415, f"content type must be one of {', '.join(MEDIA_TYPES)}, got {value or 'none'!r}")
    return value


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPException(400, f"bad Content-Length header {declared!r}")
        if int(declared) > limit:
            raise HTTPException(413, f"body of {declared} bytes is over the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():  # chunked uploads declare no length: count as they come
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "missing camera token: send 'Authorization: Bearer TOKEN'",
                            headers={"WWW-Authenticate": "Bearer"})
    return token.strip()


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


_UPLOAD_BODY = {"required": True, "content": {t: {"schema": {"type": "string", "format": "binary"}}
                                               for t in MEDIA_TYPES}}
_CAMERA = PathParam(..., pattern=f"^{CAMERA_NAME.pattern}$", max_length=64, description="Camera name.")


def create_app(settings: ServeSettings) -> FastAPI:
    """Build the app (loads the detector and opens the shared state)."""
    verifier = TokenVerifier(settings.tokens)
    state = SharedState(settings.state_dir, history=settings.history, keep_frames=settings.keep_latest_frame)
    analyze = Analyzer(settings)
    app = FastAPI(title="Veil cloud service", version="1",
                  description="Runs the unmodified person detector on obfuscated camera frames.")

    @app.middleware("http")
    async def observe(request: Request, call_next):
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        metrics.REQUESTS.labels(name, str(response.status_code)).inc()
        metrics.LATENCY.labels(name).observe(time.perf_counter() - start)
        return response

    @app.post("/v1/cameras/{camera}/frames", summary="Analyse one obfuscated frame",
              openapi_extra={"requestBody": _UPLOAD_BODY},
              responses={401: {"description": "no token"}, 403: {"description": "wrong token"},
                         413: {"description": "body or image too large"},
                         415: {"description": "not JPEG, WebP or PNG"}, 400: {"description": "undecodable image"}})
    async def upload(request: Request, camera: str = _CAMERA) -> dict:
        token = _bearer(request)
        if not await run_in_threadpool(verifier.verify, camera, token):
            raise HTTPException(403, f"wrong token for camera {camera!r}")
        media_type = _media_type(request)
        body = await _read_body(request, settings.max_bytes)
        image = await run_in_threadpool(decode_image, body, media_type, settings.max_pixels)
        start = time.perf_counter()
        detections = await run_in_threadpool(analyze, image)
        inference_ms = (time.perf_counter() - start) * 1000
        height, width = image.shape[:2]
        await run_in_threadpool(state.record, camera, len(detections), width, height, detections, body, media_type)
        if settings.store:
            await run_in_threadpool(_store, Path(settings.store), camera, body, media_type)
        metrics.FRAMES.labels(camera).inc()
        metrics.PEOPLE.labels(camera).set(len(detections))
        return {"camera": camera, "people": len(detections), "detections": detections, "width": width,
                "height": height, "inference_ms": round(inference_ms, 2), "worker": os.getpid()}

    @app.get("/health", summary="Liveness and the loaded detector")
    def health() -> dict:
        return {"status": "ok", "detector": settings.detector, "worker": os.getpid()}

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/v1/cameras", summary="Every camera's latest people count")
    def cameras() -> list[dict]:
        return state.cameras()

    @app.get("/v1/cameras/{camera}/latest", summary="A camera's latest detections")
    def latest(camera: str = _CAMERA) -> dict:
        found = state.latest(camera)
        if found is None:
            raise HTTPException(404, f"no frame from camera {camera!r} yet")
        return found

    @app.get("/v1/cameras/{camera}/frame", summary="A camera's latest obfuscated frame", response_class=Response)
    def frame(camera: str = _CAMERA) -> Response:
        found = state.latest_image(camera)
        if found is None:
            raise HTTPException(404, f"no stored frame from camera {camera!r}")
        return Response(found[0], media_type=found[1], headers={"Cache-Control": "no-store"})

    @app.get("/v1/cameras/{camera}/history", summary="A camera's people count over time")
    def history(camera: str = _CAMERA) -> list[dict]:
        return state.history_of(camera)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def dashboard() -> HTMLResponse:
        return HTMLResponse(_asset("index.html"))

    @app.get("/dashboard.js", include_in_schema=False)
    def dashboard_js() -> Response:
        return Response(_asset("dashboard.js"), media_type="text/javascript")

    return app


def _asset(name: str) -> str:
    return resources.files("veil.cloud").joinpath("dashboard", name).read_text()


def _store(folder: Path, camera: str, body: bytes, media_type: str) -> None:
    """Keep an uploaded (obfuscated) frame as a file, only when the operator asked for it."""
    name = f"{time.time_ns()}-{os.getpid()}{SUFFIXES[media_type]}"
    with atomic_path(folder / camera / name) as tmp:
        tmp.write_bytes(body)


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers: the settings come from ``VEIL_SERVE_SETTINGS`` (JSON)."""
    return create_app(ServeSettings(**json.loads(os.environ[SETTINGS_ENV])))


def settings_env(settings: ServeSettings) -> str:
    return json.dumps(asdict(settings))
