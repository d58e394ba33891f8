"""``veil edge``: the camera side. Decode, obfuscate, encode, send; raw frames never leave.

Two threads and one bounded queue:

- the *capture* thread decodes the source (a video file, a webcam index, or an RTSP/HTTP
  URL, opened by :mod:`veil.data.sources`), obfuscates each frame and encodes the result as
  JPEG or WebP;
- the *sender* (the calling thread) POSTs each encoded frame to ``veil serve``.

Only encoded *obfuscated* frames ever enter the queue, so the sender cannot send a raw
frame by mistake. A live source cannot wait for a slow network: when the queue is full the
oldest frame is dropped (and counted). A file can wait, so by default its reader blocks
instead and every frame is sent; ``realtime=True`` paces a file at its own frame rate and
treats it as live. Network failures and 5xx answers are retried with exponential backoff
on the same frame; a refused token or an untrusted TLS certificate ends the run with a clear
error. A live source that stops delivering (a camera rebooting, an RTSP server restarting) is
reopened with the same backoff while the status line reports the outage.
"""

from __future__ import annotations

import collections
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import numpy as np

from veil.data.codec import DEFAULT_QUALITY, ENCODINGS, encode
from veil.data.sources import Stream, open_stream, parse_source
from veil.data.video import resize
from veil.errors import VeilError
from veil.names import check_camera_name

Obfuscate = Callable[[np.ndarray], np.ndarray]


@dataclass
class EdgeConfig:
    """What ``veil edge`` needs besides the obfuscator itself."""

    source: str
    server: str
    token: str
    camera: str = "camera"
    encoding: str = "jpeg"
    quality: int = DEFAULT_QUALITY
    size: tuple[int, int] | None = None  # (width, height) the obfuscator runs at; None keeps the source's
    queue_size: int = 8
    max_frames: int | None = None
    realtime: bool = False  # pace a file at its frame rate and drop under back-pressure, like a camera
    timeout: float = 10.0
    backoff_start: float = 0.25
    backoff_max: float = 8.0
    retry_for: float | None = None  # give up after this many seconds without the server, or without the source
    ca_file: str | None = None  # PEM CA certificate(s) the https server's certificate must chain to


@dataclass
class EdgeStats:
    """Counters the status line shows; the final copy is the run's summary."""

    captured: int = 0
    sent: int = 0
    dropped: int = 0
    rejected: int = 0
    #: captured but never sent, dropped or rejected: still queued, or taken to send, when the run stopped;
    #: at the end captured == sent + dropped + rejected + unsent
    unsent: int = 0
    retries: int = 0
    reconnects: int = 0  # to the server, after failed sends
    source_reconnects: int = 0  # to a live source, after it stopped delivering
    source_lost_since: float | None = None  # monotonic time the live source went quiet; None while it delivers
    source_attempts: int = 0  # failed attempts to reopen it since then
    source_backoff: float = 0.0  # seconds before the next attempt
    people: int | None = None
    latency_ms: float | None = None
    state: str = "starting"
    started: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        people = "-" if self.people is None else self.people
        latency = "-" if self.latency_ms is None else f"{self.latency_ms:.0f} ms"
        lost, source = self.source_lost_since, ""
        if lost is not None:
            source = (f" | source lost for {time.monotonic() - lost:.1f} s: {self.source_attempts} failed "
                      f"attempt(s), next after {self.source_backoff:.1f} s")
        return (f"{self.state}{source} | captured {self.captured} sent {self.sent} dropped {self.dropped} "
                f"rejected {self.rejected} | {self.sent / elapsed:.1f} fps | {latency} | people {people} "
                f"| reconnects {self.reconnects} source {self.source_reconnects}")


class DropOldestQueue:
    """A bounded FIFO whose ``put`` evicts the oldest item when full (or waits, if ``block``)."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise VeilError(f"--queue must be at least 1, got {size}")
        self._items: collections.deque = collections.deque()
        self._size = size
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item, block: bool = False, stop: threading.Event | None = None) -> int:
        """Add ``item``; return how many old items it pushed out (0 or 1)."""
        with self._cond:
            while block and len(self._items) >= self._size and not (stop and stop.is_set()):
                self._cond.wait(0.1)
            dropped = 0
            if len(self._items) >= self._size:
                self._items.popleft()
                dropped = 1
            self._items.append(item)
            self._cond.notify_all()
            return dropped

    def get(self, timeout: float = 0.1):
        """The oldest item, or None if none came within ``timeout`` seconds."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            if not self._items:
                return None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    @property
    def drained(self) -> bool:
        with self._cond:
            return self._closed and not self._items


def check_config(config: EdgeConfig) -> str:
    """Validate what can be checked before opening anything; return the upload URL."""
    if config.encoding not in ENCODINGS:
        raise VeilError(f"--format must be one of {', '.join(ENCODINGS)}, got {config.encoding!r}")
    if not 1 <= config.quality <= 100:
        raise VeilError(f"--quality must be 1-100, got {config.quality}")
    url = urlsplit(config.server)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise VeilError(f"--server must be an http(s) URL like http://127.0.0.1:8000, got {config.server!r}")
    tls_verify(config)
    if parse_source(config.source).kind == "folder":
        raise VeilError(f"veil edge streams one source, not the folder {config.source} "
                        "(a video file, a webcam index, or an rtsp:// URL)")
    if not config.token:
        raise VeilError("no camera token: pass --token or set VEIL_TOKEN (from 'veil serve token add')")
    check_camera_name(config.camera)
    return f"{config.server.rstrip('/')}/v1/cameras/{quote(config.camera)}/frames"


def tls_verify(config: EdgeConfig) -> ssl.SSLContext | bool:
    """How the server's certificate is checked: against ``ca_file`` only, or the system's CAs."""
    if config.ca_file is None:
        return True
    if urlsplit(config.server).scheme != "https":
        raise VeilError(f"--ca-file verifies an https:// server, but --server is {config.server}")
    if not Path(config.ca_file).is_file():
        raise VeilError(f"--ca-file not found: {config.ca_file}")
    try:
        # With a cafile, the context trusts that file alone: a certificate from any other CA fails.
        return ssl.create_default_context(cafile=config.ca_file)
    except (ssl.SSLError, ValueError) as exc:
        raise VeilError(f"--ca-file {config.ca_file} holds no PEM certificate ({exc})") from None


def _certificate_problem(exc: BaseException) -> str | None:
    """Why TLS verification failed, if that is what ``exc`` (an httpx error) came from."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return cause.verify_message or str(cause)
        cause = cause.__cause__ or cause.__context__
    return None


class EdgeAgent:
    """Runs one source to one server; :meth:`run` returns the final :class:`EdgeStats`."""

    def __init__(self, config: EdgeConfig, obfuscate: Obfuscate,
                 on_status: Callable[[EdgeStats], None] | None = None,
                 on_event: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.url = check_config(config)
        self.obfuscate = obfuscate
        self.stats = EdgeStats()
        self.on_status = on_status or (lambda _: None)
        self.on_event = on_event or (lambda _: None)
        self.source = parse_source(config.source)
        self.verify = tls_verify(config)
        self.queue = DropOldestQueue(config.queue_size)
        self.stop = threading.Event()
        self._error: BaseException | None = None

    # -- capture thread -------------------------------------------------------------
    def _capture(self, stream: Stream) -> None:
        cfg = self.config
        drop = stream.live or cfg.realtime  # a camera cannot wait for the network
        period = 1.0 / stream.fps if cfg.realtime and not stream.live else 0.0
        index, reported = 0, 0  # index: frames taken over the whole run, across reconnects
        current: Stream | None = stream
        try:
            while current is not None:
                next_at = time.monotonic()
                while not self.stop.is_set() and (cfg.max_frames is None or index < cfg.max_frames):
                    frame = current.read()
                    if frame is None:
                        break
                    if period:
                        next_at += period
                        time.sleep(max(0.0, next_at - time.monotonic()))
                    if cfg.size is not None:
                        frame = resize(frame, cfg.size)
                    obfuscated = self.obfuscate(frame)
                    del frame  # from here on only the obfuscated frame exists
                    body = encode(obfuscated, cfg.encoding, cfg.quality)
                    self.stats.captured += 1
                    self.stats.dropped += self.queue.put((index, body), block=not drop, stop=self.stop)
                    index += 1
                    if self.stats.dropped > reported and (self.stats.dropped - reported >= 10 or reported == 0):
                        self.on_event(f"back-pressure: dropped {self.stats.dropped} oldest frame(s) so far")
                        reported = self.stats.dropped
                current.close()
                if index == 0 and not current.live:
                    raise VeilError(f"no frames could be decoded from {current.name} (empty or corrupt video)")
                finished = self.stop.is_set() or (cfg.max_frames is not None and index >= cfg.max_frames)
                # A file's end is the end of the run; a live source that ends is an outage.
                current = self._reopen() if current.live and not finished else None
        except BaseException as exc:  # noqa: BLE001  handed to the main thread, which re-raises it
            self._error = exc
        finally:
            if current is not None:
                current.close()
            self.stats.source_lost_since = None
            self.queue.close()

    def _reopen(self) -> Stream | None:
        """Reopen the live source with backoff; None if told to stop; VeilError past ``retry_for``."""
        cfg = self.config
        stats = self.stats
        stats.source_attempts, stats.source_backoff = 0, cfg.backoff_start
        lost_at = stats.source_lost_since = time.monotonic()
        self.on_event(f"source lost: {self.source.name} stopped delivering frames; reconnecting")
        while not self.stop.wait(stats.source_backoff):
            try:
                stream = open_stream(self.source)
            except VeilError as exc:
                if cfg.retry_for is not None and time.monotonic() - lost_at > cfg.retry_for:
                    raise VeilError(f"gave up after {cfg.retry_for:g} s without the source: {exc}") from None
                stats.source_attempts += 1
                stats.source_backoff = min(stats.source_backoff * 2, cfg.backoff_max)
                continue
            stats.source_reconnects += 1
            stats.source_lost_since = None
            self.on_event(f"source back after {time.monotonic() - lost_at:.1f} s")
            return stream
        return None

    # -- sender -----------------------------------------------------------------------
    def _send(self, client, index: int, body: bytes) -> bool:
        """POST one frame, retrying with backoff; False if the run must stop."""
        import httpx

        cfg = self.config
        headers = {"Authorization": f"Bearer {cfg.token}", "Content-Type": ENCODINGS[cfg.encoding][2],
                   "X-Veil-Frame": str(index)}
        delay, failing_since = cfg.backoff_start, None
        while not self.stop.is_set():
            start = time.perf_counter()
            try:
                response = client.post(self.url, content=body, headers=headers)
            except httpx.TransportError as exc:
                if (why := _certificate_problem(exc)) is not None:  # not transient: retrying cannot help
                    trust = (f"against --ca-file {cfg.ca_file}" if cfg.ca_file else
                             "(a private CA or a self-signed certificate: pass its certificate with --ca-file)")
                    raise VeilError(f"the TLS certificate of {cfg.server} failed verification: {why} {trust}") from None
                problem = f"cannot reach {cfg.server} ({type(exc).__name__})"
            else:
                if response.status_code == 200:
                    if failing_since is not None:
                        self.stats.reconnects += 1
                        self.on_event(f"reconnected after {time.monotonic() - failing_since:.1f} s")
                    result = response.json()
                    self.stats.sent += 1
                    self.stats.people = result.get("people")
                    self.stats.latency_ms = (time.perf_counter() - start) * 1000
                    self.stats.state = "connected"
                    return True
                if response.status_code in (401, 403):
                    raise VeilError(f"the server refused camera {cfg.camera!r}'s token "
                                    f"({response.status_code}: {_detail(response)})")
                if response.status_code < 500 and response.status_code != 429:
                    self.stats.rejected += 1
                    self.on_event(f"frame {index} rejected: {response.status_code} {_detail(response)}")
                    return True
                problem = f"server answered {response.status_code}"
            now = time.monotonic()
            failing_since = failing_since or now
            if cfg.retry_for is not None and now - failing_since > cfg.retry_for:
                raise VeilError(f"gave up after {cfg.retry_for:g} s: {problem}")
            self.stats.retries += 1
            self.stats.state = f"retrying in {delay:.1f} s: {problem}"
            self.on_status(self.stats)
            self.stop.wait(delay)
            delay = min(delay * 2, cfg.backoff_max)
        return False

    def run(self) -> EdgeStats:
        import httpx

        stream = open_stream(self.source)  # a source that cannot be opened at all is an error, not an outage
        reader = threading.Thread(target=self._capture, args=(stream,), name="veil-edge-capture", daemon=True)
        reader.start()
        self.stats.state = "connecting"
        held = False  # a frame taken from the queue and not yet sent (or rejected)
        try:
            with httpx.Client(timeout=self.config.timeout, verify=self.verify) as client:
                while not self.queue.drained:
                    item = self.queue.get()
                    if item is None:
                        self.on_status(self.stats)
                        continue
                    held = True
                    if not self._send(client, *item):
                        break
                    held = False
                    self.on_status(self.stats)
        finally:
            self.stop.set()
            reader.join()
            self.stats.unsent = len(self.queue) + held
        if self._error is not None:
            raise self._error
        self.stats.state = "done"
        return self.stats


def _detail(response) -> str:
    try:
        return str(response.json().get("detail"))
    except ValueError:
        return response.text[:200]


def load_obfuscator(path: str | Path, threads: int | None = None) -> tuple[Obfuscate, tuple[int, int] | None]:
    """An ONNX Runtime obfuscator from an ``.onnx`` file or a checkpoint (exported on the fly).

    Returns the callable and the frame size the model was trained at (from the model card
    beside an ``.onnx``, or from the checkpoint), or None when no card says.
    """
    path = Path(path)
    if not path.is_file():
        raise VeilError(f"obfuscator not found: {path}")
    from veil.deployment.export import export_onnx, load_onnx_obfuscator, output_paths
    from veil.io import read_json

    if path.suffix.lower() == ".onnx":
        card_path = output_paths(path)["card"]
        size = read_json(card_path)["input"]["trained_frame_size"] if card_path.is_file() else None
        return load_onnx_obfuscator(path, threads), (tuple(size) if size else None)
    with tempfile.TemporaryDirectory(prefix="veil-edge-") as tmp:
        onnx_path = Path(tmp) / "obfuscator.onnx"
        card = export_onnx(path, onnx_path)
        model = load_onnx_obfuscator(onnx_path, threads)  # the session holds the model; the file may go
    return model, tuple(card["input"]["trained_frame_size"])
