"""``veil demo``: the whole pipeline on vtest with one command.

prepare (cached) -> train (resumable) -> utility eval -> side-by-side picture -> obfuscated
clip -> fast privacy audit. Writes RESULTS/metrics.json, side_by_side.png, obfuscated.mp4
and, with the audit, RESULTS/audit/report.html.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import cv2
import torch

from veil.data.dataset import FrameDataset, PrepareConfig, obfuscator_inputs, prepare_dataset
from veil.data.sources import cache_dir, vtest_path
from veil.deployment.obfuscate import obfuscate_media
from veil.detectors import DETECTORS
from veil.evaluation.utility import evaluate_utility
from veil.evaluation.visualize import side_by_side
from veil.io import atomic_path, read_json, write_json
from veil.obfuscators.base import clip_length
from veil.training.config import TrainConfig
from veil.training.presets import make_config
from veil.training.state import load_models
from veil.training.trainer import Trainer, changed_settings

TARGETS = {"relative_ap_min": 0.85, "ssim_obfuscated_max": 0.4}


class Progress(Protocol):
    """Where the demo reports: lines of text, and bars fed ``update(done, total=None, info="")``.
    The CLI passes rich's; the default says nothing, so the demo runs as a library call too."""

    def say(self, line: str) -> None: ...

    def bar(self, description: str, total: int | None = None) -> contextlib.AbstractContextManager[Callable]: ...


class Quiet:
    """A Progress that reports nothing."""

    def say(self, line: str) -> None:
        pass

    @contextlib.contextmanager
    def bar(self, description: str, total: int | None = None) -> Iterator[Callable]:  # noqa: ARG002
        yield lambda *_args, **_kwargs: None


def _dataset(detector, stages: dict, progress: Progress) -> Path:
    """The vtest dataset, prepared once into the cache."""
    path = cache_dir() / "datasets" / "vtest-640x480-5fps-yolo"
    if not (path / "manifest.json").is_file():
        start = time.time()
        with progress.bar("preparing vtest") as update:
            prepare_dataset("vtest", path, detector, PrepareConfig(), overwrite=True,
                            progress=lambda d, t: update(d, t))
        stages["prepare"] = round(time.time() - start, 1)
    return path


def own_run(run_dir: Path, config: TrainConfig, progress: Progress) -> Path:
    """``run_dir``, moved aside first (renamed, never deleted) if an earlier demo trained another recipe
    there: after an upgrade that changed the preset, ``make demo`` trains afresh instead of refusing to."""
    changed = changed_settings(run_dir, config)
    if changed:
        kept = run_dir.with_name(f"{run_dir.name}-{time.strftime('%Y%m%d-%H%M%S')}")
        run_dir.rename(kept)
        progress.say(f"{run_dir} was trained with other settings ({'; '.join(changed[:3])}"
                     f"{'; ...' if len(changed) > 3 else ''}): kept as {kept}, training afresh")
    return run_dir


def run_demo(out: str | Path, preset: str = "cpu", device: str = "cpu", audit: bool = True,
             sweep: bool = False, progress: Progress | None = None) -> dict:
    """Run every stage (each resumable or cached) and write RESULTS/metrics.json."""
    progress = progress or Quiet()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    begin = time.time()
    stages: dict[str, float] = {}
    detector = DETECTORS.build("yolo").to(device)
    dataset = _dataset(detector, stages, progress)

    start = time.time()
    # No validation passes while training: the demo measures the test split right after it, and three
    # passes over the val split cost about half a minute on issue 18's slower machine (demo-cpu-run)
    config = make_config(preset, dataset, val_every=0)
    trainer = Trainer(dataset, own_run(out / "run", config, progress), config, device=device, detector=detector)
    if trainer.resume():
        progress.say(f"resuming the demo run after epoch {trainer.epoch}")
    weights = ", ".join(f"{name} x {w:g}" for name, w in config.adversaries.items())
    progress.say(f"training preset {preset!r} against: detector x {config.a_obj:g}, {weights}")
    total = config.epochs * trainer.steps_per_epoch()
    with progress.bar("training", total) as update:
        trainer.fit(lambda e, s, n, losses: update(e * n + s, total, f"epoch {e + 1} L_obj {losses['loss_obj']:.2f}"))
    stages["train"] = round(time.time() - start, 1)

    start = time.time()
    checkpoint = out / "run" / "obfuscator.safetensors"
    obfuscator, deobfuscator, _ = load_models(checkpoint)
    assert deobfuscator is not None  # every preset trains the reconstruction adversary D
    obfuscator, deobfuscator = obfuscator.to(device), deobfuscator.to(device)
    test = FrameDataset(dataset, "test")
    utility = evaluate_utility(detector, test, obfuscator, deobfuscator, device=device)
    stages["evaluate"] = round(time.time() - start, 1)

    start = time.time()
    _write_side_by_side(out / "side_by_side.png", test, obfuscator, deobfuscator, detector, device,
                        read_json(dataset / "manifest.json")["detector"]["pseudo_label_threshold"])
    # The clip covers the test split's time range: footage the obfuscator never trained on.
    test_indices = [r["index"] for r in test.manifest["frames"] if r["split"] == "test"]
    clip = range(min(test_indices), max(test_indices) + 1)
    with progress.bar("obfuscating the vtest test range") as update:
        obfuscate_media(checkpoint, vtest_path(), out / "obfuscated.mp4", progress=lambda d, t: update(d, t),
                        frames=clip, overwrite=True)
    stages["obfuscate"] = round(time.time() - start, 1)

    audit_summary = None
    if audit:
        start = time.time()
        audit_summary = _audit(dataset, obfuscator, out / "audit", detector, device, sweep, progress)
        stages["audit"] = round(time.time() - start, 1)

    metrics: dict[str, Any] = {
        "dataset": str(dataset),
        "preset": preset,
        "device": device,
        "train_config": config.to_dict(),
        "training_history": trainer.history,
        "test": utility,
        "targets": TARGETS,
        "meets_targets": {
            "relative_ap": utility["relative_ap"]["obfuscated"] >= TARGETS["relative_ap_min"],
            "ssim_obfuscated": utility["similarity_to_original"]["obfuscated"]["ssim"]
            <= TARGETS["ssim_obfuscated_max"],
        },
        "audit": audit_summary,
        "stage_seconds": stages,
        "total_seconds": round(time.time() - begin, 1),
    }
    write_json(out / "metrics.json", metrics)
    rel = utility["relative_ap"]["obfuscated"]
    sim = utility["similarity_to_original"]
    progress.say(
        f"relative person AP {rel:.3f} | SSIM obf {sim['obfuscated']['ssim']:.3f} "
        f"PSNR obf {sim['obfuscated']['psnr']:.1f} dB | SSIM rec {sim['reconstructed']['ssim']:.3f} "
        f"PSNR rec {sim['reconstructed']['psnr']:.1f} dB"
    )
    progress.say(f"demo finished in {metrics['total_seconds'] / 60:.1f} min; results in {out}")
    return metrics


@torch.no_grad()
def _write_side_by_side(path: Path, test: FrameDataset, obfuscator, deobfuscator, detector, device, conf) -> None:
    # The test frame with the most pseudo-labelled people makes the clearest picture.
    i = max(range(len(test)), key=lambda k: len(test.targets[k].boxes))
    clip = obfuscator_inputs(test, [i], clip_length(obfuscator))[0].to(device)  # a temporal O gets the frame's clip
    x = clip[:, -1] if clip.dim() == 5 else clip
    z = obfuscator(clip)
    views = {"original": x[0], "obfuscated": z[0], "reconstructed": deobfuscator(z)[0]}
    picture = side_by_side(views, detector, conf)
    with atomic_path(path) as tmp:
        cv2.imwrite(str(tmp), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))


def _audit(dataset: Path, obfuscator, out: Path, detector, device: str, sweep: bool,
           progress: Progress) -> dict | None:
    try:
        from veil.audit import run_audit
    except ImportError as exc:
        progress.say(f"skipping the audit: {exc} (install veil[audit])")
        return None
    # the audit runs where the detector and obfuscator are: on a CUDA machine, on the GPU
    report = run_audit(dataset, obfuscator, out, detector, preset="fast", sweep=sweep, overrides={"device": device},
                       progress=lambda line: progress.say(f"audit: {line}"))
    return {"report": str(out / "report.html"),
            "verdict": report.verdict.model_dump(mode="json") if report.verdict else None,
            "stage_seconds": report.stage_seconds}
