"""Cluster bootstrap intervals for the audit's accuracies.

Test crops of one pseudo-identity (or one track) are not independent samples: neighbouring
frames of one person are near-duplicates. The unit of resampling is therefore the group
(identity, track), and every statistic is a ratio of per-group sums, so one resample is a
vector of group multiplicities and a statistic on it is a matrix product.
"""

from __future__ import annotations

import numpy as np

LEVEL = 0.95


def group_weights(groups: np.ndarray, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(W, inverse): W is (n_boot, G) multiplicities of the G groups in each resample (each
    resample draws G groups with replacement); ``inverse`` maps every sample to its group."""
    _, inverse = np.unique(np.asarray(groups), return_inverse=True)
    g = int(inverse.max()) + 1 if len(inverse) else 0
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, max(g, 1), size=(n_boot, g)) + g * np.arange(n_boot)[:, None]
    w = np.bincount(draws.ravel(), minlength=n_boot * g).reshape(n_boot, g).astype(np.float64)
    return w, inverse


def group_sums(values: np.ndarray, inverse: np.ndarray, n_groups: int) -> np.ndarray:
    """Per-group sums of ``values`` ((N, ...) -> (G, ...))."""
    values = np.asarray(values, np.float64)
    out = np.zeros((n_groups, *values.shape[1:]), np.float64)
    np.add.at(out, inverse, values)
    return out


def percentile_interval(samples: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap replicates (NaNs ignored)."""
    samples = np.asarray(samples, np.float64)
    samples = samples[np.isfinite(samples)]
    if len(samples) == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(samples, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def accuracy_replicates(correct: np.ndarray, w: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """Top-1 accuracy in every resample. ``correct``: (..., N) 0/1 -> (n_boot, ...)."""
    correct = np.moveaxis(np.asarray(correct, np.float64), -1, 0)  # (N, ...)
    g = w.shape[1]
    hits = group_sums(correct, inverse, g)  # (G, ...)
    counts = group_sums(np.ones(len(inverse)), inverse, g)  # (G,)
    num = np.tensordot(w, hits, axes=(1, 0))  # (B, ...)
    den = (w @ counts).reshape(-1, *([1] * (num.ndim - 1)))
    return _ratio(num, den)


def mean_accuracy_replicates(pred: np.ndarray, gt: np.ndarray, w: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """Attribute mA (mean over attributes of (TPR + TNR) / 2) in every resample.

    ``pred``: (..., N, M) 0/1 predictions, ``gt``: (N, M) labels -> (n_boot, ...). An attribute
    with no positive (or no negative) in a resample is left out of that resample's mean,
    as :func:`veil.evaluation.privacy_metrics.mean_accuracy` leaves it out.
    """
    pred = np.asarray(pred, np.float64)
    gt = np.asarray(gt, np.float64)
    g = w.shape[1]
    pos, neg = group_sums(gt, inverse, g), group_sums(1 - gt, inverse, g)  # (G, M)
    lead = pred.shape[:-2]
    p = np.moveaxis(pred.reshape(-1, *pred.shape[-2:]), 0, 1)  # (N, K, M)
    tp = group_sums(p * gt[:, None], inverse, g)  # (G, K, M)
    tn = group_sums((1 - p) * (1 - gt[:, None]), inverse, g)
    P, Nn = w @ pos, w @ neg  # (B, M)
    TP, TN = np.einsum("bg,gkm->bkm", w, tp), np.einsum("bg,gkm->bkm", w, tn)
    tpr, tnr = _ratio(TP, P[:, None]), _ratio(TN, Nn[:, None])
    balanced = 0.5 * (tpr + tnr)  # NaN where either rate is undefined
    defined = np.isfinite(balanced)
    with np.errstate(invalid="ignore"):
        ma = np.where(defined, balanced, 0).sum(-1) / defined.sum(-1)  # (B, K); NaN if none defined
    return ma.reshape(len(w), *lead)


def ratio_replicates(values: np.ndarray, valid: np.ndarray, w: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """The mean of per-sample ``values`` over valid samples, in every resample: a ratio of group
    sums, as :func:`accuracy_replicates` (which is this with every sample valid and 0/1 values).
    ``values``, ``valid``: (..., N) -> (n_boot, ...). Invalid samples (e.g. a query whose identity
    has no gallery item) count in neither sum."""
    valid = np.asarray(valid, np.float64)
    v = np.moveaxis(np.where(valid > 0, np.asarray(values, np.float64), 0.0), -1, 0)
    g = w.shape[1]
    num = np.tensordot(w, group_sums(v, inverse, g), axes=(1, 0))
    den = np.tensordot(w, group_sums(np.moveaxis(valid, -1, 0), inverse, g), axes=(1, 0))
    return _ratio(num, den)


def group_mean_replicates(values: np.ndarray, valid: np.ndarray, w: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """The mean over groups of each group's mean value, in every resample: every identity counts
    once however many crops it has, so a few long tracks do not dominate. (..., N) -> (n_boot, ...)."""
    valid = np.asarray(valid, np.float64)
    v = np.moveaxis(np.where(valid > 0, np.asarray(values, np.float64), 0.0), -1, 0)
    g = w.shape[1]
    sums, counts = group_sums(v, inverse, g), group_sums(np.moveaxis(valid, -1, 0), inverse, g)
    means = _ratio(sums, counts)  # (G, ...), NaN for a group with no valid sample
    present = np.isfinite(means)
    num = np.tensordot(w, np.where(present, means, 0.0), axes=(1, 0))
    den = np.tensordot(w, present.astype(np.float64), axes=(1, 0))
    return _ratio(num, den)
