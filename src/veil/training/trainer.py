"""``veil train``: the adversarial obfuscator of de-coninck-2024, against pluggable adversaries.

Each step, on one batch (O is first told how far training is: ``O.set_progress(step / steps)``):
  1. O runs forward once: z = O(X), where X holds each frame's clip for a temporal O.
  2. every training adversary takes its own update on z (detached): the reconstruction
     adversary's D minimises MSE(X, D(z)); the budget ensemble minimises cross-entropy; ...
  3. O minimises L_O = a_obj * L_obj(z) + sum_k w_k * term_k(z), where L_obj is the frozen
     detector's own loss on the pseudo-labels (always the first term) and term_k is what
     adversary k adds (-L_rec for reconstruction), with every adversary frozen in eval mode,
     plus O's own ``regulariser()`` when it has one (logged as loss_reg).
A checkpoint is written after every epoch; ``resume=True`` continues from the last one and
ends with the same weights as an uninterrupted run (data order is a function of seed+epoch).

Under ``torchrun`` the trainer joins the process group (gloo on CPU, nccl on CUDA), wraps
every trained network in DistributedDataParallel, gives each rank its own share of every
global batch, and only rank 0 validates and writes the run folder.
"""

from __future__ import annotations

import csv
import gc
import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

import torch
import torch.distributed as dist

import veil
from veil.data.dataset import FrameDataset
from veil.detectors import DETECTORS, FrozenDetector, Target
from veil.errors import VeilError
from veil.evaluation.utility import detection_ap
from veil.io import atomic_path, load_checkpoint, read_json, remove_stale_temporaries, save_checkpoint
from veil.obfuscators.base import Obfuscator, clip_length
from veil.training.adversaries import TRAINING_ADVERSARIES, AdversaryContext, Batch, TrainingAdversary
from veil.training.adversaries.base import shift_and_clip
from veil.training.config import SNAPSHOTS, TrainConfig
from veil.training.state import (
    build_obfuscator,
    flatten_optimizer,
    load_into,
    prefixed,
    save_models,
    take,
    unflatten_optimizer,
)

StepCallback = Callable[[int, int, int, dict], None]  # epoch, step, steps_per_epoch, losses
RUN_FILES = ["last.safetensors", "last.json", "obfuscator.safetensors", "obfuscator.json", "log.csv"]


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path
    history: list[dict]


def crop_offsets(n: int, h: int, w: int, size: int, generator: torch.Generator) -> list[tuple[int, int]]:
    """(x0, y0) of ``n`` random ``size`` crops of an h x w frame, drawn y then x per image."""
    ch, cw = min(size, h), min(size, w)
    out = []
    for _ in range(n):
        y0 = int(torch.randint(0, h - ch + 1, (1,), generator=generator))
        x0 = int(torch.randint(0, w - cw + 1, (1,), generator=generator))
        out.append((x0, y0))
    return out


def apply_crops(images: torch.Tensor, targets: list[Target], offsets: list[tuple[int, int]], size: int,
                min_visible: float = 0.4) -> tuple[torch.Tensor, list[Target]]:
    """Cut the crops at ``offsets`` (every frame of a clip alike); keep boxes with >= ``min_visible``
    of their area inside."""
    h, w = images.shape[-2:]
    ch, cw = min(size, h), min(size, w)
    crops, out_targets = [], []
    for img, t, (x0, y0) in zip(images, targets, offsets):
        crops.append(img[..., y0 : y0 + ch, x0 : x0 + cw])  # a frame (3, H, W) or a clip (T, 3, H, W)
        clipped, keep = shift_and_clip(t.boxes, x0, y0, cw, ch, min_visible)
        out_targets.append(Target(clipped[keep], t.labels[keep]))
    return torch.stack(crops), out_targets


def random_crop(
    images: torch.Tensor, targets: list[Target], size: int, generator: torch.Generator, min_visible: float = 0.4
) -> tuple[torch.Tensor, list[Target]]:
    """Same-size random crops at full scale; keep boxes with >= ``min_visible`` of their area inside."""
    offsets = crop_offsets(len(images), images.shape[2], images.shape[3], size, generator)
    return apply_crops(images, targets, offsets, size, min_visible)


def hflip(images: torch.Tensor, targets: list[Target], flip: torch.Tensor) -> tuple[torch.Tensor, list[Target]]:
    """Mirror the images (or clips) where ``flip`` is True, boxes with them."""
    w = images.shape[-1]
    images = torch.where(flip.view(-1, *[1] * (images.dim() - 1)), images.flip(-1), images)
    out = []
    for t, f in zip(targets, flip):
        b = t.boxes
        if f:
            b = torch.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], dim=1)
        out.append(Target(b, t.labels))
    return images, out


def join_process_group(device: str) -> tuple[int, int, str]:
    """Join torchrun's process group if this process was started by it: (rank, world size, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return dist.get_rank(), dist.get_world_size(), device


class Trainer:
    """Owns O, its optimizer, the training adversaries and the run folder of one training run."""

    def __init__(
        self, dataset_dir: str | Path, run_dir: str | Path, config: TrainConfig,
        device: str = "cpu", detector: FrozenDetector | None = None,
    ) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.rank, self.world_size, device = join_process_group(str(device))
        self.device = torch.device(device)
        self.train_set = FrameDataset(dataset_dir, "train")
        self.val_set = FrameDataset(dataset_dir, "val")
        if len(self.train_set) == 0:
            raise VeilError(f"dataset {dataset_dir} has no training frames")
        if not config.adversaries:
            raise VeilError("training needs at least one adversary (known: "
                            f"{', '.join(TRAINING_ADVERSARIES.names())})")
        self.detector = detector or build_detector(config)
        if not getattr(self.detector, "trainable", True):  # e.g. HOG: it can evaluate, it has no loss to train on
            raise VeilError(f"detector {config.detector!r} cannot train an obfuscator (it has no differentiable "
                            "loss); train against a trainable detector and evaluate with this one")
        self.detector.to(self.device)
        use_amp = config.amp == "on" or (config.amp == "auto" and self.device.type == "cuda")
        self.amp_dtype = torch.float16 if self.device.type == "cuda" else torch.bfloat16
        self.use_amp = use_amp
        torch.manual_seed(config.seed)
        self.obfuscator = build_obfuscator(config).to(self.device)
        context = AdversaryContext(config, self.device, self.train_set, self.obfuscator, self._autocast,
                                   use_amp, self.rank, self.world_size, self.run_dir)
        self.o_model = context.wrap(self.obfuscator)  # DDP wrapper under torchrun
        # built right after O from the same seeded stream, so a reconstruction run starts as before
        self.adversaries: list[tuple[TrainingAdversary, float]] = [
            (TRAINING_ADVERSARIES.build(name, context=context, options=config.adversary_options.get(name)), weight)
            for name, weight in config.adversaries.items()
        ]
        self.opt_o = context.optimizer(self.obfuscator.parameters())
        self.scaler_o = context.scaler()
        self.epoch = 0
        self.history: list[dict] = []
        self.val_ap_original: float | None = None
        self.epoch_frames: list[int] = []  # training frames this rank saw in the current epoch

    @property
    def deobfuscator(self) -> torch.nn.Module | None:
        """The reconstruction adversary's D, if this run trains one."""
        for adversary, _ in self.adversaries:
            if "deobfuscator" in adversary.networks():
                return adversary.networks()["deobfuscator"]
        return None

    # ----------------------------------------------------------------- schedule
    def lr_at(self, epoch: int) -> float:
        drop = int(self.config.epochs * self.config.lr_drop)
        return self.config.lr * (0.1 if epoch >= drop and self.config.epochs > 1 else 1.0)

    def steps_per_epoch(self) -> int:
        per_step = self.config.batch_size * self.world_size
        return self.config.steps_per_epoch or max(1, len(self.train_set) // per_step)

    def batches(self, epoch: int):
        """Deterministic batches of epoch ``epoch``: order, crops and flips derive from seed and epoch.

        Each step draws one global batch of batch_size x world_size frames; this rank takes its
        own slice of it, so the ranks see different frames and one process sees what it always did.
        For a temporal O, ``Batch.clips`` holds each frame's clip (the frame last) and
        ``Batch.images`` the frames: the detector, the adversaries and reconstruction use those.
        """
        gen = torch.Generator().manual_seed(self.config.seed * 1000003 + epoch)
        n, bs, steps = len(self.train_set), self.config.batch_size, self.steps_per_epoch()
        per_step = bs * self.world_size
        order = torch.cat([torch.randperm(n, generator=gen) for _ in range(-(-steps * per_step // n))])
        w, h = self.train_set.size
        length = clip_length(self.obfuscator)
        for step in range(steps):
            idx = order[step * per_step : (step + 1) * per_step]
            offsets = crop_offsets(len(idx), h, w, self.config.crop, gen) if self.config.crop else [(0, 0)] * len(idx)
            flips = torch.rand(len(idx), generator=gen) < 0.5
            mine = slice(self.rank * bs, (self.rank + 1) * bs)
            frames, offsets, flips = idx[mine].tolist(), offsets[mine], flips[mine]
            # a temporal O gets each frame's clip, cut and mirrored like the frame itself
            images, targets = (self.train_set.clips(frames, length) if length > 1
                               else self.train_set.batch(frames))
            if self.config.crop:
                images, targets = apply_crops(images, targets, offsets, self.config.crop)
            images, targets = hflip(images, targets, flips)
            if length > 1:
                yield Batch(images[:, -1], targets, frames, offsets, flips.tolist(), clips=images)
            else:
                yield Batch(images, targets, frames, offsets, flips.tolist())

    # --------------------------------------------------------------------- step
    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp)

    def train_step(self, batch: Batch) -> dict:
        x = (batch.images if batch.clips is None else batch.clips).to(self.device)
        with self._autocast():
            z = self.o_model(x)  # the one forward pass of O this step
        logs: dict[str, float] = {}
        for adversary, _ in self.adversaries:  # each adversary's own update, O untouched
            logs.update(adversary.update(batch, z.detach()))
        with self._autocast():
            loss_obj = self.detector.loss(z.float(), batch.targets)
        loss_o = self.config.a_obj * loss_obj  # the detector's loss always comes first
        for adversary, weight in self.adversaries:
            term, term_logs = adversary.o_term(batch, z)
            loss_o = loss_o + weight * term
            logs.update(term_logs)
        if has_regulariser(self.obfuscator):  # e.g. a lensless mask's priors, already weighted
            loss_reg = self.obfuscator.regulariser()
            loss_o = loss_o + loss_reg
            logs["loss_reg"] = loss_reg.item()
        self.opt_o.zero_grad(set_to_none=True)
        self.scaler_o.scale(loss_o).backward()
        self.scaler_o.step(self.opt_o)
        self.scaler_o.update()
        return {"loss_obj": loss_obj.item(), "loss_o": loss_o.item(), **logs}

    def validate(self) -> dict:
        if len(self.val_set) == 0:
            return {}
        self.obfuscator.eval()
        if self.val_ap_original is None:
            self.val_ap_original = detection_ap(self.detector, self.val_set, device=self.device)
        ap = detection_ap(self.detector, self.val_set, self.obfuscator, device=self.device)
        self.obfuscator.train()
        return {"val_ap_obfuscated": ap, "val_relative_ap": ap / self.val_ap_original if self.val_ap_original else 0.0}

    # --------------------------------------------------------------------- loop
    def fit(self, on_step: StepCallback | None = None) -> TrainResult:
        if self.rank == 0:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.obfuscator.train()
        for adversary, _ in self.adversaries:
            for net in adversary.networks().values():
                net.train()
        writer = _tensorboard(self.run_dir) if self.rank == 0 else None
        while self.epoch < self.config.epochs:
            epoch = self.epoch
            for opt in (self.opt_o, *(o for a, _ in self.adversaries for o in a.optimizers())):
                for group in opt.param_groups:
                    group["lr"] = self.lr_at(epoch)
            sums: dict[str, float] = {}
            counts: dict[str, int] = {}
            start, steps = time.time(), self.steps_per_epoch()
            self.epoch_frames = []
            for step, batch in enumerate(self.batches(epoch)):
                if isinstance(self.obfuscator, Obfuscator):  # annealing follows the step, so resume matches
                    self.obfuscator.set_progress((epoch * steps + step) / (self.config.epochs * steps))
                self.epoch_frames += batch.frames
                losses = self.train_step(batch)
                for k, v in losses.items():
                    sums[k], counts[k] = sums.get(k, 0.0) + v, counts.get(k, 0) + 1
                if on_step:
                    on_step(epoch, step + 1, steps, losses)
            row = {"epoch": epoch + 1, "lr": self.lr_at(epoch), **{k: v / counts[k] for k, v in sums.items()}}
            for adversary, _ in self.adversaries:
                row.update(adversary.end_epoch(epoch))
            row["seconds"] = round(time.time() - start, 2)
            last = epoch + 1 == self.config.epochs
            if self.rank == 0 and self.config.val_every and ((epoch + 1) % self.config.val_every == 0 or last):
                row.update(self.validate())
            self.history.append(row)
            self.epoch = epoch + 1
            self.save()
            if writer is not None:
                for k, v in row.items():
                    if k != "epoch" and isinstance(v, (int, float)):
                        writer.add_scalar(k, v, epoch + 1)
                writer.flush()
        if writer is not None:
            writer.close()
        return TrainResult(self.run_dir, self.run_dir / "obfuscator.safetensors", self.history)

    # -------------------------------------------------------------- checkpoints
    def save(self) -> None:
        """Rank 0 writes last (resumable) and obfuscator (deployable) checkpoints and the CSV log."""
        shards: list[list[int] | None] = [self.epoch_frames]
        if self.world_size > 1:
            shards = [None] * self.world_size  # all_gather_object puts each rank's list in its slot
            dist.all_gather_object(shards, self.epoch_frames)
        if self.rank == 0:
            tensors = prefixed("obfuscator", self.obfuscator)
            t_o, m_o = flatten_optimizer("opt_o", self.opt_o)
            tensors.update(t_o)
            adversaries, deployable = {}, {}
            for adversary, _ in self.adversaries:
                t, m = adversary.state()
                tensors.update(t)
                adversaries[adversary.name] = m
                deployable.update(adversary.deployable())
            meta = {
                "format": "veil-checkpoint", "kind": "resume", "veil_version": veil.__version__,
                "config": self.config.to_dict(), "epoch": self.epoch, "history": self.history,
                "val_ap_original": self.val_ap_original, "opt_o": m_o, "scaler_o": self.scaler_o.state_dict(),
                "adversaries": adversaries, "world_size": self.world_size, "epoch_frames": shards,
            }
            save_checkpoint(self.run_dir / "last.safetensors", tensors, meta)
            extra = {"epoch": self.epoch, "frame_size": list(self.train_set.size), "detector": self.detector.name,
                     "adversaries": self.config.adversaries}
            save_models(self.run_dir / "obfuscator.safetensors", self.config, self.obfuscator, None, extra,
                        tensors=deployable)
            if self.config.snapshot_every and self.epoch % self.config.snapshot_every == 0:
                (self.run_dir / SNAPSHOTS).mkdir(exist_ok=True)
                save_models(self.run_dir / SNAPSHOTS / f"epoch{self.epoch:03d}.safetensors", self.config,
                            self.obfuscator, None, extra, tensors=deployable)
            _write_csv(self.run_dir / "log.csv", self.history)
        if self.world_size > 1:
            dist.barrier()  # nobody runs ahead of a checkpoint that may be resumed from

    def resume(self) -> bool:
        """Load ``last`` from the run folder if present; returns whether it did."""
        path = self.run_dir / "last.safetensors"
        if self.run_dir.is_dir() and self.rank == 0:
            remove_stale_temporaries(self.run_dir, RUN_FILES)  # a kill mid-save leaves these
        if not path.is_file():
            return False
        tensors, meta = load_checkpoint(path)
        saved, changed = _changes(meta, path, self.config, self.world_size)
        if changed:
            raise VeilError(f"cannot resume {self.run_dir}: it was trained with other settings "
                            f"({'; '.join(changed)}); resume with the same ones, or train into another --out")
        self.config.epochs = max(self.config.epochs, saved.epochs) if saved.epochs else self.config.epochs
        load_into(self.obfuscator, take("obfuscator", tensors), "obfuscator", path)
        self.opt_o.load_state_dict(unflatten_optimizer("opt_o", tensors, meta["opt_o"]))
        if meta.get("scaler_o"):
            self.scaler_o.load_state_dict(meta["scaler_o"])
        # runs from before pluggable adversaries kept D's optimizer state at the top level
        states = meta.get("adversaries") or {"reconstruction": {"opt_d": meta["opt_d"],
                                                                "scaler_d": meta.get("scaler_d")}}
        for adversary, _ in self.adversaries:
            adversary.load_state(tensors, states[adversary.name], path)
        self.epoch = int(meta["epoch"])
        self.history = list(meta["history"])
        self.val_ap_original = meta.get("val_ap_original")
        return True

    def close(self) -> None:
        """Leave the process group this trainer joined (torchrun), if any.

        The DDP wrappers are dropped first, while the interpreter is fully alive: their reducers
        hold the process group and the last step's gloo work, and freeing those during
        interpreter shutdown aborted a rank now and then ("terminate called without an active
        exception", exit -6) after a finished run."""
        if self.world_size > 1 and dist.is_initialized():
            dist.barrier()  # every rank's last collective has finished
            self.o_model = self.obfuscator
            for adversary, _ in self.adversaries:
                adversary.unwrap()
            gc.collect()
            dist.destroy_process_group()


def _changes(meta: dict, path: Path, config: TrainConfig, world_size: int) -> tuple[TrainConfig, list[str]]:
    """The saved config of the checkpoint ``meta`` (read from ``path``), and what a resume from it would
    change: none may change."""
    if meta.get("kind") != "resume":
        raise VeilError(f"{path} is not a resumable training checkpoint")
    saved = TrainConfig.from_dict(meta["config"])
    changed = saved.differences(config)
    if meta.get("world_size", 1) != world_size:
        changed.append(f"processes {meta.get('world_size', 1)} -> {world_size}")
    return saved, changed


def changed_settings(run_dir: Path, config: TrainConfig, world_size: int = 1) -> list[str]:
    """The settings ``config`` would change in the run in ``run_dir`` (empty: no run there, or the same
    settings), read from its resume checkpoint's JSON before any trainer touches the folder."""
    path = run_dir / "last.safetensors"
    if not path.is_file() or not path.with_suffix(".json").is_file():
        return []
    return _changes(read_json(path.with_suffix(".json")), path, config, world_size)[1]


def has_regulariser(obfuscator: torch.nn.Module) -> TypeGuard[Obfuscator]:
    """Whether ``obfuscator`` adds a term of its own to L_O (it overrides ``Obfuscator.regulariser``)."""
    return isinstance(obfuscator, Obfuscator) and type(obfuscator).regulariser is not Obfuscator.regulariser


def build_detector(config: TrainConfig) -> FrozenDetector:
    kwargs: dict = {}
    if config.detector_weights:
        kwargs["weights"] = config.detector_weights
    if config.detector_person_classes is not None:
        kwargs["person_classes"] = config.detector_person_classes
    return DETECTORS.build(config.detector, **kwargs)


def _write_csv(path: Path, rows: list[dict]) -> None:
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is an optional extra; the CSV log always exists
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))
