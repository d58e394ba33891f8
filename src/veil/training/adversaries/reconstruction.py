"""de-coninck-2024's reconstruction adversary: a deobfuscator D learns to invert O.

    D minimises  L_rec = MSE(X, D(O(X)))
    O's term     -L_rec   (weight a_rec: O maximises the reconstruction error)

Its checkpoint keys are the ones runs used before adversaries were pluggable
(``deobfuscator.*``, ``opt_d.*``, ``scaler_d``), so old runs load and resume.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from veil.adversaries import DEOBFUSCATORS
from veil.errors import VeilError
from veil.training.adversaries.base import AdversaryContext, Batch, TrainingAdversary, frozen
from veil.training.adversaries.registry import TRAINING_ADVERSARIES
from veil.training.state import flatten_optimizer, load_into, prefixed, take, unflatten_optimizer


@TRAINING_ADVERSARIES.register("reconstruction")
class ReconstructionAdversary(TrainingAdversary):
    name = "reconstruction"

    def __init__(self, context: AdversaryContext, options: dict | None = None) -> None:
        super().__init__(context, options)
        if options:  # D's architecture and width come from the training config, not from options
            raise VeilError(f"the reconstruction adversary takes no options (got {', '.join(sorted(options))}); "
                            "D is the training config's deobfuscator and deobfuscator_width")
        cfg = context.config
        self.deobfuscator = DEOBFUSCATORS.build(cfg.deobfuscator, width=cfg.deobfuscator_width).to(context.device)
        self.wrapped = context.wrap(self.deobfuscator)
        self.opt = context.optimizer(self.deobfuscator.parameters())
        self.scaler = context.scaler()

    def networks(self) -> dict[str, nn.Module]:
        return {"deobfuscator": self.deobfuscator}

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.opt]

    def update(self, batch: Batch, z: torch.Tensor) -> dict[str, float]:
        x = batch.images.to(z.device)
        self.deobfuscator.train()
        with self.ctx.autocast():
            loss_d = F.mse_loss(self.wrapped(z).float(), x)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss_d).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        return {"loss_d": loss_d.item()}

    def o_term(self, batch: Batch, z: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        x = batch.images.to(z.device)
        with frozen(self.deobfuscator), self.ctx.autocast():
            loss_rec = F.mse_loss(self.deobfuscator(z).float(), x)
        return -loss_rec, {"loss_rec": loss_rec.item()}

    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        tensors, opt_meta = flatten_optimizer("opt_d", self.opt)
        tensors.update(prefixed("deobfuscator", self.deobfuscator))
        return tensors, {"opt_d": opt_meta, "scaler_d": self.scaler.state_dict()}

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict, path: Path) -> None:
        load_into(self.deobfuscator, take("deobfuscator", tensors), "deobfuscator", path)
        self.opt.load_state_dict(unflatten_optimizer("opt_d", tensors, meta["opt_d"]))
        if meta.get("scaler_d"):
            self.scaler.load_state_dict(meta["scaler_d"])

    def unwrap(self) -> None:
        self.wrapped = self.deobfuscator

    def deployable(self) -> dict[str, torch.Tensor]:
        # evaluation reports how well D reconstructs, so D ships with O
        return prefixed("deobfuscator", self.deobfuscator)
