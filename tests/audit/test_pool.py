"""Where attacker fits run changes nothing but the time: a pool of spawned worker processes gives
the figures that fitting inline gives (to float rounding), and the default pool follows the process's thread budget."""

from __future__ import annotations

import numpy as np
import pytest

from veil.audit.attacks import attack, attack_pool
from veil.audit.config import resolve
from veil.audit.frames import AuditFrames
from veil.audit.protocols import PROTOCOLS
from veil.evaluation.cost import torch_threads


def test_a_pool_of_workers_gives_the_inline_figures(dataset):
    # two seeds of one trained attacker: a fit for each of the two workers
    config = resolve("smoke", {"protocols": ("tracking",), "attackers": ("small_cnn",), "seeds": 2, "workers": 2})
    frames = AuditFrames.load(dataset, {"test": None})
    task = {"tracking": PROTOCOLS.build("tracking").identities(frames, config)}
    with attack_pool(config) as pool:
        assert pool is not None
        pooled = attack(frames.view.images, task, None, config, pool)
    with torch_threads(1), attack_pool(resolve(config, {"workers": 1})) as none:  # as each pool worker runs
        assert none is None
        inline = attack(frames.view.images, task, None, config, none)
    a, b = pooled.raw["tracking"], inline.raw["tracking"]
    assert set(a.pred) == set(b.pred) == {"small_cnn"}
    near_ties = 0
    for name in a.pred:
        for seed in range(2):
            # the same fit in another process: scores agree to float rounding (its summation order), so the
            # labels agree wherever the two best classes are further apart than that rounding
            sa, sb = a.scores[name][seed].test, b.scores[name][seed].test
            np.testing.assert_allclose(sa, sb, rtol=0, atol=1e-4)
            top2 = np.sort(sb, axis=1)[:, -2:]
            clear = top2[:, 1] - top2[:, 0] > 1e-4
            assert clear.mean() > 0.9
            near_ties += int((~clear).sum())
            np.testing.assert_array_equal(a.pred[name][seed][clear], b.pred[name][seed][clear])
    p, i = pooled.identity["tracking"], inline.identity["tracking"]
    # top-1 may differ only by the near-tied crops (none in the runs seen so far)
    assert p.worst_case.value == pytest.approx(i.worst_case.value, abs=near_ties / p.test_crops + 1e-9)
    for figure in p.figures:
        assert p.figures[figure].value == pytest.approx(i.figures[figure].value, abs=1e-3)


def test_the_default_pool_follows_the_thread_budget():
    with torch_threads(1), attack_pool(resolve("smoke")) as pool:  # one thread: no workers to start
        assert pool is None
