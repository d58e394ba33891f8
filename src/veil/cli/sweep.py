"""``veil sweep``: studies over several trainings; ``veil sweep width`` (de-coninck-2024 Figs. 5-6)."""

from __future__ import annotations

from pathlib import Path

import typer

from veil.cli.common import parse_baselines, pick_device

sweep_app = typer.Typer(no_args_is_help=True, help="Train and audit several obfuscators and tabulate them.")


@sweep_app.command("width")
def width(
    dataset: Path = typer.Argument(..., help="Dataset folder from 'veil data prepare'."),
    widths: str = typer.Option("0.25,0.5,1,2", help="Width multipliers of the MobileNet autoencoder."),
    out: Path = typer.Option(Path("runs/width-sweep"), help="Folder: one run folder per width, the table, "
                                                            "the plot and the audit report."),
    preset: str = typer.Option("cpu", help="Training preset of every width ('smoke' for a pipeline check)."),
    seed: int = typer.Option(0),
    audit_preset: str = typer.Option("fast", help="Audit preset: fast, strong (or smoke, full)."),
    baselines: str = typer.Option("none", help="Baselines to audit alongside, NAME,NAME or 'none'."),
    device: str = typer.Option("auto", help="cpu, cuda or auto."),
) -> None:
    """Train the MobileNet autoencoder at several widths (resumable) and tabulate parameters, MACs,
    CPU latency, relative AP, worst-case identity and attribute mA against complexity."""
    from veil.experiments.width import check_inputs, parse_widths, width_sweep

    chosen = parse_widths(widths)
    check_inputs(dataset, audit_preset)
    table = width_sweep(dataset, out, chosen, preset=preset, seed=seed, audit_preset=audit_preset,
                        baselines=parse_baselines(baselines), device=pick_device(device), progress=typer.echo)
    protocol = table["protocols"][0]
    for r in table["rows"]:
        typer.echo(f"width {r['width']:g}: {r['parameters']} params, {r['macs'] / 1e6:.1f} MMACs, "
                   f"{r['latency_ms']:.1f} ms/frame, relative AP {r['relative_ap_test']:.3f}, "
                   f"identity ({protocol}) {r[f'identity_{protocol}']:.3f}"
                   + (f", mA {r['attributes_mA']:.3f}" if "attributes_mA" in r else ""))
    typer.echo(f"table: {out / 'table.csv'}; plot: {out / 'complexity.png'}; audit: {table['audit_report']}")


def register(app: typer.Typer) -> None:
    app.add_typer(sweep_app, name="sweep")
