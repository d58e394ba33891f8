"""Person re-identification figures over every (query, gallery) pair, and the video-level attack.

A top-1 label uses one number per crop; the person-reid community ranks the whole gallery for
each query instead (Zheng et al. 2015, Market-1501): the gallery is the attacker-train crops,
the queries the attacker-test crops, and the similarity the cosine of the attacker's embeddings
(or class-probability vectors). Per query:

* rank-1: whether the most similar gallery crop shows the query's identity;
* AP (average precision): the mean, over the gallery crops of its identity (the positives), of
  the precision at each positive's rank;

and over all pairs, the verification ROC AUC (positive pair = same identity, score = cosine).

Ties: scores equal to ``DECIMALS`` decimals are tied, and every figure is its expected value
under a random order of the tied items (McSherry & Najork 2008), so that a coarse embedding
(say, one-hot class probabilities) is not ranked by the gallery's storage order.

All functions are numpy only; the chance level of each figure is stated next to it.
"""

from __future__ import annotations

import numpy as np

from veil.errors import VeilError

DECIMALS = 9  # similarities equal to this many decimals are ties (float noise is not an order)
AUC_CHANCE = 0.5  # a random score ranks a positive above a negative pair half the time
EPS = 1e-6  # floor of a probability before its log, in the video-level pooling


def _ids(ids, n: int, what: str) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.shape != (n,):
        raise VeilError(f"{what} ids must be ({n},), got shape {ids.shape}")
    return ids


def cosine_similarity(query: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """(Q, G) cosine similarities of the rows of ``query`` (Q, D) and ``gallery`` (G, D), rounded to
    ``DECIMALS`` decimals; a zero vector has similarity 0 with everything."""
    q, g = np.asarray(query, np.float64), np.asarray(gallery, np.float64)
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise VeilError(f"query and gallery must be (Q, D) and (G, D), got {q.shape} and {g.shape}")
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    g = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
    return np.round(q @ g.T, DECIMALS)


def ranking(query, query_ids, gallery, gallery_ids, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Per query: rank-1 hit and average precision of the gallery ranked by cosine similarity.

    Returns two float (Q,) arrays; a query whose identity has no gallery crop gets NaN in both
    (it cannot be re-identified and is left out of means). With tied similarities each value is
    the expectation over the tied items' random order, so a rank-1 "hit" can be fractional.
    """
    q_ids = _ids(query_ids, len(query), "query")
    g_ids = _ids(gallery_ids, len(gallery), "gallery")
    n = len(g_ids)
    rank1, ap = np.full(len(q_ids), np.nan), np.full(len(q_ids), np.nan)
    if n == 0:
        return rank1, ap
    for start in range(0, len(q_ids), chunk):  # (chunk, G) at a time keeps memory flat
        rows = slice(start, start + chunk)
        sim = cosine_similarity(np.asarray(query)[rows], gallery)
        order = np.argsort(-sim, axis=1, kind="stable")
        s = np.take_along_axis(sim, order, 1)
        rel = (g_ids[order] == q_ids[rows, None]).astype(np.float64)  # (B, G) positives in ranked order
        b = len(s)
        # tie groups along each row: a new group wherever the similarity drops
        new = np.ones_like(s, dtype=bool)
        new[:, 1:] = s[:, 1:] != s[:, :-1]
        group = np.cumsum(new, 1) - 1 + (np.arange(b) * n)[:, None]  # ids unique over the chunk
        size = np.bincount(group.ravel(), minlength=b * n)
        pos_in = np.bincount(group.ravel(), weights=rel.ravel(), minlength=b * n)
        cum = np.cumsum(rel, 1)
        # positives strictly before each item's group: cumulative count at the group's start - 1
        start_idx = np.maximum.accumulate(np.where(new, np.arange(n)[None, :], 0), axis=1)
        before = np.where(start_idx > 0, np.take_along_axis(cum, np.maximum(start_idx - 1, 0), 1), 0.0)
        j = np.arange(n)[None, :] - start_idx  # 0-based position inside the group
        g_size, g_pos = size[group].astype(np.float64), pos_in[group]
        # E[rel_i * (positives up to i)] under a random order inside the group (McSherry & Najork 2008)
        others = np.where(g_size > 1, j * (g_pos - 1) / np.maximum(g_size - 1, 1), 0.0)
        expected = g_pos / g_size * (before + 1 + others)
        n_pos = cum[:, -1]
        valid = n_pos > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            chunk_ap = (expected / np.arange(1, n + 1)[None, :]).sum(1) / n_pos
            chunk_r1 = pos_in[group[:, 0]] / size[group[:, 0]]  # share of positives among the tied best
        rank1[rows] = np.where(valid, chunk_r1, np.nan)
        ap[rows] = np.where(valid, chunk_ap, np.nan)
    return rank1, ap


def _pairs(query, query_ids, gallery, gallery_ids) -> tuple[np.ndarray, np.ndarray]:
    q_ids = _ids(query_ids, len(query), "query")
    g_ids = _ids(gallery_ids, len(gallery), "gallery")
    return cosine_similarity(query, gallery), q_ids[:, None] == g_ids[None, :]


def pair_auc(query, query_ids, gallery, gallery_ids, query_weights=None) -> float:
    """Verification ROC AUC over all (query, gallery) pairs: the probability that a same-identity
    pair scores a higher cosine similarity than a different-identity pair (ties count 1/2).

    ``query_weights`` (Q,), non-negative: every pair of query q counts ``query_weights[q]`` times
    (a cluster-bootstrap resample). O(P log P) in the P = Q x G pairs. NaN without both kinds of pair.
    """
    sim, same = _pairs(query, query_ids, gallery, gallery_ids)
    w = np.ones(len(sim)) if query_weights is None else np.asarray(query_weights, np.float64)
    if w.shape != (len(sim),) or (w < 0).any():
        raise VeilError(f"query_weights must be ({len(sim)},) and non-negative")
    scores = sim.ravel()
    pos = same.ravel()
    pw = np.broadcast_to(w[:, None], sim.shape).ravel()
    w_pos, w_neg = pw[pos].sum(), pw[~pos].sum()
    if w_pos <= 0 or w_neg <= 0:
        return float("nan")
    # rank the distinct scores; per distinct score: negative weight below it and tied with it
    levels, inverse = np.unique(scores, return_inverse=True)
    neg_at = np.bincount(inverse, weights=np.where(pos, 0.0, pw), minlength=len(levels))
    neg_below = np.cumsum(neg_at) - neg_at
    wins = (pw[pos] * (neg_below[inverse[pos]] + 0.5 * neg_at[inverse[pos]])).sum()
    return float(wins / (w_pos * w_neg))


class PairAuc:
    """The pair AUC under many query weightings at once (a cluster bootstrap): its numerator and
    denominators are quadratic forms of the weights, so one (Q, Q) matrix, computed once, gives
    every resample as ``w @ C @ w / ((w @ n_pos) (w @ n_neg))``.

    ``C[q, r]`` = sum over the positive pairs of query q and the negative pairs of query r of
    [positive scores higher] + 1/2 [equal]. Memory O(Q^2); time O(Q * P_pos log G).
    """

    def __init__(self, query, query_ids, gallery, gallery_ids) -> None:
        sim, same = _pairs(query, query_ids, gallery, gallery_ids)
        q = len(sim)
        self.n_pos = same.sum(1).astype(np.float64)
        self.n_neg = (~same).sum(1).astype(np.float64)
        pq, pg = np.nonzero(same)
        pos_scores, pos_query = sim[pq, pg], pq
        self.c = np.zeros((q, q))
        for r in range(q):
            neg = np.sort(sim[r][~same[r]])
            below = np.searchsorted(neg, pos_scores, "left")
            tied = np.searchsorted(neg, pos_scores, "right") - below
            self.c[:, r] = np.bincount(pos_query, weights=below + 0.5 * tied, minlength=q)

    def __call__(self, weights=None) -> np.ndarray | float:
        """AUC under ``weights``: None (every query once), (Q,) -> float, or (B, Q) -> (B,)."""
        if weights is None:
            weights = np.ones(len(self.c))
        w = np.asarray(weights, np.float64)
        if w.shape[-1] != len(self.c) or w.ndim > 2 or (w < 0).any():
            raise VeilError(f"weights must be (Q,) or (B, Q) with Q = {len(self.c)}, non-negative")
        w2 = np.atleast_2d(w)
        num = np.einsum("bq,qr,br->b", w2, self.c, w2)
        den = (w2 @ self.n_pos) * (w2 @ self.n_neg)
        with np.errstate(invalid="ignore", divide="ignore"):
            auc = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
        return float(auc[0]) if w.ndim == 1 else auc


def _valid_positives(query_ids, gallery_ids) -> tuple[np.ndarray, int]:
    """Gallery positives of each query that has any, and the gallery size."""
    g_ids = np.asarray(gallery_ids)
    ids, counts = np.unique(g_ids, return_counts=True)
    count = dict(zip(ids.tolist(), counts.tolist()))
    n_pos = np.array([count.get(i, 0) for i in np.asarray(query_ids).tolist()], np.float64)
    return n_pos[n_pos > 0], len(g_ids)


def rank1_chance(query_ids, gallery_ids) -> float:
    """Expected rank-1 of a random ranking: the mean over queries with a positive of n_pos / G."""
    n_pos, g = _valid_positives(query_ids, gallery_ids)
    return float(np.mean(n_pos / g)) if len(n_pos) else float("nan")


def _random_ap(n_pos: np.ndarray, g: int) -> np.ndarray:
    """Exact expected AP of a uniformly random ranking of ``g`` items with ``n_pos`` positives:
    E[AP] = a + (1 - a) H_g / g with a = (n_pos - 1) / (g - 1) (H_g: the g-th harmonic number),
    from E[rel_i * positives up to i] = n_pos / g * (1 + (i - 1) a)."""
    if g == 1:
        return np.ones_like(n_pos)
    a = (n_pos - 1) / (g - 1)
    harmonic = np.sum(1.0 / np.arange(1, g + 1))
    return a + (1 - a) * harmonic / g


def map_chance(query_ids, gallery_ids, draws: int | None = None, seed: int = 0) -> float:
    """Expected mAP of a random ranking, over the queries with a positive.

    ``draws=None`` (default): the exact value. An integer: a seeded Monte Carlo estimate over that
    many random rankings per query (a cross-check of the exact formula).
    """
    n_pos, g = _valid_positives(query_ids, gallery_ids)
    if not len(n_pos):
        return float("nan")
    if draws is None:
        return float(np.mean(_random_ap(n_pos, g)))
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, g + 1)
    out = []
    for p in n_pos.astype(int):
        rel = np.zeros((draws, g))
        rel[:, :p] = 1
        rel = rng.permuted(rel, axis=1)
        out.append(np.mean((np.cumsum(rel, 1) / ranks * rel).sum(1) / p))
    return float(np.mean(out))


def pool_by_track(scores, tracks) -> np.ndarray:
    """The video-level attack: each crop's class probabilities replaced by its whole track's.

    An adversary with video pools evidence over every crop of one track: the track's score of a
    class is the mean over its crops of log(p + EPS) (naive-Bayes evidence), returned as the
    normalised geometric mean, softmax(mean log(p + EPS)) (N, C): probabilities again, with the
    argmax of the summed log evidence, so every downstream figure (top-1, rank-1, mAP, AUC)
    reads them as it reads per-crop scores.
    """
    s = np.asarray(scores, np.float64)
    t = np.asarray(tracks)
    if s.ndim != 2 or t.shape != (len(s),):
        raise VeilError(f"scores must be (N, C) and tracks (N,), got {s.shape} and {t.shape}")
    if (s < 0).any():
        raise VeilError("pool_by_track needs non-negative scores (probabilities)")
    if not len(s):
        return s.astype(np.float32)
    _, inverse = np.unique(t, return_inverse=True)
    logs = np.log(s + EPS)
    sums = np.zeros((inverse.max() + 1, s.shape[1]))
    np.add.at(sums, inverse, logs)
    mean = (sums / np.bincount(inverse)[:, None])[inverse]
    mean = np.exp(mean - mean.max(1, keepdims=True))
    return (mean / mean.sum(1, keepdims=True)).astype(np.float32)
