"""The attacks on one method's frames: every attacker, every seed, every task, and the
figures with their bootstrap intervals.

An attacker is trained on attacker-train crops (early-stopped on the "val" crops when the
config has a patience) and predicts the attacker-test crops. Per seed, the worst case over
attackers (A_b^N, wu-2018) is the best attacker's score; the headline is its mean over seeds.
Intervals come from one cluster bootstrap over test groups (identities, or tracks for
attributes) shared by every attacker and seed, so the worst case is re-maximised inside each
resample rather than read off the best attacker's own interval.

Every method of one audit is resampled with the same groups and bootstrap seed, so each
worst-case figure also carries its replicates (``Figure.paired``, in memory only): the verdict
reads the difference of two methods from them, resample by resample (a paired bootstrap).
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from veil.adversaries.registry import ATTACKERS
from veil.audit import fit_cache
from veil.audit.config import AuditConfig
from veil.audit.figures import Scores, blind_guess, chance_levels, per_query, replicates
from veil.audit.fit_cache import Fit
from veil.audit.labels import AttributeTask, IdentityTask
from veil.audit.report import IDENTITY_FIGURES, AttackerResult, Figure, TaskResult

if TYPE_CHECKING:
    from veil.adversaries.attackers.base import Attacker, Task
from veil.data.crops import CropSet, cut_crops
from veil.errors import VeilError
from veil.evaluation.bootstrap import (
    accuracy_replicates,
    group_weights,
    mean_accuracy_replicates,
    percentile_interval,
)
from veil.evaluation.privacy_metrics import attribute_metrics, per_attribute_balanced_accuracy, top1_accuracy


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


def _fit_predict(name: str, kwargs: dict, task: Task, train: tuple[Any, Any], validation: tuple[Any, Any] | None,
                 x_test: np.ndarray) -> tuple[np.ndarray, dict, Scores | None]:
    """One attacker, one seed: fit, predict the test crops, report its budget and, for identity,
    its class scores on the test (query) and train (gallery) crops (runs in a worker)."""
    import veil.adversaries.attackers  # noqa: F401  (a spawned worker registers the attackers itself)

    # ATTACKERS is typed Registry[object] (veil.adversaries.registry keeps clear of the attacker package);
    # every registered factory builds an Attacker.
    attacker = cast("Attacker", ATTACKERS.build(name, **kwargs))
    attacker.fit(*train, task, validation=validation)
    budget = attacker.budget() if hasattr(attacker, "budget") else {}
    if task != "identity":
        return attacker.predict(x_test), budget, None
    assert attacker.classes_ is not None  # fit on the identity task sets them
    # predict is the argmax of the scores: compute the crops' features once
    scores = Scores(attacker.predict_scores(x_test), attacker.predict_scores(train[0]), attacker.classes_)
    return scores.classes[np.argmax(scores.test, axis=1)], budget, scores


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


@contextmanager
def attack_pool(config: AuditConfig):
    """Where attacker fits run: inline (one process, every thread), or on CPU a pool of worker
    processes with one thread each. Small CNNs on crops use two threads poorly, so two fits side
    by side train about 1.5x faster than one after the other; each fit's result depends only
    on its attacker, seed and data, not on the scheduling (to float rounding: scores agree to ~1e-5).

    By default the pool has one worker per thread this process may use (``torch.get_num_threads()``,
    which OMP_NUM_THREADS sets), at most 4, not one per core of the machine: a process held to one
    thread (a job beside others, a test worker) fits inline, instead of starting workers that each
    import torch again (about 5 CPU-seconds apiece) to compete for the same core."""
    budget = torch.get_num_threads()
    workers = config.workers if config.workers is not None else min(budget, 4)
    if workers <= 1 or config.device != "cpu":
        yield None
        return
    threads = max(1, budget // workers)
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
    scores: dict[str, list[Scores]] = field(default_factory=dict)  # identity: attacker -> scores per seed
    gallery: np.ndarray | None = None  # identity: the attacker-train crops' identities
    #: a cross-fitted audit's folds, pooled into this one (each fold keeps its own scores and gallery)
    parts: list[Predictions] = field(default_factory=list)


def pool(parts: list[Predictions]) -> Predictions:
    """The predictions of K folds as one set of test crops: concatenated, with each fold's groups
    and identities kept apart (an identity of fold 0 and one of fold 1 are two bootstrap units)."""
    first = parts[0]
    seeds = len(next(iter(first.pred.values())))
    groups = np.concatenate([np.array([f"{k}:{g}" for g in q.groups]) for k, q in enumerate(parts)])

    def joined(arrays: list[np.ndarray]) -> np.ndarray:
        if first.task != "identity":
            return np.concatenate(arrays)
        return np.concatenate([np.asarray(a, np.int64) + k * FOLD_OFFSET for k, a in enumerate(arrays)])

    pred = {n: [joined([q.pred[n][s] for q in parts]) for s in range(seeds)] for n in first.pred}
    return Predictions(first.task, joined([q.truth for q in parts]), groups, pred, first.budgets, parts=parts)


FOLD_OFFSET = 10**7  # identity numbers of fold k are shifted by k x this when folds are pooled


def run_attackers(frames: torch.Tensor, crops: CropSet, labels: np.ndarray, groups: np.ndarray, task: Task,
                  config: AuditConfig, pool: Executor | None = None, cache: Path | None = None) -> Predictions:
    """Train and test every attacker of ``config`` on ``crops`` of the uint8 ``frames``, once
    per seed; a deterministic attacker (its seed changes nothing) is fitted once. With ``cache``
    each fit's result is kept there and read back instead of fitting again (a resumed run)."""
    x = cut_crops(frames, crops, config.crop_size)
    part = {s: crops.split == s for s in ("train", "val", "test")}
    validation = (x[part["val"]], labels[part["val"]]) if config.patience and part["val"].any() else None
    train = (x[part["train"]], labels[part["train"]])
    jobs: dict[tuple[str, int], Future | Fit] = {}
    fresh: list[tuple[str, int]] = []  # fitted now, not read back from the cache
    for name in attacker_names(config):
        seeds = 1 if getattr(ATTACKERS.build(name), "deterministic", False) else config.seeds
        for k in range(seeds):
            if cache is not None and (hit := fit_cache.read(cache / f"{name}-seed{k}")) is not None:
                jobs[name, k] = hit
                continue
            args = (name, _build_kwargs(config, config.seed + k), task, train, validation, x[part["test"]])
            jobs[name, k] = pool.submit(_fit_predict, *args) if pool else _fit_predict(*args)
            fresh.append((name, k))
    results = {key: job.result() if isinstance(job, Future) else job for key, job in jobs.items()}
    if cache is not None:  # keep the fits made now; those read back are on disk already
        for name, k in fresh:
            fit_cache.write(cache / f"{name}-seed{k}", *results[name, k])
    pred: dict[str, list[np.ndarray]] = {}
    budgets: dict[str, dict] = {}
    scores: dict[str, list[Scores]] = {}
    for name in attacker_names(config):
        runs = [results[name, k] for k in range(config.seeds) if (name, k) in results]
        pred[name] = [runs[min(k, len(runs) - 1)][0] for k in range(config.seeds)]  # deterministic: one run
        budgets[name] = {**runs[0][1], "fits": len(runs)}
        kept = [r[2] for r in runs if r[2] is not None]
        if len(kept) == len(runs):
            scores[name] = [kept[min(k, len(kept) - 1)] for k in range(config.seeds)]
    complete = len(scores) == len(pred)  # figures beside top-1 only when every attacker scores
    return Predictions(task, labels[part["test"]], groups, pred, budgets, scores if complete else {},
                       labels[part["train"]] if complete else None)


FUSED = "+boxes"  # name suffix of an attacker fused with the boxes-only attack (veil.audit.geometry)


def _product(a: np.ndarray, b: np.ndarray, floor: float = 1e-3) -> np.ndarray:
    """Two class-probability matrices combined as independent evidence (a renormalised product;
    ``floor`` keeps one attacker's hard zero from vetoing a class outright)."""
    p = (a + floor) * (b + floor)
    return p / p.sum(axis=1, keepdims=True)


def fuse(pixels: Predictions, boxes: Predictions, reference: str = "box_logistic") -> Predictions:
    """The attacker the cloud operator is: it holds each obfuscated crop AND its box. Adds, per
    pixel attacker A, the attacker "A+boxes" whose class scores are A's times the ``reference``
    geometry attacker's (same attacker-train crops, so the same classes), on test and gallery
    crops alike. Without scores (an attacker that gives none) the predictions are returned as they are."""
    if not pixels.scores or pixels.gallery is None or reference not in boxes.scores:
        return pixels
    pred, scores, budgets = dict(pixels.pred), dict(pixels.scores), dict(pixels.budgets)
    for name, runs in pixels.scores.items():
        fused = []
        for k, s in enumerate(runs):
            geo = boxes.scores[reference][min(k, len(boxes.scores[reference]) - 1)]
            if not np.array_equal(s.classes, geo.classes):
                raise VeilError(f"{name} and {reference} were fitted on different identities; they cannot be fused")
            fused.append(Scores(_product(s.test, geo.test), _product(s.train, geo.train), s.classes))
        pred[name + FUSED] = [f.classes[np.argmax(f.test, axis=1)] for f in fused]
        scores[name + FUSED] = fused
        budgets[name + FUSED] = {"fusion": f"class probabilities of {name} x {reference}", "fits": 0}
    return replace(pixels, pred=pred, scores=scores, budgets=budgets)


def with_floor(pixels: Predictions, boxes: Predictions) -> Predictions:
    """The attribute attack the cloud operator can make: every pixel attacker, and beside them the geometry
    attackers of the attribute floor (``veil.audit.geometry.attribute_predictions``), fitted on the same
    attacker-train crops' boxes. Attribute attackers give labels, not scores, so nothing is multiplied as
    :func:`fuse` does for identity: the worst case is taken over both sets, and never reads below what the
    boxes alone predict."""
    if not np.array_equal(pixels.truth, boxes.truth):
        raise VeilError("the attribute floor was fitted on other crops than the pixel attackers; cannot join them")
    clash = set(pixels.pred) & set(boxes.pred)
    if clash:
        raise VeilError(f"attacker name(s) {', '.join(sorted(clash))} are both pixel and geometry attackers")
    return replace(pixels, pred={**pixels.pred, **boxes.pred}, budgets={**pixels.budgets, **boxes.budgets})


def _figure(point: np.ndarray, replicates: np.ndarray, level: float) -> Figure:
    """Mean over seeds, its interval, and the per-seed spread; ``point``: (S,), ``replicates``: (B, S)."""
    lo, hi = percentile_interval(replicates.mean(1), level)
    return Figure(value=float(point.mean()), interval=(lo, hi), per_seed=point.tolist(),
                  std=float(point.std(ddof=1)) if len(point) > 1 else 0.0, max=float(point.max()))


def summarise(p: Predictions, config: AuditConfig, attribute_names: list[str] | None = None) -> TaskResult:
    """Per-attacker and worst-case figures with intervals (identity top-1 or attribute mA).
    ``attribute_names``: the attribute columns' names, for the strongest attacker's accuracy on each."""
    names = list(p.pred)
    w, inverse = group_weights(p.groups, config.bootstrap, config.seed)
    stacked = np.stack([np.stack(p.pred[n]) for n in names], 1)  # (S, A, N[, M])
    full: list[list[dict]] = []
    if p.task == "identity":
        point = np.array([[top1_accuracy(stacked[s, a], p.truth) for a in range(len(names))]
                          for s in range(len(stacked))])  # (S, A)
        reps = accuracy_replicates(stacked == p.truth, w, inverse)  # (B, S, A)
    else:
        full = [[attribute_metrics(stacked[s, a], p.truth) for a in range(len(names))] for s in range(len(stacked))]
        point = np.array([[m["mA"] for m in row] for row in full])
        reps = mean_accuracy_replicates(stacked, p.truth, w, inverse)
    per = {}
    for a, name in enumerate(names):
        figure = _figure(point[:, a], reps[:, :, a], config.level)
        extra = ({key: float(np.mean([full[s][a][key] for s in range(len(full))])) for key in full[0][a] if key != "mA"}
                 if full else {})
        per[name] = (AttackerResult(top1=figure, budget=p.budgets.get(name, {})) if p.task == "identity"
                     else AttackerResult.model_validate({"mA": figure, "budget": p.budgets.get(name, {}), **extra}))
    # which resamples these are: equal only for figures measured on the same test groups
    resample = hashlib.sha1(w.tobytes() + inverse.astype(np.int64).tobytes()).hexdigest()
    worst = _worst(point, reps, names, resample, config.level)
    winner = max(names, key=lambda n: per[n].main.value)
    result = TaskResult(metric="top1" if p.task == "identity" else "mA", per_attacker=per, worst_case=worst,
                        winner=winner, test_crops=int(len(p.truth)), groups=int(len(np.unique(p.groups))))
    if all(q.scores and q.gallery is not None for q in p.parts or [p]):
        _identity_figures(result, p, names, w, inverse, resample, config)
    if p.task == "attributes" and attribute_names is not None:
        result.per_attribute = per_attribute(p, winner, attribute_names)
    return result


def per_attribute(p: Predictions, attacker: str, names: list[str]) -> dict[str, float]:
    """``attacker``'s balanced accuracy on each attribute, mean over seeds: which attributes leak (mA
    averages them all, so one attribute the transform cannot hide is lost in it). Attributes with no
    positive or no negative test crop are left out, as mA leaves them out."""
    ba = np.mean([per_attribute_balanced_accuracy(x, p.truth) for x in p.pred[attacker]], axis=0)
    return {n: round(float(v), 4) for n, v in zip(names, ba) if np.isfinite(v)}


def _worst(point: np.ndarray, reps: np.ndarray, names: list[str], resample: str, level: float) -> Figure:
    """The worst case over attackers, taken per seed (point (S, A)) and per resample (reps (B, S, A))."""
    worst_reps = np.nanmax(reps, axis=2)  # (B, S)
    worst = _figure(point.max(1), worst_reps, level)
    worst.attackers = [names[a] for a in point.argmax(1)]
    return worst.with_replicates(resample, worst_reps.mean(1))


def _identity_figures(result: TaskResult, p: Predictions, names: list[str], w: np.ndarray, inverse: np.ndarray,
                      resample: str, config: AuditConfig) -> None:
    """Rank-1, mAP, AUC, the video-level attack and per-identity top-1 (veil.audit.figures), each
    per attacker and as a worst case, on the same resamples as top-1."""
    parts = p.parts or [p]  # pooled folds: every query is scored within its own fold
    seeds = len(next(iter(p.pred.values())))
    values = {n: [[per_query(q.scores[n][s], q.truth, q.gallery) for q in parts] for s in range(seeds)]  # type: ignore[arg-type]
              for n in names}
    ones = np.ones((1, w.shape[1]))
    for figure in IDENTITY_FIGURES:
        v = np.stack([np.stack([np.concatenate([x[figure][0] for x in values[n][s]]) for n in names])
                      for s in range(seeds)])  # (S, A, N)
        ok = np.stack([np.stack([np.concatenate([x[figure][1] for x in values[n][s]]) for n in names])
                       for s in range(seeds)])
        point = replicates(figure, v, ok, ones, inverse)[0]  # (S, A): every identity once
        reps = replicates(figure, v, ok, w, inverse)  # (B, S, A)
        for a, name in enumerate(names):
            result.per_attacker[name].figures[figure] = _figure(point[:, a], reps[:, :, a], config.level)
        result.figures[figure] = _worst(point, reps, names, resample, config.level)
    levels = [chance_levels(q.truth, q.gallery) for q in parts]  # type: ignore[arg-type]
    weights = np.array([len(q.truth) for q in parts], float)
    result.chance = {k: float(np.average([c[k] for c in levels], weights=weights)) for k in levels[0]}
    if len(parts) > 1:  # the blind guesses over the pooled crops
        result.chance.update(blind_guess(p.truth))


@dataclass
class Attacked:
    """One method's attack results: identity per protocol, and attributes where attacked."""

    identity: dict[str, TaskResult]
    attributes: TaskResult | None
    raw: dict[str, Predictions]  # protocol or "attributes" -> the predictions the figures came from


def attack(frames: torch.Tensor, identity: dict[str, IdentityTask], attributes: AttributeTask | None,
           config: AuditConfig, pool: Executor | None = None, cache: Path | None = None,
           boxes: dict[str, Predictions] | None = None) -> Attacked:
    """Every task's figures on one method's uint8 frames (the audit's frame table, transformed).
    ``boxes``: per protocol, the boxes-only attack to fuse every identity attacker with (:func:`fuse`), and
    under "attributes" the attribute floor, whose attackers join the pixel attackers' (:func:`with_floor`)."""
    out = Attacked({}, None, {})
    for protocol, task in identity.items():
        test = task.crops.split == "test"
        p = run_attackers(frames, task.crops, task.crops.identity, task.crops.identity[test], "identity", config,
                          pool, cache / protocol if cache is not None else None)
        if boxes is not None:
            p = fuse(p, boxes[protocol])
        out.identity[protocol], out.raw[protocol] = summarise(p, config), p
    if attributes is not None:
        p = run_attackers(frames, attributes.crops, attributes.table.values, attributes.groups, "attributes", config,
                          pool, cache / "attributes" if cache is not None else None)
        if boxes is not None and "attributes" in boxes:
            p = with_floor(p, boxes["attributes"])
        out.attributes, out.raw["attributes"] = summarise(p, config, attributes.table.names), p
    return out
