"""The ``veil`` command: a thin Typer layer over the Python API.

Every user error (VeilError, a missing or unreadable file) ends as one ``error:`` line on
stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from veil.cli.common import build_detector, parse_person_classes, pick_device
from veil.cli.progress import bar, console
from veil.errors import VeilError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Privacy-preserving camera analytics: train, audit and deploy on-camera obfuscators.")
data_app = typer.Typer(no_args_is_help=True, help="Prepare datasets.")
eval_app = typer.Typer(no_args_is_help=True, help="Evaluate a trained obfuscator.")
app.add_typer(data_app, name="data")
app.add_typer(eval_app, name="eval")


@data_app.command("prepare")
def data_prepare(
    source: str = typer.Argument(..., help="Video file, folder of videos or images, or 'vtest'."),
    out: Path = typer.Option(Path("data/vtest"), help="Dataset folder to create."),
    fps: float = typer.Option(5.0, help="Frames per second to sample."),
    size: str = typer.Option("640x480", help="Resize frames to WIDTHxHEIGHT."),
    split: str = typer.Option("0.8,0.1,0.1", help="Train/val/test fractions, contiguous in time."),
    detector: str = typer.Option("yolo", help="Detector that makes the pseudo-labels."),
    detector_weights: str | None = typer.Option(None, help="Detector weights file."),
    conf: float | None = typer.Option(None, help="Pseudo-label threshold (default: the detector's)."),
    person_classes: str | None = typer.Option(None, help="YOLO classes that are people, e.g. 0 or 0,2 "
                                                         "(default: all for the shipped model, 0 for COCO)."),
    overwrite: bool = typer.Option(False, help="Replace an existing dataset folder."),
) -> None:
    """Sample, resize, split and pseudo-label footage into a dataset folder."""
    from veil.data.dataset import PrepareConfig, prepare_dataset
    from veil.data.video import parse_size

    try:
        fractions = tuple(float(v) for v in split.split(","))
    except ValueError:
        raise VeilError(f"--split must be three numbers like 0.8,0.1,0.1, got {split!r}") from None
    if len(fractions) != 3:
        raise VeilError(f"--split must be three numbers like 0.8,0.1,0.1, got {split!r}")
    config = PrepareConfig(fps=fps, size=parse_size(size), split=fractions, conf=conf)  # type: ignore[arg-type]
    det = build_detector(detector, detector_weights, person_classes=parse_person_classes(person_classes))
    with bar("pseudo-labelling") as update:
        path = prepare_dataset(source, out, det, config, overwrite=overwrite, progress=lambda d, t: update(d, t))
    manifest = json.loads((path / "manifest.json").read_text())
    counts = {k: len(v) for k, v in manifest["splits"].items()}
    console.print(f"dataset {path}: {counts}, {manifest['num_boxes']} pseudo-label boxes")


@eval_app.command("utility")
def eval_utility(
    checkpoint: Path = typer.Argument(..., help="obfuscator.safetensors of a run."),
    dataset: Path = typer.Argument(..., help="Dataset folder."),
    split: str = typer.Option("test"),
    out: Path | None = typer.Option(None, help="Write the metrics JSON here."),
    detector: str | None = typer.Option(None, help="Detector to evaluate with (default: the dataset's)."),
    detector_weights: str | None = typer.Option(None),
    device: str = typer.Option("auto"),
) -> None:
    """Person AP on original, obfuscated and reconstructed frames (relative AP = obf / orig)."""
    from veil.data.dataset import FrameDataset
    from veil.evaluation.utility import evaluate_utility
    from veil.io import write_json
    from veil.training.state import load_models

    dev = pick_device(device)
    obfuscator, deobfuscator, meta = load_models(checkpoint)
    data = FrameDataset(dataset, split)
    from veil.detectors import weights_to_load

    det = build_detector(detector or meta["config"]["detector"],
                         detector_weights if detector else weights_to_load(
                             meta["config"].get("detector_weights"), detector_weights, f"the checkpoint {checkpoint}"),
                         dev, None if detector else meta["config"].get("detector_person_classes"))
    result = evaluate_utility(det, data, obfuscator.to(dev), deobfuscator.to(dev) if deobfuscator else None,
                              device=dev)
    text = json.dumps(result, indent=2)
    if out:
        write_json(out, result)
    typer.echo(text)


@app.command()
def demo(
    out: Path = typer.Option(Path("results/demo"), help="Results folder."),
    preset: str = typer.Option("cpu", help="'cpu' (fits the 25-minute budget on 2 cores) or 'paper'."),
    device: str = typer.Option("auto"),
    audit: bool = typer.Option(True, help="Run the fast privacy audit as well."),
    sweep: bool = typer.Option(False, help="Audit with baseline sweeps calibrated to equal utility (slow)."),
) -> None:
    """Prepare vtest, train, evaluate, obfuscate (and audit): results/demo/metrics.json and more."""
    from veil.cli.progress import RichProgress
    from veil.demo import run_demo

    run_demo(out, preset=preset, device=pick_device(device), audit=audit, sweep=sweep, progress=RichProgress())


def _register_commands() -> None:
    """Commands that live in their own modules: train; audit; obfuscate, export, bench edge; serve, edge."""
    from veil.cli import audit, deploy, serve, train

    for module in (train, audit, deploy, serve):
        module.register(app)
    from veil.cli import sweep; sweep.register(app)  # noqa: E702, I001  (one line: veil sweep)


_register_commands()


def main() -> None:
    """Console entry point: one error line and exit 2 for any user error."""
    try:
        app()
    except VeilError as exc:
        _fail(str(exc))
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        _fail(f"{exc.strerror}: {exc.filename}")


def _fail(message: str) -> None:
    # Plain write, not rich: one unwrapped line whatever the terminal width.
    sys.stderr.write(f"error: {' '.join(message.split())}\n")
    sys.exit(2)


if __name__ == "__main__":
    main()
