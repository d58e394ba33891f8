"""``veil audit``: the privacy audit from the command line, of one obfuscator or several."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from veil.cli.common import build_detector, parse_baselines, pick_device
from veil.cli.progress import console
from veil.errors import VeilError
from veil.training.config import SNAPSHOTS  # torch-free


def audit(
    checkpoints: list[Path] | None = typer.Argument(
        None, help="obfuscator.safetensors of one run or several (compared under identical crops, labels, "
                   "attackers and seeds, named by their run folders); omit to audit baselines only."),
    dataset: Path = typer.Option(..., "--dataset", help="Dataset folder from 'veil data prepare'."),
    out: Path = typer.Option(Path("results/audit"), help="Folder for report.json and report.html."),
    preset: str = typer.Option("fast", help="'fast' (the demo's, CPU minutes), 'strong' (quoted figures), 'full' "
                                           "or 'smoke' (seconds, pipeline checks only)."),
    seeds: int | None = typer.Option(None, help="Repeat every attack with this many seeds (default: the preset's)."),
    protocol: list[str] | None = typer.Option(None, help="Identity protocol(s): reid, tracking (default: both)."),
    time_gap: float | None = typer.Option(None, help="Seconds between attacker-train and -test crops (reid)."),
    identity_splits: str | None = typer.Option(None, help="Splits the reid identities come from (default val,test)."),
    sweep: bool = typer.Option(False, help="Calibrate each baseline to the (first) obfuscator's utility and attack "
                                           "it there."),
    baselines: str | None = typer.Option(None, help="Baselines to audit, NAME,NAME or 'none' (default: all); "
                                               "NAME@STRENGTH fixes a strength, e.g. grey_downsample@2."),
    attributes_csv: Path | None = typer.Option(None, help="CSV of (frame, x1, y1, x2, y2, attributes...)."),
    detector: str | None = typer.Option(None, help="Detector for utility (default: the dataset's)."),
    detector_weights: str | None = typer.Option(None),
    device: str = typer.Option("auto", help="cpu, cuda or auto."),
    cross_fit: int | None = typer.Option(
        None, "--cross-fit", help="Audit the checkpoint's training RECIPE over K folds of the whole clip: each fold "
                                  "is attacked on the output of an obfuscator retrained on the other folds "
                                  "(resumable; hours at the strong preset on 2 cores)."),
    fold_gap: float | None = typer.Option(None, help="Seconds left out at each fold boundary (default: the reid "
                                                     "time gap)."),
    transfer: bool | None = typer.Option(None, "--transfer/--no-transfer",
                                         help="Measure utility under every offline detector (YOLO, HOG), the count "
                                              "error, tracking agreement and face leak (default: the preset's)."),
    codec: str | None = typer.Option(None, help="Measure every transformed frame after the edge's codec, as the "
                                                "cloud receives it, and report its bytes: jpeg@85 (the edge agent's "
                                                "default), webp@80, ... (default: lossless frames)."),
    headline: str | None = typer.Option(None, help="The identity figure the verdict is read on: auc (default: the "
                                                   "tightest intervals), mAP, rank1, top1, top1_per_identity, "
                                                   "video_top1."),
) -> None:
    """Attack the obfuscated video with N unseen attackers and compare with classic baselines."""
    from veil.audit.config import resolve
    from veil.data.manifest import require_dataset

    require_dataset(dataset)
    overrides: dict = {}
    if seeds is not None:
        overrides["seeds"] = seeds
    if protocol:
        overrides["protocols"] = tuple(protocol)
    if time_gap is not None:
        overrides["time_gap"] = time_gap
    if transfer is not None:
        overrides["transfer"] = transfer
    if codec is not None:
        overrides["codec"] = codec
    if headline is not None:
        overrides["headline"] = headline
    if identity_splits:
        overrides["reid_splits"] = tuple(s.strip() for s in identity_splits.split(",") if s.strip())
    resolve(preset, overrides)  # a bad preset or setting fails here, before torch and the detector load
    if cross_fit is not None and len(checkpoints or []) != 1:
        raise VeilError("--cross-fit audits the training recipe of exactly one checkpoint; give one")
    if cross_fit is not None and cross_fit < 2:
        raise VeilError(f"--cross-fit needs at least 2 folds, got {cross_fit}")
    from veil.audit import run_audit
    from veil.io import read_json

    if baselines is not None:
        overrides["baselines"] = parse_baselines(baselines)
    spec = read_json(dataset / "manifest.json")["detector"]
    if detector:  # the user's choice: their weights, or the adapter's packaged ones
        det = build_detector(detector, detector_weights)
    else:  # the dataset's detector; a weights file recorded in its manifest is loaded only if typed
        from veil.detectors import weights_to_load

        det = build_detector(spec.get("name", "yolo"),
                             weights_to_load(spec.get("weights"), detector_weights, f"the dataset {dataset}"))
    overrides["device"] = pick_device(device)
    # progress on stdout: stderr carries only errors
    if cross_fit is not None:
        from veil.audit.crossfit import cross_fit_audit
        from veil.training.config import TrainConfig
        from veil.training.state import load_models

        recipe = TrainConfig.from_dict(load_models(checkpoints[0])[2]["config"])  # type: ignore[index]
        report = cross_fit_audit(dataset, recipe, out, det, preset=preset, folds=cross_fit, gap=fold_gap,
                                 overrides=overrides, sweep=sweep, progress=typer.echo)
    else:
        obfuscators, info = load_obfuscators(checkpoints or [])
        report = run_audit(dataset, obfuscators, out, det, preset=preset, sweep=sweep,
                           user_attributes_csv=attributes_csv, overrides=overrides, progress=typer.echo, info=info)
    typer.echo(json.dumps(report.verdict.model_dump(mode="json") if report.verdict else {}, indent=2))
    console.print(f"report: {out / 'report.html'}")


def _run_label(checkpoint: Path, folders: int) -> str:
    """The last ``folders`` folders of a checkpoint's run; a training snapshot
    (RUN/snapshots/epochNNN.safetensors) adds its epoch: "RUN/epochNNN"."""
    if checkpoint.parent.name == SNAPSHOTS:
        return "/".join([*checkpoint.parts[-2 - folders:-2], checkpoint.stem])
    return "/".join(checkpoint.parts[-1 - folders:-1]) or checkpoint.stem


def method_names(checkpoints: list[Path]) -> list[str]:
    """One checkpoint: "obfuscator" (as ever). Several: each run folder's name (with the epoch for
    a snapshot), made unique by the folders above it, then by a number."""
    if len(checkpoints) == 1:
        return ["obfuscator"]
    resolved = [c.resolve() for c in checkpoints]
    names = [_run_label(c, 1) for c in resolved]
    if len(set(names)) < len(names):  # e.g. runs/a/seed0 and runs/b/seed0: a/seed0, b/seed0
        names = [_run_label(c, 2) for c in resolved]
    out: list[str] = []
    for name in names:
        unique, k = name, 2
        while unique in out:
            unique, k = f"{name}-{k}", k + 1
        out.append(unique)
    return out


def load_obfuscators(checkpoints: list[Path]) -> tuple[dict, dict[str, dict]]:
    """name -> obfuscator module, and name -> what the report quotes of its checkpoint."""
    from veil.training.state import load_models

    modules, info = {}, {}
    for name, path in zip(method_names(checkpoints), checkpoints):
        obfuscator, _, meta = load_models(path)
        config = meta.get("config", {})
        modules[name] = obfuscator
        info[name] = {"checkpoint": str(path), "obfuscator": config.get("obfuscator"),
                      "obfuscator_args": config.get("obfuscator_args") or {"width": config.get("obfuscator_width")},
                      "adversaries": meta.get("adversaries", config.get("adversaries")), "epoch": meta.get("epoch")}
    return modules, info


def register(app: typer.Typer) -> None:
    app.command()(audit)
