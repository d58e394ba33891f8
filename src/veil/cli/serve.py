"""``veil serve`` (the cloud service, its tokens) and ``veil edge`` (the camera agent)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import typer

from veil.cli.progress import console
from veil.errors import VeilError

serve_app = typer.Typer(no_args_is_help=False, invoke_without_command=True,
                        help="Run the cloud service: the detector on obfuscated frames, with a dashboard.")
token_app = typer.Typer(no_args_is_help=True, help="Manage tokens (camera, viewer, admin; stored as scrypt hashes).")
serve_app.add_typer(token_app, name="token")

STATE_HELP = ("Shared state: a folder (SQLite, one host) or postgresql://USER@HOST/DB (several hosts). "
              "Tokens, results, limits and the access log live there.")


def _required_state(state: str | None) -> str:
    """``--state``; VeilError when it is not given."""
    if not state:
        raise VeilError("--state is required: a folder (SQLite) or a postgresql:// URL")
    return state


def _open_state(state: str | None):
    """The shared state at ``state``; VeilError when it is not given or cannot be opened."""
    from sqlalchemy.exc import DBAPIError

    from veil.cloud.state import SharedState, describe

    state = _required_state(state)
    try:
        return SharedState(state)
    except DBAPIError as exc:
        reason = " ".join(str(exc.orig).split())[:200]
        raise VeilError(f"cannot open the state {describe(state)}: {reason}") from None


@serve_app.callback()
def serve(
    ctx: typer.Context,
    state: str | None = typer.Option(None, "--state", "--state-dir", help=STATE_HELP),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, min=0, max=65535),
    workers: int = typer.Option(1, min=1, help="Worker processes (uvicorn --workers)."),
    detector: str = typer.Option("yolo", help="Frozen detector the obfuscator was trained for."),
    detector_weights: str | None = typer.Option(None, help="Detector weights file."),
    conf: float | None = typer.Option(None, min=0.0, max=1.0, help="Detection threshold (default: the detector's)."),
    max_bytes: int = typer.Option(8 * 1024 * 1024, min=1, help="Largest accepted upload, in bytes."),
    max_pixels: int = typer.Option(4096 * 4096, min=1, help="Largest accepted image, in pixels."),
    store: Path | None = typer.Option(None, help="Keep uploaded (obfuscated) frames in this folder, within the "
                                                 "limits of 'veil serve retention'."),
    latest_frame: bool = typer.Option(True, help="Keep each camera's latest frame for the dashboard."),
    threads: int | None = typer.Option(None, min=1, help="PyTorch threads per worker."),
    auth_fail_limit: int = typer.Option(20, min=1, help="Failed authentications per client before 429."),
    auth_fail_window: float = typer.Option(60.0, min=1.0, help="... within this many seconds."),
    sweep_interval: float = typer.Option(30.0, min=0.1, help="Seconds between retention sweeps."),
    forwarded_allow_ips: str = typer.Option("127.0.0.1", help="Proxies (comma-separated addresses) whose "
                                            "X-Forwarded-For names the client, for the failed-auth limit "
                                            "and the access log."),
) -> None:
    """Serve the detector over HTTP: POST /v1/cameras/CAMERA/frames; dashboard at /."""
    if ctx.invoked_subcommand is not None:
        return
    from veil.cloud.state import describe

    state = _required_state(state)
    shared = _open_state(state)  # creates or migrates the schema once, before the workers start
    try:
        if not shared.tokens():
            raise VeilError(f"the state {describe(state)} holds no token yet: add one with "
                            "'veil serve token add CAMERA --state ...'")
    finally:
        shared.close()
    import uvicorn

    from veil.cloud.app import SETTINGS_ENV, ServeSettings, settings_env
    from veil.detectors import DETECTORS

    if detector not in DETECTORS:
        raise VeilError(f"unknown detector {detector!r} (known: {', '.join(DETECTORS.names())})")
    if detector_weights and not Path(detector_weights).is_file():
        raise VeilError(f"detector weights not found: {detector_weights}")
    if store is not None and store.exists() and not store.is_dir():
        raise VeilError(f"--store must be a folder: {store}")
    location = state if "://" in state else str(Path(state).resolve())
    with contextlib.ExitStack() as stack:
        if workers > 1:
            # prometheus-client's multiprocess mode: one folder shared by this run's workers only.
            metrics_dir = tempfile.mkdtemp(prefix="veil-serve-metrics-")
            stack.callback(shutil.rmtree, metrics_dir, True)
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        settings = ServeSettings(state=location, detector=detector, detector_weights=detector_weights, conf=conf,
                                 max_bytes=max_bytes, max_pixels=max_pixels,
                                 store=str(store.resolve()) if store else None, keep_latest_frame=latest_frame,
                                 threads=threads, auth_fail_limit=auth_fail_limit,
                                 auth_fail_window_s=auth_fail_window, sweep_interval_s=sweep_interval)
        os.environ[SETTINGS_ENV] = settings_env(settings)
        console.print(f"veil serve: http://{host}:{port}/ ({workers} worker(s), detector {detector}, "
                      f"state {describe(location)})", highlight=False)
        # uvicorn re-raises SIGTERM/SIGINT once it has shut down; turn them into a normal exit so
        # the temporary folders above are removed.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        with contextlib.suppress(KeyboardInterrupt):
            # proxy_headers: behind nginx the client address (for the failed-auth limit and the access log)
            # is X-Forwarded-For, trusted only from --forwarded-allow-ips. No access log line: nothing of a
            # request (and never a token) is printed.
            uvicorn.run("veil.cloud.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                        log_level="warning", access_log=False, proxy_headers=True,
                        forwarded_allow_ips=forwarded_allow_ips, timeout_graceful_shutdown=5)


@token_app.command("add")
def token_add(
    camera_arg: str | None = typer.Argument(None, metavar="[CAMERA]", help="A camera token's camera."),
    state: str | None = typer.Option(None, "--state", help=STATE_HELP),
    role: str = typer.Option("camera", help="camera (uploads to one camera), viewer (reads its cameras) or admin."),
    camera: list[str] = typer.Option([], "--camera", help="Camera(s) a viewer may read (repeat; '*' for all)."),
    expires: str | None = typer.Option(None, help="Expire after this long: 30d, 12h, 90m, 2w."),
) -> None:
    """Issue a token; it is printed once and only its salted scrypt hash is stored."""
    from veil.cloud.auth import issue_token, parse_duration

    cameras = ([camera_arg] if camera_arg else []) + [c for item in camera for c in item.split(",") if c]
    expires_in = parse_duration(expires) if expires else None
    shared = _open_state(state)
    token_id, token = issue_token(shared, role, cameras, expires_in)
    what = {"camera": f"camera {cameras[0]!r}" if cameras else "", "viewer": f"reading {', '.join(cameras)}",
            "admin": "admin"}.get(role, role)
    console.print(f"{role} token {token_id} ({what}; shown once, the state keeps only its hash):", highlight=False)
    typer.echo(token)


@token_app.command("remove")
def token_remove(which: str = typer.Argument(..., help="Token id, or a camera (removes its camera tokens)."),
                 state: str | None = typer.Option(None, "--state", help=STATE_HELP)) -> None:
    """Revoke tokens: refused on the next request, on every worker and host."""
    from veil.cloud.auth import revoke

    removed = revoke(_open_state(state), which)
    console.print(f"revoked {', '.join(removed)}", highlight=False)


@token_app.command("list")
def token_list(state: str | None = typer.Option(None, "--state", help=STATE_HELP)) -> None:
    """Every token's id, role, cameras and expiry (never a secret: none is stored)."""
    import datetime

    from veil.cloud.auth import token_rows

    def when(ts: float | None) -> str:
        return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC") if ts else "never"

    rows = token_rows(_open_state(state))
    for r in rows:
        typer.echo(f"{r['id']}  {r['role']:<6}  {','.join(r['cameras']) or '-':<24}  created {when(r['created'])}  "
                   f"expires {when(r['expires'])}")
    console.print(f"{len(rows)} token(s)", highlight=False)


@serve_app.command("retention")
def retention(
    state: str | None = typer.Option(None, "--state", help=STATE_HELP),
    latest_frame: str | None = typer.Option(None, help="Drop a camera's latest frame and boxes this long after its "
                                                       "last upload (default 5m)."),
    history: str | None = typer.Option(None, help="Keep people counts this long (default 7d)."),
    history_count: int | None = typer.Option(None, min=1, help="... and at most this many per camera."),
    store_age: str | None = typer.Option(None, help="Keep --store files this long (default 1d)."),
    store_size: int | None = typer.Option(None, min=0, help="... at most this many bytes per host (default 1 GiB)."),
    store_files: int | None = typer.Option(None, min=0, help="... and at most this many files."),
    access_log: str | None = typer.Option(None, help="Keep the access log this long (default 90d)."),
) -> None:
    """Show the retention limits every host applies, and set the ones given (no restart needed)."""
    import dataclasses

    from veil.cloud.auth import parse_duration

    shared = _open_state(state)
    current = shared.retention()
    changes = {k: v for k, v in {
        "latest_frame_s": latest_frame and parse_duration(latest_frame), "history_s": history and parse_duration(
            history), "history_count": history_count, "store_s": store_age and parse_duration(store_age),
        "store_bytes": store_size, "store_files": store_files,
        "access_log_s": access_log and parse_duration(access_log)}.items() if v is not None}
    if changes:
        current = dataclasses.replace(current, **changes)
        shared.set_retention(current)
    for key, value in dataclasses.asdict(current).items():
        typer.echo(f"{key} = {value if isinstance(value, int) else format(value, 'g')}")


def edge(
    source: str = typer.Option(..., help="Video file, 'vtest', webcam index (0) or stream URL (rtsp://...)."),
    server: str = typer.Option(..., help="URL of 'veil serve', e.g. http://127.0.0.1:8000."),
    token: str = typer.Option("", envvar="VEIL_TOKEN", help="Camera token (or set VEIL_TOKEN).", show_default=False),
    camera: str = typer.Option("camera", help="Camera name the token was issued for."),
    obfuscator: Path = typer.Option(..., help="Exported .onnx obfuscator, or a checkpoint to export on the fly."),
    encoding: str = typer.Option("jpeg", "--format", help="jpeg or webp."),
    quality: int = typer.Option(85, help="Encoder quality, 1-100."),
    size: str | None = typer.Option(None, help="Obfuscate at WIDTHxHEIGHT (default: the model's training size)."),
    queue: int = typer.Option(8, help="Frames waiting to be sent; the oldest is dropped when full."),
    max_frames: int | None = typer.Option(None, min=1, help="Stop after this many frames."),
    realtime: bool = typer.Option(False, help="Pace a video file at its frame rate, dropping like a live camera."),
    retry_for: float | None = typer.Option(None, min=0.0, help="Give up after this many seconds offline "
                                                                "(server or live source)."),
    ca_file: Path | None = typer.Option(None, help="PEM CA certificate the https server's certificate must chain "
                                                   "to (a private CA, or a self-signed certificate itself)."),
    threads: int | None = typer.Option(None, min=1, help="ONNX Runtime threads."),
) -> None:
    """Camera side: decode, obfuscate (ONNX Runtime), encode and stream to 'veil serve'."""
    from rich.live import Live
    from rich.text import Text

    from veil.data.video import parse_size
    from veil.deployment.edge import EdgeAgent, EdgeConfig, check_config, load_obfuscator

    config = EdgeConfig(source=source, server=server, token=token, camera=camera, encoding=encoding, quality=quality,
                        queue_size=queue, max_frames=max_frames, realtime=realtime, retry_for=retry_for,
                        ca_file=str(ca_file) if ca_file else None)
    check_config(config)  # a bad URL or option fails before the model is loaded
    obfuscate, trained_size = load_obfuscator(str(obfuscator), threads=threads)
    config.size = parse_size(size) if size else trained_size
    # Transient: on an error the status line vanishes, leaving the one ``error:`` line.
    with Live(Text("starting"), console=console, refresh_per_second=4, transient=True) as live:
        agent = EdgeAgent(config, obfuscate, on_status=lambda s: live.update(Text(s.line())),
                          on_event=lambda line: console.print(line, highlight=False))
        try:
            stats = agent.run()
        except KeyboardInterrupt:
            stats = agent.stats
            stats.state = "stopped"
    console.print(stats.line(), highlight=False)
    console.print(f"sent {stats.sent} obfuscated frames, dropped {stats.dropped} under back-pressure, "
                  f"{stats.rejected} rejected, {stats.unsent} unsent when it stopped, "
                  f"{stats.reconnects} reconnect(s) to the server, "
                  f"{stats.source_reconnects} to the source", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(serve_app, name="serve")
    app.command("edge")(edge)
