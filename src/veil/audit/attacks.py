"""The attacks on one method's frames: every attacker, every seed, every task, and the
figures with their bootstrap intervals.

An attacker is trained on attacker-train crops (early-stopped on the "val" crops when the
config has a patience) and predicts the attacker-test crops. Per seed, the worst case over
attackers (A_b^N, wu-2018) is the best attacker's score; the headline is its mean over seeds.
Intervals come from one cluster bootstrap over test groups (identities, or tracks for
attributes) shared by every attacker and seed, so the worst case is re-maximised inside each
resample rather than read off the best attacker's own interval.

Every method of one audit is resampled with the same groups and bootstrap seed, so each
worst-case figure also carries its replicates (``PAIRED``, in memory only): the verdict reads
the difference of two methods from them, resample by resample (a paired bootstrap).
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context

import numpy as np
import torch

from veil.adversaries.registry import ATTACKERS
from veil.audit.config import AuditConfig
from veil.audit.labels import AttributeTask, IdentityTask
from veil.audit.verdict import PAIRED
from veil.data.crops import CropSet, cut_crops
from veil.errors import VeilError
from veil.evaluation.bootstrap import (
    accuracy_replicates,
    group_weights,
    mean_accuracy_replicates,
    percentile_interval,
)
from veil.evaluation.privacy_metrics import attribute_metrics, top1_accuracy


def attacker_names(config: AuditConfig) -> list[str]:
    import veil.adversaries.attackers  # noqa: F401  (registers the built-in attackers)

    names = list(config.attackers) if config.attackers else ATTACKERS.names()
    unknown = [n for n in names if n not in ATTACKERS]
    if unknown:
        raise VeilError(f"unknown attacker(s): {', '.join(unknown)} (known: {', '.join(ATTACKERS.names())})")
    return names


def _build_kwargs(config: AuditConfig, seed: int) -> dict:
    return {"epochs": config.epochs, "batch_size": config.batch_size, "seed": seed, "device": config.device,
            "patience": config.patience, "augment": config.augment}


def _fit_predict(name: str, kwargs: dict, task: str, train: tuple, validation: tuple | None,
                 x_test: np.ndarray) -> tuple[np.ndarray, dict]:
    """One attacker, one seed: fit, predict the test crops, report its budget (runs in a worker)."""
    import veil.adversaries.attackers  # noqa: F401  (a spawned worker registers the attackers itself)

    attacker = ATTACKERS.build(name, **kwargs)
    attacker.fit(*train, task, validation=validation)
    budget = attacker.budget() if hasattr(attacker, "budget") else {}
    return attacker.predict(x_test), budget


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


@contextmanager
def attack_pool(config: AuditConfig):
    """Where attacker fits run: inline (one process, every thread), or on CPU a pool of worker
    processes with one thread each. Small CNNs on crops use two threads poorly, so two fits side
    by side train about 1.5x faster than one after the other; each fit's result depends only
    on its attacker, seed and data, not on the scheduling."""
    workers = config.workers if config.workers is not None else min(os.cpu_count() or 1, 4)
    if workers <= 1 or config.device != "cpu":
        yield None
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker,
                             initargs=(threads,)) as pool:
        yield pool


@dataclass
class Predictions:
    """Every attacker's predictions on the attacker-test crops of one task, per seed."""

    task: str  # "identity" or "attributes"
    truth: np.ndarray  # (N,) identities or (N, M) attributes
    groups: np.ndarray  # bootstrap unit of each test crop
    pred: dict[str, list[np.ndarray]]  # attacker -> one prediction array per seed
    budgets: dict[str, dict]  # attacker -> its training budget (first seed)


def run_attackers(frames: torch.Tensor, crops: CropSet, labels: np.ndarray, groups: np.ndarray, task: str,
                  config: AuditConfig, pool: Executor | None = None) -> Predictions:
    """Train and test every attacker of ``config`` on ``crops`` of the uint8 ``frames``, once
    per seed; a deterministic attacker (its seed changes nothing) is fitted once."""
    x = cut_crops(frames, crops, config.crop_size)
    part = {s: crops.split == s for s in ("train", "val", "test")}
    validation = (x[part["val"]], labels[part["val"]]) if config.patience and part["val"].any() else None
    train = (x[part["train"]], labels[part["train"]])
    jobs = {}
    for name in attacker_names(config):
        seeds = 1 if getattr(ATTACKERS.build(name), "deterministic", False) else config.seeds
        for k in range(seeds):
            args = (name, _build_kwargs(config, config.seed + k), task, train, validation, x[part["test"]])
            jobs[name, k] = pool.submit(_fit_predict, *args) if pool else _fit_predict(*args)
    results = {key: job.result() if pool else job for key, job in jobs.items()}
    pred: dict[str, list[np.ndarray]] = {}
    budgets: dict[str, dict] = {}
    for name in attacker_names(config):
        runs = [results[name, k] for k in range(config.seeds) if (name, k) in results]
        pred[name] = [runs[min(k, len(runs) - 1)][0] for k in range(config.seeds)]  # deterministic: one run
        budgets[name] = {**runs[0][1], "fits": len(runs)}
    return Predictions(task, labels[part["test"]], groups, pred, budgets)


def _stats(point: np.ndarray, replicates: np.ndarray, level: float) -> dict:
    """Mean over seeds, its interval, and the per-seed spread; ``point``: (S,), ``replicates``: (B, S)."""
    lo, hi = percentile_interval(replicates.mean(1), level)
    return {"value": float(point.mean()), "interval": [lo, hi], "per_seed": point.tolist(),
            "std": float(point.std(ddof=1)) if len(point) > 1 else 0.0, "max": float(point.max())}


def summarise(p: Predictions, config: AuditConfig) -> dict:
    """Per-attacker and worst-case figures with intervals (identity top-1 or attribute mA)."""
    names = list(p.pred)
    w, inverse = group_weights(p.groups, config.bootstrap, config.seed)
    stacked = np.stack([np.stack(p.pred[n]) for n in names], 1)  # (S, A, N[, M])
    if p.task == "identity":
        point = np.array([[top1_accuracy(stacked[s, a], p.truth) for a in range(len(names))]
                          for s in range(len(stacked))])  # (S, A)
        reps = accuracy_replicates(stacked == p.truth, w, inverse)  # (B, S, A)
        metric = "top1"
    else:
        full = [[attribute_metrics(stacked[s, a], p.truth) for a in range(len(names))] for s in range(len(stacked))]
        point = np.array([[m["mA"] for m in row] for row in full])
        reps = mean_accuracy_replicates(stacked, p.truth, w, inverse)
        metric = "mA"
    per = {}
    for a, name in enumerate(names):
        per[name] = {metric: _stats(point[:, a], reps[:, :, a], config.level), "budget": p.budgets.get(name, {})}
        if p.task == "attributes":
            for key in full[0][a]:
                if key != "mA":
                    per[name][key] = float(np.mean([full[s][a][key] for s in range(len(full))]))
    worst_seed = point.argmax(1)  # the worst case is taken per seed
    worst_reps = np.nanmax(reps, axis=2)  # (B, S)
    worst = _stats(point.max(1), worst_reps, config.level)
    worst["attackers"] = [names[a] for a in worst_seed]
    # which resamples these are: equal only for figures measured on the same test groups
    resample = hashlib.sha1(w.tobytes() + inverse.astype(np.int64).tobytes()).hexdigest()
    worst[PAIRED] = {"resample": resample, "replicates": worst_reps.mean(1)}
    winner = max(names, key=lambda n: per[n][metric]["value"])
    return {"metric": metric, "per_attacker": per, "worst_case": worst, "winner": winner,
            "test_crops": int(len(p.truth)), "groups": int(len(np.unique(p.groups)))}


def attack(frames: torch.Tensor, identity: dict[str, IdentityTask], attributes: AttributeTask | None,
           config: AuditConfig, pool: Executor | None = None) -> dict:
    """Every task's figures on one method's uint8 frames (the audit's frame table, transformed)."""
    out: dict = {"identity": {}}
    for protocol, task in identity.items():
        test = task.crops.split == "test"
        p = run_attackers(frames, task.crops, task.crops.identity, task.crops.identity[test], "identity", config,
                          pool)
        out["identity"][protocol] = summarise(p, config)
    if attributes is not None:
        p = run_attackers(frames, attributes.crops, attributes.table.values, attributes.groups, "attributes", config,
                          pool)
        out["attributes"] = summarise(p, config)
    return out
