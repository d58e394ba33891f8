"""``veil train``: the adversarial obfuscator of de-coninck-2024.

Each step alternates two updates on the same batch:
  1. deobfuscator D:  L_rec = MSE(X, D(O(X)))                 (O frozen)
  2. obfuscator O:    L_O = a_obj * L_obj - a_rec * L_rec      (D frozen)
where L_obj is the frozen detector's own loss on O(X) against the pseudo-labels.
A checkpoint is written after every epoch; ``resume=True`` continues from the last one and
ends with the same weights as an uninterrupted run (data order is a function of seed+epoch).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

import veil
from veil.data.dataset import FrameDataset
from veil.detectors import DETECTORS, FrozenDetector, Target
from veil.errors import VeilError
from veil.evaluation.utility import detection_ap
from veil.io import atomic_path, load_checkpoint, remove_stale_temporaries, save_checkpoint
from veil.training.config import TrainConfig
from veil.training.state import (
    build_models,
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


def random_crop(
    images: torch.Tensor, targets: list[Target], size: int, generator: torch.Generator, min_visible: float = 0.4
) -> tuple[torch.Tensor, list[Target]]:
    """Same-size random crops at full scale; keep boxes with >= ``min_visible`` of their area inside."""
    _, _, h, w = images.shape
    ch, cw = min(size, h), min(size, w)
    crops, out_targets = [], []
    for img, t in zip(images, targets):
        y0 = int(torch.randint(0, h - ch + 1, (1,), generator=generator))
        x0 = int(torch.randint(0, w - cw + 1, (1,), generator=generator))
        crops.append(img[:, y0 : y0 + ch, x0 : x0 + cw])
        b = t.boxes - torch.tensor([x0, y0, x0, y0], dtype=t.boxes.dtype)
        clipped = torch.stack(
            [b[:, 0].clamp(0, cw), b[:, 1].clamp(0, ch), b[:, 2].clamp(0, cw), b[:, 3].clamp(0, ch)], dim=1
        )
        area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        inside = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
        wide_enough = (clipped[:, 2] - clipped[:, 0] >= 2) & (clipped[:, 3] - clipped[:, 1] >= 2)
        keep = (inside >= min_visible * area) & wide_enough
        out_targets.append(Target(clipped[keep], t.labels[keep]))
    return torch.stack(crops), out_targets


def hflip(images: torch.Tensor, targets: list[Target], flip: torch.Tensor) -> tuple[torch.Tensor, list[Target]]:
    """Mirror the images where ``flip`` is True, boxes with them."""
    w = images.shape[-1]
    images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
    out = []
    for t, f in zip(targets, flip):
        b = t.boxes
        if f:
            b = torch.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], dim=1)
        out.append(Target(b, t.labels))
    return images, out


class Trainer:
    """Owns the models, optimizers and the run folder of one training run."""

    def __init__(
        self, dataset_dir: str | Path, run_dir: str | Path, config: TrainConfig,
        device: str = "cpu", detector: FrozenDetector | None = None,
    ) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.device = torch.device(device)
        self.train_set = FrameDataset(dataset_dir, "train")
        self.val_set = FrameDataset(dataset_dir, "val")
        if len(self.train_set) == 0:
            raise VeilError(f"dataset {dataset_dir} has no training frames")
        self.detector = detector or DETECTORS.build(
            config.detector, **({"weights": config.detector_weights} if config.detector_weights else {})
        )
        self.detector.to(self.device)
        torch.manual_seed(config.seed)
        self.obfuscator, self.deobfuscator = build_models(config)
        self.obfuscator.to(self.device)
        self.deobfuscator.to(self.device)
        self.opt_o = torch.optim.AdamW(self.obfuscator.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.opt_d = torch.optim.AdamW(self.deobfuscator.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        use_amp = config.amp == "on" or (config.amp == "auto" and self.device.type == "cuda")
        self.amp_dtype = torch.float16 if self.device.type == "cuda" else torch.bfloat16
        self.use_amp = use_amp
        self.scaler_o = torch.amp.GradScaler(self.device.type, enabled=use_amp and self.device.type == "cuda")
        self.scaler_d = torch.amp.GradScaler(self.device.type, enabled=use_amp and self.device.type == "cuda")
        self.epoch = 0
        self.history: list[dict] = []
        self.val_ap_original: float | None = None

    # ----------------------------------------------------------------- schedule
    def lr_at(self, epoch: int) -> float:
        return self.config.lr * (0.1 if epoch >= self.config.epochs // 2 and self.config.epochs > 1 else 1.0)

    def steps_per_epoch(self) -> int:
        return self.config.steps_per_epoch or max(1, len(self.train_set) // self.config.batch_size)

    def batches(self, epoch: int):
        """Deterministic batches of epoch ``epoch``: order, crops and flips derive from seed and epoch."""
        gen = torch.Generator().manual_seed(self.config.seed * 1000003 + epoch)
        n, bs = len(self.train_set), self.config.batch_size
        order = torch.cat([torch.randperm(n, generator=gen) for _ in range(-(-self.steps_per_epoch() * bs // n))])
        for step in range(self.steps_per_epoch()):
            idx = order[step * bs : (step + 1) * bs].tolist()
            images, targets = self.train_set.batch(idx)
            if self.config.crop:
                images, targets = random_crop(images, targets, self.config.crop, gen)
            images, targets = hflip(images, targets, torch.rand(len(idx), generator=gen) < 0.5)
            yield images, targets

    # --------------------------------------------------------------------- step
    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp)

    def train_step(self, images: torch.Tensor, targets: list[Target]) -> dict:
        cfg = self.config
        x = images.to(self.device)
        # 1. deobfuscator: learn to invert the current obfuscator
        self.deobfuscator.requires_grad_(True)
        with torch.no_grad(), self._autocast():
            z = self.obfuscator(x)
        with self._autocast():
            loss_d = F.mse_loss(self.deobfuscator(z).float(), x)
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler_d.scale(loss_d).backward()
        self.scaler_d.step(self.opt_d)
        self.scaler_d.update()
        # 2. obfuscator: keep the detector working, make reconstruction fail
        self.deobfuscator.requires_grad_(False)
        with self._autocast():
            z = self.obfuscator(x)
            loss_obj = self.detector.loss(z.float(), targets)
            loss_rec = F.mse_loss(self.deobfuscator(z).float(), x)
            loss_o = cfg.a_obj * loss_obj - cfg.a_rec * loss_rec
        self.opt_o.zero_grad(set_to_none=True)
        self.scaler_o.scale(loss_o).backward()
        self.scaler_o.step(self.opt_o)
        self.scaler_o.update()
        return {"loss_obj": loss_obj.item(), "loss_rec": loss_rec.item(), "loss_o": loss_o.item(),
                "loss_d": loss_d.item()}

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
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.obfuscator.train()
        self.deobfuscator.train()
        writer = _tensorboard(self.run_dir)
        while self.epoch < self.config.epochs:
            epoch = self.epoch
            for group in (*self.opt_o.param_groups, *self.opt_d.param_groups):
                group["lr"] = self.lr_at(epoch)
            start, sums, steps = time.time(), {}, self.steps_per_epoch()
            for step, (images, targets) in enumerate(self.batches(epoch)):
                losses = self.train_step(images, targets)
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + v
                if on_step:
                    on_step(epoch, step + 1, steps, losses)
            row = {"epoch": epoch + 1, "lr": self.lr_at(epoch), **{k: v / steps for k, v in sums.items()},
                   "seconds": round(time.time() - start, 2)}
            if self.config.val_every and ((epoch + 1) % self.config.val_every == 0 or epoch + 1 == self.config.epochs):
                row.update(self.validate())
            self.history.append(row)
            self.epoch = epoch + 1
            self.save()
            if writer is not None:
                for k, v in row.items():
                    if k != "epoch":
                        writer.add_scalar(k, v, epoch + 1)
                writer.flush()
        if writer is not None:
            writer.close()
        return TrainResult(self.run_dir, self.run_dir / "obfuscator.safetensors", self.history)

    # -------------------------------------------------------------- checkpoints
    def save(self) -> None:
        """Write last (resumable) and obfuscator (deployable) checkpoints and the CSV log."""
        tensors = {**prefixed("obfuscator", self.obfuscator), **prefixed("deobfuscator", self.deobfuscator)}
        t_o, m_o = flatten_optimizer("opt_o", self.opt_o)
        t_d, m_d = flatten_optimizer("opt_d", self.opt_d)
        tensors.update(t_o)
        tensors.update(t_d)
        meta = {
            "format": "veil-checkpoint", "kind": "resume", "veil_version": veil.__version__,
            "config": self.config.to_dict(), "epoch": self.epoch, "history": self.history,
            "val_ap_original": self.val_ap_original, "opt_o": m_o, "opt_d": m_d,
            "scaler_o": self.scaler_o.state_dict(), "scaler_d": self.scaler_d.state_dict(),
        }
        save_checkpoint(self.run_dir / "last.safetensors", tensors, meta)
        size = list(self.train_set.size)
        save_models(self.run_dir / "obfuscator.safetensors", self.config, self.obfuscator, self.deobfuscator,
                    {"epoch": self.epoch, "frame_size": size, "detector": self.detector.name})
        _write_csv(self.run_dir / "log.csv", self.history)

    def resume(self) -> bool:
        """Load ``last`` from the run folder if present; returns whether it did."""
        path = self.run_dir / "last.safetensors"
        if self.run_dir.is_dir():
            remove_stale_temporaries(self.run_dir, RUN_FILES)  # a kill mid-save leaves these
        if not path.is_file():
            return False
        tensors, meta = load_checkpoint(path)
        if meta.get("kind") != "resume":
            raise VeilError(f"{path} is not a resumable training checkpoint")
        saved = TrainConfig.from_dict(meta["config"])
        if saved.obfuscator != self.config.obfuscator or saved.deobfuscator != self.config.deobfuscator:
            raise VeilError(f"{path} was trained with other architectures ({saved.obfuscator}/{saved.deobfuscator})")
        self.config.epochs = max(self.config.epochs, saved.epochs) if saved.epochs else self.config.epochs
        load_into(self.obfuscator, take("obfuscator", tensors), "obfuscator", path)
        load_into(self.deobfuscator, take("deobfuscator", tensors), "deobfuscator", path)
        self.opt_o.load_state_dict(unflatten_optimizer("opt_o", tensors, meta["opt_o"]))
        self.opt_d.load_state_dict(unflatten_optimizer("opt_d", tensors, meta["opt_d"]))
        if meta.get("scaler_o"):
            self.scaler_o.load_state_dict(meta["scaler_o"])
            self.scaler_d.load_state_dict(meta["scaler_d"])
        self.epoch = int(meta["epoch"])
        self.history = list(meta["history"])
        self.val_ap_original = meta.get("val_ap_original")
        return True


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
