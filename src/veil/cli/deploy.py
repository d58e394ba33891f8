"""``veil obfuscate``, ``veil export`` and ``veil bench edge``: taking an obfuscator to the camera."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from veil.cli.progress import bar, console

bench_app = typer.Typer(no_args_is_help=True, help="Measure speed on this machine.")


def register(app: typer.Typer) -> None:
    app.command()(obfuscate)
    app.command("export")(export)
    app.add_typer(bench_app, name="bench")


def obfuscate(
    checkpoint: Path = typer.Argument(..., help="obfuscator.safetensors of a run."),
    source: str = typer.Argument(..., help="Video file, folder (recursive), webcam index (0) or stream URL."),
    output: str = typer.Argument(..., help="Output video (.mp4/.avi/.mkv/.mov) or, for a folder, a folder."),
    overwrite: bool = typer.Option(False, help="Replace an existing output (only files Veil wrote)."),
    keep_audio: bool = typer.Option(False, help="Copy the source's audio into the output (it can identify people)."),
    max_frames: int | None = typer.Option(None, help="Stop after this many frames (webcams and streams)."),
) -> None:
    """Obfuscate footage: a video keeps its frame rate and length, and loses audio and metadata."""
    from veil.deployment.obfuscate import obfuscate_media

    def warn(message: str) -> None:
        sys.stderr.write(f"warning: {message}\n")  # plain, unwrapped: one line

    with bar("obfuscating") as update:
        n = obfuscate_media(checkpoint, source, Path(output), progress=lambda d, t: update(d, t),
                            overwrite=overwrite, keep_audio=keep_audio, max_frames=max_frames, warn=warn)
    console.print(f"wrote {n} obfuscated frames to {output}", highlight=False)


def export(
    checkpoint: Path | None = typer.Argument(None, help="obfuscator.safetensors of a run (or use --baseline)."),
    out: Path = typer.Option(Path("obfuscator.onnx"), help="ONNX file to write (the card goes beside it)."),
    baseline: str | None = typer.Option(None, help="Export this plain baseline (grey, downsample, grey_downsample, "
                                                   "quantisation) instead of a checkpoint."),
    strength: float | None = typer.Option(None, help="The baseline's strength (default: its own)."),
    frame_size: str = typer.Option("640x480", help="With --baseline: the WIDTHxHEIGHT frames are resized to."),
    int8: bool = typer.Option(False, help="Also write a static-QDQ int8 model (OUT.int8.onnx)."),
    dataset: Path | None = typer.Option(None, help="Dataset folder: measure relative person AP on its split."),
    split: str = typer.Option("test", help="Split of --dataset to measure on."),
    detector_weights: str | None = typer.Option(None, help="With --dataset: the weights file of the detector it "
                                                           "was made with (never read from a checkpoint or manifest)."),
    opset: int = typer.Option(18, help="ONNX opset (17 or later)."),
    overwrite: bool = typer.Option(False, help="Replace existing export files."),
) -> None:
    """Export the obfuscator (or a plain baseline) to ONNX, verified against PyTorch on vtest, with a model card."""
    from veil.deployment.export import export_baseline, export_onnx, output_paths
    from veil.errors import VeilError

    def say(line: str) -> None:
        console.print(line, highlight=False)

    if (checkpoint is None) == (baseline is None):
        raise VeilError("give either a CHECKPOINT or --baseline NAME (not both)")
    if baseline is not None:
        if int8:
            raise VeilError("--int8 needs a checkpoint: a baseline has no weights to quantise")
        width, _, height = frame_size.lower().partition("x")
        if not (width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
            raise VeilError(f"--frame-size must look like 640x480, got {frame_size!r}")
        card = export_baseline(baseline, out, strength, opset=opset, overwrite=overwrite,
                               frame_size=(int(width), int(height)), dataset=dataset, split=split, progress=say,
                               detector_weights=detector_weights)
    else:
        if strength is not None:
            raise VeilError("--strength goes with --baseline")
        assert checkpoint is not None  # exactly one of the two, checked above
        card = export_onnx(checkpoint, out, opset=opset, int8=int8, overwrite=overwrite, dataset=dataset, split=split,
                           progress=say, detector_weights=detector_weights)
    summary = {
        "files": {k: str(v) for k, v in output_paths(out, int8).items()},
        "parameters": card["model"]["parameters"],
        "gmacs_640x480": round(card["model"]["macs_640x480"] / 1e9, 3),
        "bits_per_frame": card["bound"]["bits_per_frame"],
        "opset": card["opset"],
        "max_abs_diff_vs_pytorch": card["parity"]["max_abs_diff"],
    }
    if "baseline" in card["model"]:
        summary["baseline"] = card["model"]["baseline"]
    if "int8" in card:
        summary["int8_max_abs_diff_vs_fp32"] = card["int8"]["max_abs_diff_vs_fp32"]
    if "utility" in card:
        summary["relative_person_ap"] = card["utility"]["relative_ap"]
        if "int8_relative_ap_cost" in card["utility"]:
            summary["int8_relative_ap_cost"] = card["utility"]["int8_relative_ap_cost"]
    elif int8:
        console.print("note: pass --dataset DIR to measure what int8 costs in relative person AP", highlight=False)
    typer.echo(json.dumps(summary, indent=2))


@bench_app.command("edge")
def bench_edge(
    checkpoint: Path = typer.Argument(..., help="obfuscator.safetensors of a run."),
    out: Path = typer.Option(Path("bench/results/edge-cpu.json"), help="JSON to write."),
    repeats: int = typer.Option(20, help="Timed runs per measurement (the median is reported)."),
    warmup: int = typer.Option(3, help="Untimed runs first."),
    onnx: Path | None = typer.Option(None, help="Time this 'veil export --int8' output instead of exporting anew."),
    detector_weights: str | None = typer.Option(None, help="The weights file of the detector the checkpoint trained "
                                                           "against (never read from the checkpoint)."),
) -> None:
    """Obfuscator (PyTorch, ONNX fp32/int8) vs detector latency per 640x480 frame, 1 and all threads."""
    from veil.deployment.bench import bench_edge as run
    from veil.errors import VeilError
    from veil.io import write_json

    if repeats < 1 or warmup < 0:
        raise VeilError("--repeats must be at least 1 and --warmup at least 0")
    result = run(checkpoint, repeats=repeats, warmup=warmup, onnx=onnx, detector_weights=detector_weights,
                 progress=lambda line: console.print(line, highlight=False))
    write_json(out, result)
    typer.echo(json.dumps({"ratio_to_detector": result["ratio_to_detector"], "target": result["target"]}, indent=2))
    console.print(f"wrote {out}", highlight=False)
