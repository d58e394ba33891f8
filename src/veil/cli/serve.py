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
token_app = typer.Typer(no_args_is_help=True, help="Manage per-camera tokens (stored as salted scrypt hashes).")
serve_app.add_typer(token_app, name="token")


@serve_app.callback()
def serve(
    ctx: typer.Context,
    tokens: Path | None = typer.Option(None, help="Tokens file from 'veil serve token add'."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, min=0, max=65535),
    workers: int = typer.Option(1, min=1, help="Worker processes (uvicorn --workers)."),
    state_dir: Path | None = typer.Option(None, help="Shared state folder (SQLite); several 'veil serve' "
                                                     "processes behind one load balancer must share it. "
                                                     "Default: a temporary folder removed at exit."),
    detector: str = typer.Option("yolo", help="Frozen detector the obfuscator was trained for."),
    detector_weights: str | None = typer.Option(None, help="Detector weights file."),
    conf: float | None = typer.Option(None, min=0.0, max=1.0, help="Detection threshold (default: the detector's)."),
    max_bytes: int = typer.Option(8 * 1024 * 1024, min=1, help="Largest accepted upload, in bytes."),
    max_pixels: int = typer.Option(4096 * 4096, min=1, help="Largest accepted image, in pixels."),
    store: Path | None = typer.Option(None, help="Keep every uploaded (obfuscated) frame in this folder."),
    latest_frame: bool = typer.Option(True, help="Keep each camera's latest frame for the dashboard."),
    threads: int | None = typer.Option(None, min=1, help="PyTorch threads per worker."),
) -> None:
    """Serve the detector over HTTP: POST /v1/cameras/CAMERA/frames; dashboard at /."""
    if ctx.invoked_subcommand is not None:
        return
    from veil.cloud.auth import read_tokens

    if tokens is None:
        raise VeilError("--tokens FILE is required (create one with 'veil serve token add CAMERA --tokens FILE')")
    if not read_tokens(tokens):
        raise VeilError(f"{tokens} holds no camera token yet: add one with 'veil serve token add CAMERA'")
    import uvicorn

    from veil.cloud.app import SETTINGS_ENV, ServeSettings, settings_env
    from veil.detectors import DETECTORS

    if detector not in DETECTORS:
        raise VeilError(f"unknown detector {detector!r} (known: {', '.join(DETECTORS.names())})")
    if detector_weights and not Path(detector_weights).is_file():
        raise VeilError(f"detector weights not found: {detector_weights}")
    if store is not None and store.exists() and not store.is_dir():
        raise VeilError(f"--store must be a folder: {store}")
    with contextlib.ExitStack() as stack:
        if state_dir is None:  # ours: created here, removed at exit
            state_dir = Path(tempfile.mkdtemp(prefix="veil-serve-state-"))
            stack.callback(shutil.rmtree, state_dir, True)
        if workers > 1:
            # prometheus-client's multiprocess mode: one folder shared by this run's workers only.
            metrics_dir = tempfile.mkdtemp(prefix="veil-serve-metrics-")
            stack.callback(shutil.rmtree, metrics_dir, True)
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        settings = ServeSettings(tokens=str(tokens.resolve()), state_dir=str(state_dir.resolve()), detector=detector,
                                 detector_weights=detector_weights, conf=conf, max_bytes=max_bytes,
                                 max_pixels=max_pixels, store=str(store.resolve()) if store else None,
                                 keep_latest_frame=latest_frame, threads=threads)
        os.environ[SETTINGS_ENV] = settings_env(settings)
        console.print(f"veil serve: http://{host}:{port}/ ({workers} worker(s), detector {detector}, "
                      f"state {state_dir})", highlight=False)
        # uvicorn re-raises SIGTERM/SIGINT once it has shut down; turn them into a normal exit so
        # the temporary folders above are removed.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.run("veil.cloud.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                        log_level="warning", timeout_graceful_shutdown=5)


@token_app.command("add")
def token_add(
    camera: str = typer.Argument(..., help="Camera name (letters, digits, '.', '_', '-')."),
    tokens: Path = typer.Option(Path("tokens.json"), help="Tokens file to create or update."),
    replace: bool = typer.Option(False, help="Issue a new token for a camera that has one."),
) -> None:
    """Create a camera token; it is printed once and only its salted hash is stored."""
    from veil.cloud.auth import add_token

    token = add_token(tokens, camera, replace=replace)
    console.print(f"token for camera {camera!r} (shown once; {tokens} keeps only its hash):", highlight=False)
    typer.echo(token)


@token_app.command("remove")
def token_remove(camera: str = typer.Argument(...), tokens: Path = typer.Option(Path("tokens.json"))) -> None:
    """Revoke a camera's token."""
    from veil.cloud.auth import remove_token

    remove_token(tokens, camera)
    console.print(f"removed camera {camera!r} from {tokens}", highlight=False)


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
                  f"{stats.rejected} rejected, {stats.reconnects} reconnect(s) to the server, "
                  f"{stats.source_reconnects} to the source", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(serve_app, name="serve")
    app.command("edge")(edge)
