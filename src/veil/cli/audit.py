"""``veil audit``: the privacy audit from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from veil.cli.progress import console


def audit(
    checkpoint: Path | None = typer.Argument(None, help="obfuscator.safetensors; omit to audit baselines only."),
    dataset: Path = typer.Option(..., "--dataset", help="Dataset folder from 'veil data prepare'."),
    out: Path = typer.Option(Path("results/audit"), help="Folder for report.json and report.html."),
    preset: str = typer.Option("fast", help="'fast' (the demo's, CPU minutes), 'strong' (quoted figures) or 'full'."),
    seeds: int | None = typer.Option(None, help="Repeat every attack with this many seeds (default: the preset's)."),
    protocol: list[str] | None = typer.Option(None, help="Identity protocol(s): reid, tracking (default: both)."),
    time_gap: float | None = typer.Option(None, help="Seconds between attacker-train and -test crops (reid)."),
    identity_splits: str | None = typer.Option(None, help="Splits the reid identities come from (default val,test)."),
    sweep: bool = typer.Option(False, help="Calibrate each baseline to the obfuscator's utility and attack it there."),
    attributes_csv: Path | None = typer.Option(None, help="CSV of (frame, x1, y1, x2, y2, attributes...)."),
    detector: str | None = typer.Option(None, help="Detector for utility (default: the dataset's)."),
    detector_weights: str | None = typer.Option(None),
    device: str = typer.Option("auto", help="cpu, cuda or auto."),
) -> None:
    """Attack the obfuscated video with N unseen attackers and compare with classic baselines."""
    from veil.audit import run_audit
    from veil.cli.main import _detector, _device
    from veil.errors import VeilError
    from veil.io import read_json
    from veil.training.state import load_models

    if not (dataset / "manifest.json").is_file():
        raise VeilError(f"not a prepared dataset (no manifest.json): {dataset}")
    obfuscator = load_models(checkpoint)[0] if checkpoint else None
    spec = read_json(dataset / "manifest.json")["detector"]
    det = _detector(detector or spec.get("name", "yolo"), detector_weights or spec.get("weights"))
    overrides: dict = {"device": _device(device)}
    if seeds is not None:
        overrides["seeds"] = seeds
    if protocol:
        overrides["protocols"] = tuple(protocol)
    if time_gap is not None:
        overrides["time_gap"] = time_gap
    if identity_splits:
        overrides["reid_splits"] = tuple(s.strip() for s in identity_splits.split(",") if s.strip())
    report = run_audit(dataset, obfuscator, out, det, preset=preset, sweep=sweep, user_attributes_csv=attributes_csv,
                       overrides=overrides, progress=typer.echo)  # progress on stdout: stderr carries only errors
    typer.echo(json.dumps(report["verdict"], indent=2))
    console.print(f"report: {out / 'report.html'}")


def register(app: typer.Typer) -> None:
    app.command()(audit)
