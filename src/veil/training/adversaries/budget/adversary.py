"""The budget adversary itself (wu-2018): the ensemble of M budget models, their cross-entropy
updates on O(X), O's term, restarts and checkpoints.

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

import zlib
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from veil.data.dataset import obfuscator_inputs
from veil.errors import VeilError
from veil.obfuscators.base import clip_length
from veil.training.adversaries.base import AdversaryContext, Batch, TrainingAdversary, frozen
from veil.training.adversaries.budget.labels import identity_labels
from veil.training.adversaries.budget.loss import cut, ensemble_budget_loss
from veil.training.adversaries.budget.models import ARCHITECTURES
from veil.training.adversaries.budget.options import BudgetOptions
from veil.training.adversaries.registry import TRAINING_ADVERSARIES
from veil.training.state import flatten_optimizer, load_into, prefixed, take, unflatten_optimizer


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
        out: dict[str, tuple[list[torch.Tensor], list[torch.Tensor]]] = {"train": ([], []), "heldout": ([], [])}
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
