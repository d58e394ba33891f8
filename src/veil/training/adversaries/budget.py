"""wu-2018's budget adversary: an ensemble of M identity classifiers, restarted from scratch.

Sensitive labels without hand labelling: ByteTrack tracks over the TRAIN split are the
pseudo-identities (``veil.data.identities``; or a user CSV). Each track's earliest crops
train the budget models, its latest crops are held back to measure them.

* Crops are cut from O(X) at the identity boxes with ``torchvision.ops.roi_align``, which is
  differentiable, so O's term reaches O. Boxes follow the trainer's random crop and flip.
* Each budget model f_b^i minimises cross-entropy on obfuscated crops (O fixed).
* O's term is max_i mean_crops sum_c p_ic log p_ic: the negative entropy of the most
  confident model (wu-2018 eq. 3); minimising it makes every model uncertain.
* Restarting (wu-2018 3.3): every ``restart_every`` steps (round robin over the ensemble), or
  when a model's cross-entropy has stopped falling over ``plateau_steps`` steps, that model
  is re-initialised from random weights and trained with O frozen until its held-back
  accuracy passes ``accuracy_threshold`` or stops rising; adversarial updates then resume.
  Every model gets this frozen-O training once at the start (wu-2018 4.1.2), after an optional
  warm-up in which O learns to feed the detector alone: budget models fitted to a random
  O's near-constant output start weak and stay weak.
"""

from __future__ import annotations

import csv
import zlib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import MNASNet, MobileNetV2, ShuffleNetV2
from torchvision.ops import roi_align

from veil.data.dataset import obfuscator_inputs
from veil.errors import VeilError
from veil.obfuscators.base import clip_length
from veil.training.adversaries.base import AdversaryContext, Batch, TrainingAdversary, frozen
from veil.training.adversaries.registry import TRAINING_ADVERSARIES
from veil.training.state import flatten_optimizer, load_into, prefixed, take, unflatten_optimizer


def _shufflenet(num_classes: int, width: float) -> nn.Module:
    # ShuffleNetV2 x1.0 stage widths scaled; groups need even channel counts
    stages = [24] + [max(8, 2 * round(c * width / 2)) for c in (116, 232, 464)] + [max(64, round(1024 * width))]
    return ShuffleNetV2([4, 8, 4], stages, num_classes=num_classes)


class ColourStripes(nn.Module):
    """Clothing colour by body height: mean and spread of each channel in horizontal stripes,
    then an MLP. Small CNNs learn shape first; this budget model makes the ensemble cover the
    colour cue that re-identification relies on most, differentiably."""

    def __init__(self, num_classes: int, width: float, stripes: int = 8) -> None:
        super().__init__()
        hidden = max(32, round(256 * width))
        self.stripes = stripes
        self.head = nn.Sequential(nn.BatchNorm1d(6 * stripes), nn.Linear(6 * stripes, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = F.adaptive_avg_pool2d(x, (self.stripes, 1)).flatten(2)  # (N, 3, stripes)
        spread = (F.adaptive_avg_pool2d(x * x, (self.stripes, 1)).flatten(2) - mean**2).clamp_min(1e-6).sqrt()
        return self.head(torch.cat([mean, spread], 1).flatten(1))


#: budget architectures, none of them one of the audit's unseen attackers (wu-2018 3.4)
ARCHITECTURES = {
    "mobilenet_v2": lambda k, w: MobileNetV2(num_classes=k, width_mult=w, dropout=0.0),
    "shufflenet_v2": _shufflenet,
    "mnasnet": lambda k, w: MNASNet(w, num_classes=k, dropout=0.0),
    "colour_stripes": ColourStripes,
}


@dataclass
class BudgetOptions:
    models: int = 3  # M
    architectures: tuple[str, ...] = ("mobilenet_v2", "shufflenet_v2", "mnasnet")  # cycled over the M models
    width: float = 0.5  # model i has width * (1 + 0.5 * (i // len(architectures)))
    crop_height: int = 96
    crop_width: int = 48
    warmup_steps: int = 0  # O trains without this adversary first, so the budget models start on a readable O(X)
    restart_every: int = 100  # steps between restarts (round robin); 0: never
    plateau_steps: int = 0  # restart a model whose mean CE over this many steps stopped falling; 0: off
    plateau_tolerance: float = 0.01  # "stopped falling": by less than this fraction
    accuracy_threshold: float = 0.7  # frozen-O training stops at this held-back accuracy...
    patience: int = 2  # ...or after this many passes without a rise...
    max_passes: int = 20  # ...or after this many passes over the crops
    restart_batch: int = 32  # crops per step of frozen-O training (per process)
    min_track: int = 8  # shorter ByteTrack tracks are not identities
    train_fraction: float = 0.6  # earliest share of each track trains the models; the rest is held back
    min_visible: float = 0.6  # a crop counts only if this share of its box is inside the random crop
    identities_csv: str | None = None  # frame,x1,y1,x2,y2,identity rows instead of ByteTrack
    heldout_every: int = 1  # epochs between held-back accuracy measurements for the log; 0: never

    @classmethod
    def from_dict(cls, data: dict | None) -> BudgetOptions:
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise VeilError(f"unknown budget option(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        if "architectures" in data:
            archs = data["architectures"]
            data["architectures"] = tuple(archs.split(",") if isinstance(archs, str) else archs)
            bad = [a for a in data["architectures"] if a not in ARCHITECTURES]
            if bad:
                raise VeilError(f"unknown budget architecture(s) {bad} (known: {', '.join(ARCHITECTURES)})")
        options = cls(**data)
        if options.models < 1:
            raise VeilError("budget.models must be at least 1")
        return options


@dataclass
class IdentityLabels:
    """Pseudo-identity boxes per training frame: boxes (n, 4), identity (n,), train (n,) bool."""

    boxes: list[torch.Tensor]
    identity: list[torch.Tensor]
    train: list[torch.Tensor]
    num_classes: int


def identity_labels(train_set, options: BudgetOptions) -> IdentityLabels:
    """Pseudo-identities of the TRAIN split (ByteTrack, or the user's CSV), split by time."""
    from veil.data.crops import CropSet
    from veil.data.identities import build_identities, split_by_time

    if options.identities_csv:
        crops = split_by_time(_read_identity_csv(options.identities_csv, train_set, CropSet), options.train_fraction)
        crops = crops.subset(crops.split != "")
        _, crops.identity = np.unique(crops.identity, return_inverse=True)
    else:
        crops = build_identities(train_set, min_track=options.min_track, train_fraction=options.train_fraction)
    n = len(train_set)
    boxes = [torch.zeros(0, 4) for _ in range(n)]
    ident = [torch.zeros(0, dtype=torch.long) for _ in range(n)]
    train = [torch.zeros(0, dtype=torch.bool) for _ in range(n)]
    for f in np.unique(crops.frame):
        sel = crops.frame == f
        boxes[f] = torch.as_tensor(crops.box[sel], dtype=torch.float32).reshape(-1, 4)
        ident[f] = torch.as_tensor(crops.identity[sel], dtype=torch.long)
        train[f] = torch.as_tensor(crops.split[sel] == "train")
    num_classes = int(crops.identity.max()) + 1 if len(crops) else 0
    if num_classes < 2:
        raise VeilError("the budget adversary needs at least 2 pseudo-identities in the training split")
    return IdentityLabels(boxes, ident, train, num_classes)


def _read_identity_csv(path: str, train_set, crop_set_type):
    position = {name: i for i, name in enumerate(train_set.names)}
    times = {f["name"]: float(f["time"]) for f in train_set.manifest["frames"]}
    rows = []
    try:
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                if row["frame"] in position:  # rows of other splits are ignored
                    rows.append((position[row["frame"]], [float(row[k]) for k in ("x1", "y1", "x2", "y2")],
                                 row["identity"], times.get(row["frame"], 0.0)))
    except (OSError, KeyError, ValueError) as exc:
        raise VeilError(f"cannot read identities CSV {path} (frame,x1,y1,x2,y2,identity): {exc}") from None
    if not rows:
        raise VeilError(f"identities CSV {path} has no row for a training frame")
    _, ident = np.unique([r[2] for r in rows], return_inverse=True)
    return crop_set_type(np.asarray([r[0] for r in rows]), np.asarray([r[1] for r in rows], np.float32), ident,
                         np.full(len(rows), "", dtype="<U5"), np.asarray([r[3] for r in rows]))


def negative_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean over rows of sum_c p_c log p_c (0 for a one-hot prediction, -log C for uniform)."""
    logp = F.log_softmax(logits.float(), dim=1)
    return (logp.exp() * logp).sum(1).mean()


def ensemble_budget_loss(logits: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """wu-2018 eq. 3: the max over the ensemble of each model's negative entropy, and all of them."""
    each = torch.stack([negative_entropy(lg) for lg in logits])
    return each.max(), each


def cut(images: torch.Tensor, boxes: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
    """Differentiable crops of ``images`` at per-image xyxy ``boxes``, each resized to (h, w)."""
    rois = torch.cat([torch.cat([torch.full((len(b), 1), float(i)), b.float()], 1) for i, b in enumerate(boxes)])
    return roi_align(images.float(), rois.to(images.device), output_size=size, spatial_scale=1.0,
                     sampling_ratio=2, aligned=True)


@TRAINING_ADVERSARIES.register("budget")
class BudgetAdversary(TrainingAdversary):
    name = "budget"

    def __init__(self, context: AdversaryContext, options: dict | None = None) -> None:
        super().__init__(context, options)
        self.options = BudgetOptions.from_dict(options)
        self.labels = identity_labels(context.train_set, self.options)
        m = self.options.models
        self.restarts = [0] * m  # restarts per model (0: still its first initialisation)
        self.models = [self._fresh(i) for i in range(m)]
        self.wrapped = [context.wrap(model) for model in self.models]
        self.opts = [context.optimizer(model.parameters()) for model in self.models]
        self.scaler = context.scaler()
        self.step = 0  # steps taken, warm-up included
        self.ce_history: list[list[float]] = [[] for _ in range(m)]  # since each model's last restart
        self.events: list[dict] = []  # restarts of the current epoch, for the log
        self.last_heldout: list[float | None] = [None] * m

    # ------------------------------------------------------------------ models
    @property
    def crop_size(self) -> tuple[int, int]:
        return self.options.crop_height, self.options.crop_width

    def architecture(self, i: int) -> tuple[str, float]:
        archs = self.options.architectures
        return archs[i % len(archs)], self.options.width * (1 + 0.5 * (i // len(archs)))

    def _seed(self, i: int) -> int:
        return zlib.crc32(f"budget:{self.ctx.config.seed}:{i}:{self.restarts[i]}".encode())

    def _fresh(self, i: int) -> nn.Module:
        """Model ``i`` with random weights drawn from its own seed (the same on every rank)."""
        arch, width = self.architecture(i)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self._seed(i))
            model = ARCHITECTURES[arch](self.labels.num_classes, width)
        return model.to(self.ctx.device)

    def reinitialise(self, i: int) -> None:
        """Replace model ``i``'s weights with new random ones (in place, so DDP keeps its hooks)
        and forget its optimizer state."""
        self.restarts[i] += 1
        fresh = self._fresh(i)
        with torch.no_grad():
            for mine, new in zip(self.models[i].state_dict().values(), fresh.state_dict().values()):
                mine.copy_(new)
        self.opts[i].state.clear()
        self.ce_history[i] = []

    def networks(self) -> dict[str, nn.Module]:
        return {f"budget{i}": model for i, model in enumerate(self.models)}

    def unwrap(self) -> None:
        self.wrapped = list(self.models)

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return self.opts

    # ------------------------------------------------------------------- crops
    def batch_crops(self, batch: Batch, z: torch.Tensor, only_train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Crops of ``z`` at the identity boxes visible in ``batch`` and their identities."""
        boxes, labels = [], []
        for i, f in enumerate(batch.frames):
            b, keep = batch.to_crop_coordinates(i, self.labels.boxes[f], self.options.min_visible, min_side=8)
            if only_train:
                keep = keep & self.labels.train[f]
            boxes.append(b[keep])
            labels.append(self.labels.identity[f][keep])
        y = torch.cat(labels).to(z.device)
        if len(y) == 0:
            return z.new_zeros(0, 3, *self.crop_size), y
        return cut(z, boxes, self.crop_size), y

    @torch.no_grad()
    def obfuscated_crops(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """All identity crops of the training split cut from the current O(X) (O in eval mode,
        unchanged): ``{"train": (crops, labels), "heldout": (crops, labels)}``."""
        out = {"train": ([], []), "heldout": ([], [])}
        frames = [f for f, b in enumerate(self.labels.boxes) if len(b)]
        with frozen(self.ctx.obfuscator):
            for start in range(0, len(frames), 4):
                chunk = frames[start : start + 4]
                x = obfuscator_inputs(self.ctx.train_set, chunk, clip_length(self.ctx.obfuscator))[0]
                x = x.to(self.ctx.device)
                with self.ctx.autocast():
                    z = self.ctx.obfuscator(x).float()
                crops = cut(z, [self.labels.boxes[f] for f in chunk], self.crop_size)
                ident = torch.cat([self.labels.identity[f] for f in chunk]).to(z.device)
                is_train = torch.cat([self.labels.train[f] for f in chunk]).to(z.device)
                for key, mask in (("train", is_train), ("heldout", ~is_train)):
                    out[key][0].append(crops[mask])
                    out[key][1].append(ident[mask])
        return {k: (torch.cat(c), torch.cat(y)) for k, (c, y) in out.items()}

    @torch.no_grad()
    def accuracy(self, i: int, crops: torch.Tensor, labels: torch.Tensor) -> float:
        if len(labels) == 0:
            return 0.0
        with frozen(self.models[i]):
            pred = torch.cat([self.models[i](crops[s : s + 256]).argmax(1) for s in range(0, len(crops), 256)])
        return float((pred == labels).float().mean())

    # ------------------------------------------------------------------ update
    def _ce_step(self, indices: list[int], crops: torch.Tensor, labels: torch.Tensor) -> list[float]:
        """One cross-entropy step of the models ``indices`` on the crops (O fixed); returns their CE.
        A rank without crops still takes part (with weight 0) so DDP's collectives line up."""
        weight = 1.0 if len(labels) else 0.0
        # BatchNorm cannot normalise a batch of fewer than two samples: batch statistics of one
        # crop (or of one crop twice) have zero variance, and its backward pass turned the
        # weights into NaN. Such a step uses the running statistics instead.
        batch_stats = len(labels) >= 2
        if len(labels) == 0:
            crops = crops.new_zeros(1, 3, *self.crop_size)
            labels = torch.zeros(1, dtype=torch.long, device=crops.device)
        losses = []
        for i in indices:
            self.models[i].train(batch_stats)
            with self.ctx.autocast():
                losses.append(F.cross_entropy(self.wrapped[i](crops).float(), labels) * weight)
        for i in indices:
            self.opts[i].zero_grad(set_to_none=True)
        self.scaler.scale(torch.stack(losses).sum()).backward()
        for i in indices:
            self.scaler.step(self.opts[i])
        self.scaler.update()
        return [loss.item() for loss in losses]

    @property
    def active(self) -> bool:
        """Whether the warm-up is over (the adversarial updates of this step count)."""
        return self.step >= self.options.warmup_steps

    def update(self, batch: Batch, z: torch.Tensor) -> dict[str, float]:
        if not self.active:
            self.step += 1
            return {}
        if self.step == self.options.warmup_steps and not any(self.restarts):
            data = self.obfuscated_crops()  # O does not change during these, so cut once
            for i in range(len(self.models)):  # wu-2018 4.1.2: start from strong budget models
                self.fit_frozen(i, "init", reinitialise=False, data=data)
        crops, labels = self.batch_crops(batch, z, only_train=True)
        n, m = float(len(labels)), len(self.models)
        log: dict[str, float] = {}
        if self.ctx.mean_over_ranks([n])[0] > 0:  # every rank skips together, or none does
            hits = [self.accuracy(i, crops, labels) * n for i in range(m)]  # before this step
            ce = [c * n for c in self._ce_step(list(range(m)), crops, labels)]
            total, *sums = self.ctx.mean_over_ranks([n, *ce, *hits])  # crop-weighted over ranks
            for i in range(m):
                self.ce_history[i].append(sums[i] / total)
                log[f"budget{i}_ce"] = sums[i] / total
                log[f"budget{i}_acc"] = sums[m + i] / total
        self.step += 1
        self._maybe_restart()
        return log

    def _maybe_restart(self) -> None:
        o = self.options
        done = self.step - o.warmup_steps  # adversarial steps so far
        if o.restart_every and done % o.restart_every == 0:
            self.fit_frozen((done // o.restart_every - 1) % len(self.models), "every")
            return
        if o.plateau_steps:
            for i, hist in enumerate(self.ce_history):
                if len(hist) >= 2 * o.plateau_steps:
                    before = float(np.mean(hist[-2 * o.plateau_steps : -o.plateau_steps]))
                    now = float(np.mean(hist[-o.plateau_steps :]))
                    if now > before * (1 - o.plateau_tolerance):
                        self.fit_frozen(i, "plateau")
                        return

    def fit_frozen(self, i: int, reason: str, reinitialise: bool = True,
                   data: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None) -> dict:
        """Restart model ``i``: new random weights, then cross-entropy with O frozen until its
        held-back accuracy passes the threshold or stops rising. O does not change here."""
        o = self.options
        if reinitialise:
            self.reinitialise(i)
        data = data or self.obfuscated_crops()
        crops, labels = data["train"]
        gen = torch.Generator().manual_seed(self._seed(i))
        best, stale, acc, passes = -1.0, 0, 0.0, 0
        per_step = o.restart_batch * self.ctx.world_size
        while passes < o.max_passes:
            passes += 1
            order = torch.randperm(len(labels), generator=gen)
            for start in range(0, len(order), per_step):
                mine = order[start : start + per_step][self.ctx.rank :: self.ctx.world_size].to(labels.device)
                self._ce_step([i], crops[mine], labels[mine])
            acc = self.accuracy(i, *data["heldout"])
            if acc >= o.accuracy_threshold:
                break
            best, stale = (acc, 0) if acc > best else (best, stale + 1)
            if stale >= o.patience:
                break
        self.ce_history[i] = []
        self.last_heldout[i] = acc
        event = {"step": self.step, "model": i, "reason": reason, "passes": passes, "heldout_acc": round(acc, 4)}
        self.events.append(event)
        return event

    def o_term(self, batch: Batch, z: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        crops, _ = self.batch_crops(batch, z, only_train=False)
        if self.step <= self.options.warmup_steps or len(crops) == 0:  # update() has counted this step
            return z.sum() * 0.0, {}
        logits = []
        for model in self.models:
            with frozen(model), self.ctx.autocast():
                logits.append(model(crops).float())
        term, each = ensemble_budget_loss(logits)
        log = {"loss_budget": term.item(), **{f"budget{i}_negent": v.item() for i, v in enumerate(each)}}
        return term, log

    # ---------------------------------------------------------------- logging
    def end_epoch(self, epoch: int) -> dict:
        row: dict = {}
        if self.options.heldout_every and (epoch + 1) % self.options.heldout_every == 0:
            data = self.obfuscated_crops()["heldout"]
            for i in range(len(self.models)):
                row[f"budget{i}_heldout_acc"] = round(self.accuracy(i, *data), 4)
        row["budget_restarts"] = ";".join(
            f"step {e['step']} model {e['model']} {e['reason']} {e['passes']} passes acc {e['heldout_acc']}"
            for e in self.events)
        self.events = []
        return row

    # ------------------------------------------------------------ checkpoints
    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        tensors: dict[str, torch.Tensor] = {}
        opts = []
        for i, (model, opt) in enumerate(zip(self.models, self.opts)):
            tensors.update(prefixed(f"budget.model{i}", model))
            t, m = flatten_optimizer(f"budget.opt{i}", opt)
            tensors.update(t)
            opts.append(m)
        meta = {"options": asdict(self.options), "num_classes": self.labels.num_classes, "step": self.step,
                "restarts": self.restarts, "ce_history": self.ce_history, "last_heldout": self.last_heldout,
                "events": self.events, "opts": opts, "scaler": self.scaler.state_dict()}
        return tensors, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict, path: Path) -> None:
        if meta["num_classes"] != self.labels.num_classes:
            raise VeilError(f"{path} has {meta['num_classes']} budget identities, this dataset gives "
                            f"{self.labels.num_classes}")
        for i, model in enumerate(self.models):
            load_into(model, take(f"budget.model{i}", tensors), f"budget model {i}", path)
            self.opts[i].load_state_dict(unflatten_optimizer(f"budget.opt{i}", tensors, meta["opts"][i]))
        self.step, self.restarts = int(meta["step"]), list(meta["restarts"])
        self.ce_history = [list(h) for h in meta["ce_history"]]
        self.last_heldout, self.events = list(meta["last_heldout"]), list(meta["events"])
        if meta.get("scaler"):
            self.scaler.load_state_dict(meta["scaler"])
