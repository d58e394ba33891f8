"""The one interface of every attacker, and the shared training loop of the neural ones.

An attacker learns a sensitive label from (obfuscated) person crops, with labels taken from
the ORIGINAL crops (wu-2018 3.4: N unseen models f_b^j trained on f_d(X)). Tasks:

* ``"identity"``: multi-class; labels (N,) ints; ``predict`` returns (N,) labels;
* ``"attributes"``: multi-label binary; labels (N, M) 0/1; ``predict`` returns (N, M) 0/1.

Crops are uint8 (N, 3, h, w) arrays (or tensors) already resized to one fixed size.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from veil.errors import VeilError

Task = Literal["identity", "attributes"]
TASKS = ("identity", "attributes")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def as_uint8_array(crops) -> np.ndarray:
    """Crops as a uint8 (N, 3, h, w) numpy array."""
    arr = crops.numpy() if isinstance(crops, torch.Tensor) else np.asarray(crops)
    if arr.ndim != 4 or arr.shape[1] != 3:
        raise VeilError(f"crops must be (N, 3, h, w), got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise VeilError(f"crops must be uint8, got {arr.dtype}")
    return arr


class Attacker(ABC):
    """fit on labelled crops, then predict labels of unseen crops."""

    name: str = "attacker"

    def __init__(self) -> None:
        self.task: Task | None = None
        self.classes_: np.ndarray | None = None  # identity labels, in output order

    def fit(self, crops, labels, task: Task) -> Attacker:
        if task not in TASKS:
            raise VeilError(f"unknown attack task {task!r} (known: {', '.join(TASKS)})")
        x = as_uint8_array(crops)
        y = np.asarray(labels)
        if len(y) != len(x):
            raise VeilError(f"{len(x)} crops but {len(y)} labels")
        if task == "attributes" and y.ndim != 2:
            raise VeilError("attribute labels must be (N, M) 0/1")
        self.task = task
        if task == "identity":
            self.classes_, y = np.unique(y.ravel(), return_inverse=True)
        self._fit(x, y.astype(np.int64 if task == "identity" else np.float32))
        return self

    def predict(self, crops) -> np.ndarray:
        if self.task is None:
            raise VeilError(f"{self.name}: predict called before fit")
        out = self._predict(as_uint8_array(crops))
        if self.task == "identity":
            return self.classes_[out]
        return out.astype(np.uint8)

    @abstractmethod
    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:
        """Train on uint8 crops; ``y`` holds class indices (identity) or 0/1 floats (attributes)."""

    @abstractmethod
    def _predict(self, x: np.ndarray) -> np.ndarray:
        """Class indices (identity) or 0/1 (attributes)."""


class TorchAttacker(Attacker):
    """A torchvision-style classifier trained with Adam on CPU-sized budgets.

    Identity: cross-entropy. Attributes: BCE with per-attribute positive weights
    (negatives/positives, clipped), the weighted loss PAR baselines use against imbalance.
    Augmentation: horizontal flips (identity and clothing colour are flip-invariant).
    """

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __init__(self, epochs: int = 5, batch_size: int = 32, lr: float = 1e-3, weight_decay: float = 1e-4,
                 seed: int = 0, device: str | torch.device = "cpu") -> None:
        super().__init__()
        self.epochs, self.batch_size, self.lr, self.weight_decay = epochs, batch_size, lr, weight_decay
        self.seed, self.device = seed, torch.device(device)
        self.net: nn.Module | None = None

    @abstractmethod
    def build(self, num_outputs: int) -> nn.Module:
        """The network, mapping normalised (B, 3, h, w) crops to (B, num_outputs) logits."""

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(x).to(self.device).float().div_(255)
        mean = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=self.device).view(1, 3, 1, 1)
        return (t - mean) / std

    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:
        torch.manual_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        n_out = len(self.classes_) if self.task == "identity" else y.shape[1]
        self.net = self.build(n_out).to(self.device)
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        if self.task == "attributes":
            pos = yt.mean(0).clamp(1e-3, 1 - 1e-3)
            pos_weight = ((1 - pos) / pos).clamp(0.1, 10.0).to(self.device)
        steps = max(1, self.epochs * int(np.ceil(len(x) / self.batch_size)))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=steps, pct_start=0.2)
        self.net.train()
        for _ in range(self.epochs):
            order = torch.randperm(len(x), generator=gen)
            for start in range(0, len(x), self.batch_size):
                idx = order[start : start + self.batch_size]
                if len(idx) < 2:  # BatchNorm needs more than one sample
                    continue
                xb = self._tensor(xt[idx].numpy())
                flip = torch.rand(len(idx), generator=gen) < 0.5
                xb[flip] = xb[flip].flip(-1)
                logits = self.net(xb)
                yb = yt[idx].to(self.device)
                if self.task == "identity":
                    loss = F.cross_entropy(logits, yb)
                else:
                    loss = F.binary_cross_entropy_with_logits(logits, yb, pos_weight=pos_weight)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
        self._recalibrate_batchnorm(xt)

    @torch.no_grad()
    def _recalibrate_batchnorm(self, xt: torch.Tensor) -> None:
        """Re-estimate BatchNorm statistics of the final weights over the training crops.

        Short CPU budgets leave running statistics stale (torchvision's MobileNetV3 and the
        TF-ported EfficientNet use momentum 0.01), which alone can push eval-mode predictions
        to chance; one forward pass with a cumulative average fixes that exactly.
        """
        bns = [m for m in self.net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not bns:
            return
        saved = [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average
        self.net.train()
        for start in range(0, len(xt), self.batch_size * 2):
            chunk = xt[start : start + self.batch_size * 2]
            if len(chunk) > 1:
                self.net(self._tensor(chunk.numpy()))
        for m, mom in zip(bns, saved):
            m.momentum = mom

    @torch.no_grad()
    def _predict(self, x: np.ndarray) -> np.ndarray:
        self.net.eval()
        outs = []
        for start in range(0, len(x), 128):
            xb = self._tensor(x[start : start + 128])
            # average over the flip the training saw: cheap test-time augmentation
            outs.append(((self.net(xb) + self.net(xb.flip(-1))) / 2).cpu())
        logits = torch.cat(outs) if outs else torch.zeros(0, 1)
        if self.task == "identity":
            return logits.argmax(1).numpy()
        return (logits > 0).numpy().astype(np.uint8)
