"""The one interface of every attacker, and the shared training loop of the neural ones.

An attacker learns a sensitive label from (obfuscated) person crops, with labels taken from
the ORIGINAL crops (wu-2018 3.4: N unseen models f_b^j trained on f_d(X)). Tasks:

* ``"identity"``: multi-class; labels (N,) ints; ``predict`` returns (N,) labels,
  ``predict_scores`` (N, C) class probabilities (columns in ``classes_`` order) whose argmax
  is ``predict``, and ``embed`` (N, D) the attacker's feature embedding, for person-reid
  rankings (veil.evaluation.reid);
* ``"attributes"``: multi-label binary; labels (N, M) 0/1; ``predict`` returns (N, M) 0/1.

Crops are uint8 (N, 3, h, w) arrays (or tensors) already resized to one fixed size.

Every attacker declares its own training budget (class attributes, overridable in the
constructor) and reports what it actually trained with in ``budget()``, for the audit report.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from veil.errors import VeilError
from veil.evaluation.privacy_metrics import mean_accuracy, top1_accuracy

Task = Literal["identity", "attributes"]
TASKS = ("identity", "attributes")

# The attacker families of the audit (issue 7): a worst case over one family is not a worst case.
FAMILIES = {
    "cnn_scratch": "CNN trained from scratch",
    "pretrained_finetuned": "ImageNet-pretrained backbone, fine-tuned",
    "frozen_features": "frozen pretrained features, non-parametric classifier",
    "classical": "hand-crafted colour/texture features, classical model",
    "fused": "colour, texture and deep features fused, linear model",
}

AUGMENTS = ("none", "flip", "flip+crop")

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


def score(pred: np.ndarray, y: np.ndarray, task: Task) -> float:
    """What early stopping maximises: top-1 (identity) or mA (attributes, de-coninck-2024 eq. 3)."""
    return top1_accuracy(pred, y) if task == "identity" else mean_accuracy(pred, y)


class Attacker(ABC):
    """fit on labelled crops, then predict labels of unseen crops."""

    name: str = "attacker"
    family: str = "cnn_scratch"  # a key of FAMILIES
    deterministic: bool = False  # True when the seed cannot change the predictions

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.task: Task | None = None
        self.classes_: np.ndarray | None = None  # identity labels, in output order
        self.crop_size: tuple[int, int] | None = None  # (w, h) of the crops fit was given
        self.validation_crops: int | None = None  # how many validation crops fit was given
        self.early_stopping = False  # whether they selected the epoch
        self.n_outputs: int | None = None  # classes (identity) or attributes, after fit

    def fit(self, crops, labels, task: Task, validation: tuple[Any, Any] | None = None) -> Attacker:
        """Train on ``crops`` / ``labels``; ``validation``: optional (crops, labels) pair that
        attackers with early stopping select their epoch on (never trained on)."""
        if task not in TASKS:
            raise VeilError(f"unknown attack task {task!r} (known: {', '.join(TASKS)})")
        x, y = self._checked(crops, labels, task)
        if len(x) < 2:
            raise VeilError(f"{self.name}: fit needs at least 2 crops, got {len(x)}")
        self.task, self.crop_size = task, (int(x.shape[3]), int(x.shape[2]))
        classes = None  # set for the identity task only
        if task == "identity":
            classes, y = np.unique(y, return_inverse=True)
            self.classes_ = classes
        self.n_outputs = len(classes) if classes is not None else int(y.shape[1])
        val = None
        if validation is not None:
            xv, yv = self._checked(*validation, task)
            if classes is not None:  # identities absent from training can never be right: -1
                pos = np.searchsorted(classes, yv.ravel()).clip(0, len(classes) - 1)
                yv = np.where(classes[pos] == yv.ravel(), pos, -1)
            elif yv.shape[1] != y.shape[1]:
                raise VeilError(f"validation has {yv.shape[1]} attributes, training {y.shape[1]}")
            val = (xv, yv.astype(np.int64 if task == "identity" else np.float32))
        self.validation_crops = None if val is None else len(val[0])
        self._fit(x, y.astype(np.int64 if task == "identity" else np.float32), val)
        return self

    @staticmethod
    def _checked(crops, labels, task: Task) -> tuple[np.ndarray, np.ndarray]:
        x = as_uint8_array(crops)
        y = np.asarray(labels)
        if len(y) != len(x):
            raise VeilError(f"{len(x)} crops but {len(y)} labels")
        if task == "attributes" and y.ndim != 2:
            raise VeilError("attribute labels must be (N, M) 0/1")
        if task == "identity" and y.ndim != 1:
            raise VeilError(f"identity labels must be (N,), got shape {y.shape}")
        return x, y

    def _ready(self, crops, what: str) -> np.ndarray:
        """``crops`` checked against what fit saw: a fitted attacker, uint8 (N, 3, h, w) of the fitted size."""
        if self.task is None:
            raise VeilError(f"{self.name}: {what} called before fit")
        assert self.crop_size is not None  # fit sets it with the task
        x = as_uint8_array(crops)
        if (int(x.shape[3]), int(x.shape[2])) != self.crop_size:
            raise VeilError(f"{self.name} was fitted on {self.crop_size[0]}x{self.crop_size[1]} crops, "
                            f"got {x.shape[3]}x{x.shape[2]}")
        return x

    def predict(self, crops) -> np.ndarray:
        """Identity labels (N,) in the caller's label space, or attributes (N, M) 0/1."""
        x = self._ready(crops, "predict")
        if self.task == "identity":
            assert self.classes_ is not None  # fit sets them for the identity task
            # one definition for every attacker: the most likely class of predict_scores
            return self.classes_[self.predict_scores(x).argmax(1)]
        assert self.n_outputs is not None  # fit sets it with the task
        if len(x) == 0:
            return np.zeros((0, self.n_outputs), np.uint8)
        return self._predict(x).astype(np.uint8)

    def predict_scores(self, crops) -> np.ndarray:
        """Identity class probabilities, float32 (N, C), columns in ``classes_`` order: non-negative,
        each row sums to 1, higher = more likely; ``predict`` is ``classes_[argmax]`` of them."""
        x = self._ready(crops, "predict_scores")
        if self.task != "identity":
            raise VeilError(f"{self.name}: predict_scores is for the identity task, this attacker was fitted "
                            f"on {self.task}")
        assert self.n_outputs is not None  # fit sets it with the task
        if len(x) == 0:
            return np.zeros((0, self.n_outputs), np.float32)
        scores = np.asarray(self._scores(x), np.float32)
        if scores.shape != (len(x), self.n_outputs):  # a bug in an attacker, not in the caller's input
            raise AssertionError(f"{self.name}: scores of shape {scores.shape}, expected {(len(x), self.n_outputs)}")
        return scores

    def embed(self, crops) -> np.ndarray:
        """The attacker's feature embedding of each crop, float32 (N, D), for cosine rankings: its
        frozen or hand-crafted features, or a network's penultimate layer; attackers without one
        fall back to ``predict_scores``."""
        x = self._ready(crops, "embed")
        out = self._embed(x) if len(x) else None
        if out is None:
            return self.predict_scores(x)
        return np.asarray(out, np.float32).reshape(len(x), -1)

    def _scores(self, x: np.ndarray) -> np.ndarray:  # noqa: ARG002  (every registered attacker overrides it)
        """Identity class probabilities (N, C) of uint8 crops; every registered attacker overrides it."""
        raise VeilError(f"{self.name} has no identity scores")

    def _embed(self, x: np.ndarray) -> np.ndarray | None:  # noqa: ARG002  (attackers with features override it)
        """Feature embedding (N, D) of uint8 crops, or None: no embedding of its own."""
        return None

    def budget(self) -> dict:
        """The settings this attacker trains with (after fit: what it actually ran), for the report."""
        return {"attacker": self.name, "family": self.family, "seed": self.seed, "crop_size": self.crop_size,
                **self._budget(),
                "validation_crops": self.validation_crops, "early_stopping": self.early_stopping}

    @abstractmethod
    def _budget(self) -> dict:
        """Attacker-specific training settings."""

    @abstractmethod
    def _fit(self, x: np.ndarray, y: np.ndarray, validation: tuple[np.ndarray, np.ndarray] | None) -> None:
        """Train on uint8 crops; ``y`` holds class indices (identity) or 0/1 floats (attributes);
        ``validation`` the same for held-out crops (identity -1: a class unseen in training)."""

    @abstractmethod
    def _predict(self, x: np.ndarray) -> np.ndarray:
        """0/1 attributes (N, M) of uint8 crops. (``predict`` takes identities from ``_scores``.)"""


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of scores (N, C): decision values -> probabilities, argmax kept."""
    z = np.asarray(z, np.float64)
    z = np.exp(z - z.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


class TorchAttacker(Attacker):
    """A torchvision-style classifier trained with Adam (one-cycle schedule) on CPU-sized budgets.

    Identity: cross-entropy. Attributes: BCE with per-attribute positive weights
    (negatives/positives, clipped), the weighted loss PAR baselines use against imbalance.
    Augmentation (``augment``): "flip" = horizontal flips (identity and clothing colour are
    flip-invariant); "flip+crop" adds small random translations and scale jitter. No colour
    jitter: colour is the very signal an attacker reads.

    Early stopping: with ``patience`` set and validation crops given to ``fit``, the score
    (top-1 or mA) is measured after every epoch; training stops after ``patience`` epochs
    without improvement and the best epoch's weights are kept. ``epochs`` is the maximum.

    Default budgets (``default_*``, per subclass) are sized so that one fit + predict of ~300
    crops at 48x96 costs at most ~15 single-thread CPU seconds (~10 s on 2 cores): the strong
    audit runs every attacker on every method, seed and task.
    """

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    # this attacker's default budget (subclasses override; constructor arguments win)
    default_epochs: int = 5
    default_batch_size: int = 32
    default_lr: float = 1e-3
    default_weight_decay: float = 1e-4
    default_augment: str = "flip"

    def __init__(self, epochs: int | None = None, batch_size: int | None = None, lr: float | None = None,
                 weight_decay: float | None = None, augment: str | None = None, patience: int | None = None,
                 seed: int = 0, device: str | torch.device = "cpu") -> None:
        super().__init__(seed)
        self.epochs = self.default_epochs if epochs is None else epochs
        self.batch_size = self.default_batch_size if batch_size is None else batch_size
        self.lr = self.default_lr if lr is None else lr
        self.weight_decay = self.default_weight_decay if weight_decay is None else weight_decay
        self.augment = self.default_augment if augment is None else augment
        if self.augment not in AUGMENTS:
            raise VeilError(f"unknown augmentation {self.augment!r} (known: {', '.join(AUGMENTS)})")
        if self.epochs < 1 or (patience is not None and patience < 1):
            raise VeilError("epochs and patience must be at least 1")
        self.patience = patience
        self.device = torch.device(device)
        self.net: nn.Module | None = None
        self.epochs_run: int | None = None
        self.best_epoch: int | None = None
        self.best_validation: float | None = None

    @abstractmethod
    def build(self, num_outputs: int) -> nn.Module:
        """The network, mapping normalised (B, 3, h, w) crops to (B, num_outputs) logits."""

    def _budget(self) -> dict:
        return {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr,
                "weight_decay": self.weight_decay, "augment": self.augment, "patience": self.patience,
                "epochs_run": self.epochs_run, "best_epoch": self.best_epoch,
                "best_validation": self.best_validation}

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(x).to(self.device).float().div_(255)
        mean = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=self.device).view(1, 3, 1, 1)
        return (t - mean) / std

    def _augmenter(self) -> nn.Module:
        """Batched random augmentation of normalised crops (kornia draws from torch's seeded RNG)."""
        import kornia.augmentation as K

        if self.augment == "none":
            return nn.Identity()
        steps: list[nn.Module] = [K.RandomHorizontalFlip(p=0.5)]
        if self.augment == "flip+crop":
            # a detector box is a few pixels off and a little too big or small: mimic that
            steps.append(K.RandomAffine(degrees=0.0, translate=(0.08, 0.06), scale=(0.9, 1.1),
                                        padding_mode="border", p=1.0))
        return nn.Sequential(*steps)

    def _fit(self, x: np.ndarray, y: np.ndarray, validation: tuple[np.ndarray, np.ndarray] | None) -> None:
        task = self.task
        assert task is not None and (task != "identity" or self.classes_ is not None)  # fit set them
        torch.manual_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        n_out = len(self.classes_) if self.classes_ is not None and task == "identity" else y.shape[1]
        self.net = self.build(n_out).to(self.device)
        augment = self._augmenter()
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        if self.task == "attributes":
            pos = yt.mean(0).clamp(1e-3, 1 - 1e-3)
            pos_weight = ((1 - pos) / pos).clamp(0.1, 10.0).to(self.device)
        steps = max(1, self.epochs * int(np.ceil(len(x) / self.batch_size)))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=steps, pct_start=0.2)
        early = validation is not None and self.patience is not None
        self.early_stopping = early
        best_state, self.best_validation, self.best_epoch = None, None, None
        for epoch in range(1, self.epochs + 1):
            self.net.train()
            order = torch.randperm(len(x), generator=gen)
            for start in range(0, len(x), self.batch_size):
                idx = order[start : start + self.batch_size]
                if len(idx) < 2:  # BatchNorm needs more than one sample
                    continue
                with torch.no_grad():
                    xb = augment(self._tensor(xt[idx].numpy()))
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
            self.epochs_run = epoch
            if validation is None or self.patience is None:  # i.e. not early
                continue
            self._recalibrate_batchnorm(xt)
            s = score(self._predict(validation[0]), validation[1], task)
            if self.best_validation is None or self.best_epoch is None or s > self.best_validation:
                self.best_validation, self.best_epoch = s, epoch
                best_state = copy.deepcopy(self.net.state_dict())
            elif epoch - self.best_epoch >= self.patience:
                break
        if best_state is not None:
            self.net.load_state_dict(best_state)  # already recalibrated when it was scored
        else:
            self._recalibrate_batchnorm(xt)

    def _network(self) -> nn.Module:
        """The network ``_fit`` built (its callers all run after that)."""
        assert self.net is not None, f"{self.name}: no network before fit"
        return self.net

    @torch.no_grad()
    def _recalibrate_batchnorm(self, xt: torch.Tensor) -> None:
        """Re-estimate BatchNorm statistics of the current weights over the training crops.

        Short CPU budgets leave running statistics stale (torchvision's MobileNetV3 and the
        TF-ported EfficientNet use momentum 0.01), which alone can push eval-mode predictions
        to chance; one forward pass with a cumulative average fixes that exactly.
        """
        net = self._network()
        bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not bns:
            return
        saved = [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average
        net.train()
        for start in range(0, len(xt), self.batch_size * 4):
            chunk = xt[start : start + self.batch_size * 4]
            if len(chunk) > 1:
                net(self._tensor(chunk.numpy()))
        for m, mom in zip(bns, saved):
            m.momentum = mom

    @torch.inference_mode()
    def _outputs(self, x: np.ndarray, penultimate: bool = False) -> torch.Tensor:
        """Logits (N, outputs), or the input of the network's last linear layer, in eval mode;
        averaged over the horizontal flip when training saw flips (cheap test-time augmentation)."""
        net = self._network()
        net.eval()
        captured: list[torch.Tensor] = []
        hook = None
        if penultimate:  # every network here ends in one nn.Linear classifier: its input is the embedding
            last = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
            hook = last.register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0].flatten(1)))
        try:
            outs = []
            for start in range(0, len(x), 256):
                xb = self._tensor(x[start : start + 256])
                views = [xb, xb.flip(-1)] if self.augment != "none" else [xb]
                captured.clear()
                logits = sum(net(v) for v in views) / len(views)
                outs.append((torch.stack(captured).sum(0) / len(views) if penultimate else logits).cpu())
        finally:
            if hook is not None:
                hook.remove()
        return torch.cat(outs) if outs else torch.zeros(0, 1)

    def _predict(self, x: np.ndarray) -> np.ndarray:
        """Class indices (identity, for early stopping) or 0/1 attributes."""
        logits = self._outputs(x)
        if self.task == "identity":
            return logits.argmax(1).numpy()
        return (logits > 0).numpy().astype(np.uint8)

    def _scores(self, x: np.ndarray) -> np.ndarray:
        return torch.softmax(self._outputs(x).double(), 1).numpy()

    def _embed(self, x: np.ndarray) -> np.ndarray:
        return self._outputs(x, penultimate=True).numpy()
