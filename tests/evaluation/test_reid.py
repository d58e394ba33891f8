"""Person-reid figures against values worked out by hand on a tiny gallery.

Embeddings are 2-d unit vectors at the angles below, so the cosine similarity ranks the gallery
by angular distance to the query:

    gallery  g0  g1  g2  g3  g4
    id       A   B   A   C   B
    angle    0   20  40  60  90 (degrees)
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from veil.errors import VeilError
from veil.evaluation.reid import (
    AUC_CHANCE,
    PairAuc,
    map_chance,
    pair_auc,
    pool_by_track,
    rank1_chance,
    ranking,
)


def _at(*degrees: float) -> np.ndarray:
    r = np.radians(degrees)
    return np.stack([np.cos(r), np.sin(r)], 1)


GALLERY, GALLERY_IDS = _at(0, 20, 40, 60, 90), np.array(["A", "B", "A", "C", "B"])
# q0 (A, 5 deg): order g0 A, g1 B, g2 A, g3 C, g4 B -> hits at 1, 3: rank-1 1, AP (1/1 + 2/3) / 2 = 5/6
# q1 (B, 48 deg): order g2 A, g3 C, g1 B, g4 B, g0 A -> hits at 3, 4: rank-1 0, AP (1/3 + 2/4) / 2 = 5/12
# q2 (C, 100 deg): order g4 B, g3 C, ... -> hit at 2: rank-1 0, AP 1/2
# q3 (D): no D in the gallery -> NaN
QUERY, QUERY_IDS = _at(5, 48, 100, 30), np.array(["A", "B", "C", "D"])


def test_rank1_and_average_precision_by_hand():
    rank1, ap = ranking(QUERY, QUERY_IDS, GALLERY, GALLERY_IDS)
    np.testing.assert_allclose(rank1[:3], [1, 0, 0])
    np.testing.assert_allclose(ap[:3], [5 / 6, 5 / 12, 1 / 2])
    assert np.isnan(rank1[3]) and np.isnan(ap[3])
    # the ranking depends on directions only, not on the embeddings' lengths
    rank1_scaled, ap_scaled = ranking(QUERY * [[3], [0.1], [7], [1]], QUERY_IDS, GALLERY * 5, GALLERY_IDS, chunk=2)
    np.testing.assert_allclose(ap_scaled, ap)
    np.testing.assert_allclose(rank1_scaled, rank1)


def test_tied_similarities_count_as_a_random_order_of_the_tied_items():
    # A at 10 deg is exactly as close to g0 (A) as to g1 (B). A first: hits at 1, 3 -> AP 5/6;
    # B first: hits at 2, 3 -> AP (1/2 + 2/3) / 2 = 7/12. Expected: rank-1 1/2, AP 17/24.
    rank1, ap = ranking(_at(10), ["A"], GALLERY, GALLERY_IDS)
    assert rank1[0] == pytest.approx(0.5) and ap[0] == pytest.approx(17 / 24)
    # the storage order of the tied items changes nothing
    swap = [1, 0, 2, 3, 4]
    rank1_s, ap_s = ranking(_at(10), ["A"], GALLERY[swap], GALLERY_IDS[swap])
    assert rank1_s[0] == pytest.approx(0.5) and ap_s[0] == pytest.approx(17 / 24)


def test_tie_aware_ap_is_the_mean_over_every_order_of_the_ties():
    """One-hot 'probability' vectors tie whole classes: the tie-aware AP equals the brute-force
    average of the plain AP over all orders of the gallery consistent with the scores."""
    gallery = np.eye(3)[[0, 1, 0, 2, 1, 0]]
    g_ids = np.array([0, 1, 1, 2, 0, 0])
    query, q_id = np.array([[0.7, 0.3, 0.0]]), 0
    sim = gallery @ query[0]
    values = []
    for perm in itertools.permutations(range(len(g_ids))):
        if np.all(np.diff(sim[list(perm)]) <= 0):  # a ranking by descending similarity
            rel = g_ids[list(perm)] == q_id
            hits = np.flatnonzero(rel) + 1
            values.append((rel[0], np.mean(np.arange(1, len(hits) + 1) / hits)))
    rank1, ap = ranking(query, [q_id], gallery, g_ids)
    assert rank1[0] == pytest.approx(np.mean([v[0] for v in values]))
    assert ap[0] == pytest.approx(np.mean([v[1] for v in values]))


def test_average_precision_matches_scikit_learn_without_ties():
    rng = np.random.default_rng(2)
    query, gallery = rng.normal(size=(6, 5)), rng.normal(size=(40, 5))
    q_ids, g_ids = rng.integers(0, 4, 6), rng.integers(0, 4, 40)
    _, ap = ranking(query, q_ids, gallery, g_ids)
    sim = (query / np.linalg.norm(query, axis=1, keepdims=True)) @ (
        gallery / np.linalg.norm(gallery, axis=1, keepdims=True)).T
    np.testing.assert_allclose(ap, [average_precision_score(g_ids == i, s) for i, s in zip(q_ids, sim)])


def test_pair_auc_by_hand():
    # Angular distances (smaller = more similar) of the 15 pairs of q0-q2; P = same identity:
    #   q0: 5 P, 15, 35 P, 55, 85      q1: 48, 28 P, 8, 12, 42 P      q2: 100, 80, 60, 40 P, 10
    # The positive at 5 beats all 10 negatives; those at 28, 35, 40, 42 beat 6 each (48, 55, 60, 80,
    # 85, 100): AUC = (10 + 4 * 6) / (5 * 10) = 0.68.
    assert pair_auc(QUERY[:3], QUERY_IDS[:3], GALLERY, GALLERY_IDS) == pytest.approx(0.68)
    # weights (2, 0, 1): positives 5 and 35 count twice, 40 once (W+ = 5); negatives 15, 55, 85 twice,
    # 100, 80, 60, 10 once (W- = 10). 5 beats all (2 x 10); 35 and 40 beat 55, 85 (x2), 100, 80, 60
    # (7 each): (20 + 2 * 7 + 7) / 50 = 0.82.
    assert pair_auc(QUERY[:3], QUERY_IDS[:3], GALLERY, GALLERY_IDS, [2, 0, 1]) == pytest.approx(0.82)
    # a query with no positive still adds negative pairs: D at 30 deg adds 30, 10, 10, 30, 60. The
    # positive at 5 beats all 15 negatives, the one at 28 beats 6 + 3 (30, 30, 60), those at 35, 40
    # and 42 beat 6 + 1 (60): (15 + 9 + 3 * 7) / (5 * 15) = 0.6
    assert pair_auc(QUERY, QUERY_IDS, GALLERY, GALLERY_IDS) == pytest.approx(0.6)


def test_pair_auc_matches_scikit_learn_with_weights_as_repetition():
    rng = np.random.default_rng(0)
    query, gallery = rng.normal(size=(12, 4)), rng.normal(size=(30, 4))
    q_ids, g_ids = rng.integers(0, 5, 12), rng.integers(0, 5, 30)
    query[3] = query[4]  # identical queries: tied similarities across queries
    weights = rng.integers(0, 4, 12)
    sim = (query / np.linalg.norm(query, axis=1, keepdims=True)) @ (
        gallery / np.linalg.norm(gallery, axis=1, keepdims=True)).T
    same = q_ids[:, None] == g_ids[None, :]
    rows = np.repeat(np.arange(12), weights)  # a query drawn k times: its pairs k times
    expected = roc_auc_score(same[rows].ravel(), sim[rows].ravel())
    assert pair_auc(query, q_ids, gallery, g_ids, weights) == pytest.approx(expected)
    assert pair_auc(query, q_ids, gallery, g_ids) == pytest.approx(roc_auc_score(same.ravel(), sim.ravel()))
    # the quadratic-form version agrees, one resample or many at once
    auc = PairAuc(query, q_ids, gallery, g_ids)
    assert auc(weights) == pytest.approx(expected)
    many = rng.integers(0, 3, (5, 12))
    np.testing.assert_allclose(auc(many), [pair_auc(query, q_ids, gallery, g_ids, w) for w in many])


def test_chance_levels_by_hand():
    # valid queries q0-q2 have 2, 2 and 1 positives among 5: rank-1 chance (0.4 + 0.4 + 0.2) / 3
    assert rank1_chance(QUERY_IDS, GALLERY_IDS) == pytest.approx(1 / 3)
    # a random ranking of 5 with 1 positive: E[1 / rank] = H_5 / 5 = 137 / 300; with 2 positives at
    # ranks i < j, AP = (1/i + 2/j) / 2, averaged over the 10 position pairs = 0.5925
    two = np.mean([(1 / i + 2 / j) / 2 for i, j in itertools.combinations(range(1, 6), 2)])
    assert two == pytest.approx(0.5925)
    assert map_chance(QUERY_IDS, GALLERY_IDS) == pytest.approx((2 * 0.5925 + 137 / 300) / 3)
    # the seeded Monte Carlo estimate agrees with the exact value
    assert map_chance(QUERY_IDS, GALLERY_IDS, draws=4000, seed=1) == pytest.approx(
        map_chance(QUERY_IDS, GALLERY_IDS), abs=0.01)
    assert AUC_CHANCE == 0.5
    assert np.isnan(rank1_chance(["D"], GALLERY_IDS)) and np.isnan(map_chance(["D"], GALLERY_IDS))


def test_random_embeddings_score_chance_on_average():
    rng = np.random.default_rng(3)
    q_ids, g_ids = rng.integers(0, 6, 400), rng.integers(0, 6, 60)
    rank1, ap = ranking(rng.normal(size=(400, 8)), q_ids, rng.normal(size=(60, 8)), g_ids)
    assert np.nanmean(rank1) == pytest.approx(rank1_chance(q_ids, g_ids), abs=0.05)
    assert np.nanmean(ap) == pytest.approx(map_chance(q_ids, g_ids), abs=0.03)


def test_pool_by_track_is_the_tracks_normalised_geometric_mean():
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    pooled = pool_by_track(scores, np.array([7, 7, 3]))
    # track 7: sqrt(0.9 * 0.2) : sqrt(0.1 * 0.8) = 3 : 2 -> (0.6, 0.4); track 3 alone keeps its scores
    np.testing.assert_allclose(pooled, [[0.6, 0.4], [0.6, 0.4], [0.6, 0.4]], atol=1e-5)
    assert pooled.dtype == np.float32
    # evidence adds up in log odds: five crops at 0.3 : 0.7 (log odds -0.85 each, -4.2 in all)
    # outweigh one at 0.9 : 0.1 (+2.2), but not one at 0.99 : 0.01 (+4.6)
    votes = np.array([[0.9, 0.1]] + [[0.3, 0.7]] * 5)
    assert (pool_by_track(votes, np.zeros(6)).argmax(1) == 1).all()
    votes[0] = [0.99, 0.01]
    assert (pool_by_track(votes, np.zeros(6)).argmax(1) == 0).all()


def test_bad_input_is_a_veil_error():
    with pytest.raises(VeilError):
        ranking(QUERY, QUERY_IDS[:2], GALLERY, GALLERY_IDS)
    with pytest.raises(VeilError):
        pair_auc(QUERY, QUERY_IDS, GALLERY[:, :1], GALLERY_IDS)
    with pytest.raises(VeilError):
        pair_auc(QUERY, QUERY_IDS, GALLERY, GALLERY_IDS, [1, -1, 0, 0])
    with pytest.raises(VeilError):
        pool_by_track(np.array([[-1.0, 2.0]]), np.array([0]))
