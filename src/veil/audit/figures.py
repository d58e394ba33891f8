"""The identity figures beside top-1, from every attacker's scores (issue 17).

Top-1 reads one label per crop. The person-reid community reads the whole ranking instead:
every attacker-test crop (query) ranks the attacker-train crops (gallery) by the cosine of the
attacker's class-score vectors, giving rank-1 and average precision; every query's
same/different gallery pairs give a verification ROC AUC. An adversary with video pools its
scores over a whole track before deciding (the video-level attack, STPrivacy ICCV 2023). And
top-1 averaged per identity keeps a few long tracks from dominating the figure.

Each figure is a per-query value (NaN where undefined), so every one is bootstrapped exactly
like top-1: the same cluster resamples of test identities, the worst case over attackers taken
per seed and per resample, and replicates kept for the paired verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from veil.evaluation.bootstrap import group_mean_replicates, ratio_replicates
from veil.evaluation.privacy_metrics import identity_chance
from veil.evaluation.reid import map_chance, pair_auc, pool_by_track, rank1_chance, ranking


@dataclass
class Scores:
    """One attacker's identity scores for one seed: test (queries) and train (gallery) crops,
    columns in ``classes`` order."""

    test: np.ndarray  # (N, C)
    train: np.ndarray  # (M, C)
    classes: np.ndarray  # (C,)


def per_query(scores: Scores, truth: np.ndarray, gallery_ids: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """figure -> (values (N,), valid (N,)) for one attacker and seed; "top1_per_identity" shares
    top-1's values and differs only in how they are averaged (see :func:`replicates`)."""
    rank1, ap = ranking(scores.test, truth, scores.train, gallery_ids)
    auc = np.array([pair_auc(scores.test[i:i + 1], truth[i:i + 1], scores.train, gallery_ids)
                    if np.isfinite(rank1[i]) else np.nan for i in range(len(truth))])
    video = scores.classes[np.argmax(pool_by_track(scores.test, truth), axis=1)] == truth
    top1 = scores.classes[np.argmax(scores.test, axis=1)] == truth
    ok = np.ones(len(truth), bool)
    return {"top1": (top1.astype(float), ok), "top1_per_identity": (top1.astype(float), ok),
            "rank1": (np.nan_to_num(rank1), np.isfinite(rank1)), "mAP": (np.nan_to_num(ap), np.isfinite(ap)),
            "auc": (np.nan_to_num(auc), np.isfinite(auc)), "video_top1": (video.astype(float), ok)}


def replicates(figure: str, values: np.ndarray, valid: np.ndarray, w: np.ndarray,
               inverse: np.ndarray) -> np.ndarray:
    """The figure in every resample ((..., N) -> (B, ...)); with ``w`` all ones, its point value."""
    if figure == "top1_per_identity":
        return group_mean_replicates(values, valid, w, inverse)
    return ratio_replicates(values, valid, w, inverse)


def blind_guess(truth: np.ndarray) -> dict[str, float]:
    """Always guessing one identity: the majority's share for top-1 and the video attack, one
    identity in K for top-1 averaged per identity."""
    chance = identity_chance(truth)
    return {"top1": chance["majority"], "top1_per_identity": chance["uniform"], "video_top1": chance["majority"]}


def chance_levels(truth: np.ndarray, gallery_ids: np.ndarray) -> dict[str, float]:
    """What a blind adversary scores on each figure: a blind guess (:func:`blind_guess`), a random
    ranking for rank-1 and mAP, 0.5 AUC."""
    return {**blind_guess(truth), "rank1": rank1_chance(truth, gallery_ids), "mAP": map_chance(truth, gallery_ids),
            "auc": 0.5}
