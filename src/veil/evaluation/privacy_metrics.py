"""Privacy metrics of the audit: identity top-1, and the pedestrian-attribute-recognition
(PAR) metrics of de-coninck-2024 section 3.2.2 (attribute-level mA, instance-level
accuracy / precision / recall / F1 as in Li et al. 2015 and Jia et al. 2021), with the
chance levels an adversary reaches without looking at the image.

Pure numpy. Attribute labels and predictions are (N, M) arrays of 0/1.
"""

from __future__ import annotations

import numpy as np


def top1_accuracy(pred: np.ndarray, gt: np.ndarray) -> float:
    """Fraction of samples whose predicted class equals the true class."""
    pred, gt = np.asarray(pred).ravel(), np.asarray(gt).ravel()
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt differ in length: {pred.shape} vs {gt.shape}")
    return float(np.mean(pred == gt)) if len(gt) else float("nan")


def identity_chance(test_labels: np.ndarray) -> dict[str, float]:
    """Chance levels of identity top-1: always guessing the most frequent test identity
    (the adversary's best blind guess) and guessing uniformly at random."""
    test_labels = np.asarray(test_labels).ravel()
    if len(test_labels) == 0:
        return {"majority": float("nan"), "uniform": float("nan")}
    _, counts = np.unique(test_labels, return_counts=True)
    return {"majority": float(counts.max() / counts.sum()), "uniform": float(1.0 / len(counts))}


def _binary(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be (N, M), got shape {a.shape}")
    return a.astype(bool)


def per_attribute_balanced_accuracy(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """1/2 (TP/(TP+FN) + TN/(TN+FP)) for each attribute; NaN where the evaluation set has no
    positive or no negative example of that attribute (one of the two terms is 0/0)."""
    p, g = _binary(pred, "pred"), _binary(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred and gt shapes differ: {p.shape} vs {g.shape}")
    tp = (p & g).sum(0)
    fn = (~p & g).sum(0)
    tn = (~p & ~g).sum(0)
    fp = (p & ~g).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        pos_recall = tp / (tp + fn)
        neg_recall = tn / (tn + fp)
    return 0.5 * (pos_recall + neg_recall)


def mean_accuracy(pred: np.ndarray, gt: np.ndarray) -> float:
    """mA = 1/M sum_j 1/2 (TP_j/(TP_j+FN_j) + TN_j/(TN_j+FP_j)) (de-coninck-2024 eq. 3).

    Attributes whose terms are undefined on this evaluation set (no positive or no negative
    ground truth) are left out of the mean rather than scored 0 or 1, so a constant
    predictor still gets exactly 0.5.
    """
    ba = per_attribute_balanced_accuracy(pred, gt)
    ba = ba[~np.isnan(ba)]
    return float(ba.mean()) if len(ba) else float("nan")


def instance_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Instance-level accuracy, precision, recall and F1 (Li et al. 2015).

    Per sample i with predicted positive set P_i and true positive set Y_i:
    acc_i = |P_i & Y_i| / |P_i | Y_i|, prec_i = |P_i & Y_i| / |P_i|, rec_i = |P_i & Y_i| / |Y_i|,
    averaged over samples; F1 = 2 prec rec / (prec + rec) of the averages (as Jia et al.).
    A term with a zero denominator counts 1 when P_i == Y_i (both empty) and 0 otherwise.
    """
    p, g = _binary(pred, "pred"), _binary(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred and gt shapes differ: {p.shape} vs {g.shape}")
    if len(g) == 0:
        return {"accuracy": float("nan"), "precision": float("nan"), "recall": float("nan"), "f1": float("nan")}
    inter = (p & g).sum(1).astype(float)
    union = (p | g).sum(1).astype(float)
    n_pred = p.sum(1).astype(float)
    n_gt = g.sum(1).astype(float)
    same = (p == g).all(1).astype(float)

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        out = same.copy()
        nz = den > 0
        out[nz] = num[nz] / den[nz]
        return out

    acc = float(ratio(inter, union).mean())
    prec = float(ratio(inter, n_pred).mean())
    rec = float(ratio(inter, n_gt).mean())
    f1 = 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
    return {"accuracy": acc, "precision": prec, "recall": rec, "f1": float(f1)}


def attribute_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """mA plus the instance-level metrics, one flat dict."""
    return {"mA": mean_accuracy(pred, gt), **{f"instance_{k}": v for k, v in instance_metrics(pred, gt).items()}}


def attribute_chance(train_labels: np.ndarray | None, test_labels: np.ndarray) -> dict[str, float]:
    """Chance levels of the attribute metrics: a blind adversary predicting, for every crop,
    each attribute's majority value on its training labels (test labels if none given).
    Its mA is 0.5 by construction."""
    test = _binary(test_labels, "test_labels")
    ref = test if train_labels is None else _binary(train_labels, "train_labels")
    if len(ref) == 0:
        return {"mA": 0.5, **{f"instance_{k}": float("nan") for k in ("accuracy", "precision", "recall", "f1")}}
    majority = ref.mean(0) > 0.5
    blind = np.broadcast_to(majority, test.shape)
    return {"mA": 0.5, **{f"instance_{k}": v for k, v in instance_metrics(blind, test).items()}}
