"""``veil train``: a thin layer over veil.training.Trainer (runs under torchrun as well)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import typer

from veil.cli.common import parse_person_classes, pick_device
from veil.cli.progress import bar, console
from veil.errors import VeilError


def train(
    dataset: Path = typer.Argument(..., help="Dataset folder from 'veil data prepare'."),
    out: Path = typer.Option(Path("runs/obfuscator"), help="Run folder (checkpoints, log.csv)."),
    preset: str = typer.Option("paper", help="'paper' (30 epochs, whole frames), 'cpu' (short, crops), "
                                             "'cpu-budget' (cpu + wu-2018's budget ensemble)."),
    adversary: list[str] = typer.Option(None, "--adversary", help="NAME:WEIGHT, repeatable, e.g. "
                                        "--adversary reconstruction:1 --adversary budget:2 (default: the preset's)."),
    adversary_option: list[str] = typer.Option(None, "--adversary-option",
                                               help="ADVERSARY.OPTION=VALUE, repeatable, e.g. budget.models=4."),
    epochs: int | None = typer.Option(None, help="Override the preset's epochs."),
    batch_size: int | None = typer.Option(None, help="Frames per step and process."),
    crop: int | None = typer.Option(None, help="Train on square random crops of this size."),
    steps_per_epoch: int | None = typer.Option(None),
    lr: float | None = typer.Option(None),
    lr_drop: float | None = typer.Option(None, help="Share of the epochs before lr drops tenfold (paper: 0.5)."),
    a_obj: float = typer.Option(1.0, help="Weight of the detector loss."),
    snapshot_every: int | None = typer.Option(None, help="Keep snapshots/epochNNN.safetensors every N epochs "
                                                         "(to audit privacy over training)."),
    obfuscator: str | None = typer.Option(None, help="Registered obfuscator, e.g. bottleneck or mobilenet_ae "
                                                     "(default: the preset's; the paper's is mobilenet_ae)."),
    obfuscator_arg: list[str] = typer.Option(None, "--obfuscator-arg",
                                             help="KEY=VALUE argument of the obfuscator, repeatable, e.g. width=0.5."),
    width: float | None = typer.Option(None, help="Obfuscator width multiplier (same as --obfuscator-arg width=W)."),
    detector: str | None = typer.Option(None, help="Detector (default: the dataset's)."),
    detector_weights: str | None = typer.Option(None),
    person_classes: str | None = typer.Option(None, help="Detector classes that are people, e.g. 0 or 0,2 "
                                                         "(default: the dataset's)."),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto", help="cpu, cuda or auto."),
    resume: bool = typer.Option(False, help="Continue the run in --out from its last checkpoint."),
) -> None:
    """Train an obfuscator against the frozen detector and the chosen adversaries."""
    from veil.training.config import parse_adversaries, parse_arguments, parse_options
    from veil.training.presets import make_config
    from veil.training.state import build_obfuscator
    from veil.training.trainer import Trainer

    arguments = parse_arguments(obfuscator_arg or [])
    if width is not None and "width" in arguments:
        raise VeilError("--width and --obfuscator-arg width=... both set the width: give one of them")
    config = make_config(preset, dataset, epochs=epochs, batch_size=batch_size, crop=crop,
                         steps_per_epoch=steps_per_epoch, lr=lr, lr_drop=lr_drop, snapshot_every=snapshot_every,
                         a_obj=a_obj, obfuscator=obfuscator, obfuscator_args=arguments or None, obfuscator_width=width,
                         detector=detector, detector_weights=detector_weights,
                         detector_person_classes=parse_person_classes(person_classes), seed=seed,
                         adversaries=parse_adversaries(adversary) if adversary else None,
                         adversary_options=parse_options(adversary_option or []))
    build_obfuscator(config)  # a wrong name or argument fails here, before any data is loaded
    trainer = Trainer(dataset, out, config, device=pick_device(device))
    rank0 = trainer.rank == 0
    if resume and trainer.resume():
        if rank0:
            console.print(f"resumed {out} after epoch {trainer.epoch}")
    elif (out / "last.safetensors").exists():
        raise VeilError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    if rank0:
        weights = ", ".join(f"{k} x {v:g}" for k, v in config.adversaries.items())
        console.print(f"training against: detector x {config.a_obj:g}, {weights}"
                      + (f" on {trainer.world_size} processes" if trainer.world_size > 1 else ""))
    total = config.epochs * trainer.steps_per_epoch()
    # only rank 0 draws progress; the other ranks train silently
    with bar("training", total) if rank0 else contextlib.nullcontext(_silent) as update:
        def on_step(epoch: int, step: int, steps: int, losses: dict) -> None:
            shown = " ".join(f"{k} {v:.3f}" for k, v in losses.items() if k in ("loss_obj", "loss_rec", "loss_budget"))
            update(epoch * steps + step, total, f"epoch {epoch + 1} {shown}")

        update(trainer.epoch * trainer.steps_per_epoch(), total)
        result = trainer.fit(on_step)
    trainer.close()
    if rank0:
        last = result.history[-1] if result.history else {}
        console.print(f"checkpoint {result.checkpoint}; last epoch: {json.dumps(last)}")


def _silent(*_args, **_kwargs) -> None:
    """Progress update of the ranks that draw none."""


def register(app: typer.Typer) -> None:
    app.command("train")(train)
