"""The hand-crafted descriptors of the classical attackers measure what they claim."""

from __future__ import annotations

import numpy as np

from veil.adversaries.attackers.features import colour_moments, hsv_histograms, lbp_histograms


def _person(top: tuple[int, int, int], bottom: tuple[int, int, int]) -> np.ndarray:
    """One 24x48 crop: ``top`` colour over the upper half, ``bottom`` over the lower half."""
    x = np.zeros((1, 3, 48, 24), np.uint8)
    x[0, :, :24] = np.array(top)[:, None, None]
    x[0, :, 24:] = np.array(bottom)[:, None, None]
    return x


def test_hsv_histograms_are_per_stripe_and_put_colours_in_their_hue_bins():
    h = hsv_histograms(_person((220, 0, 0), (0, 0, 220)), stripes=2).reshape(2, 8, 3, 3)
    np.testing.assert_allclose(h.sum((1, 2, 3)), 1.0)  # one normalised histogram per stripe
    assert h[0, 0, 2, 2] == 1.0  # red: hue bin 0, saturated, bright
    assert h[1, 5, 2, 2] == 1.0  # blue: hue 2/3 -> bin 5


def test_lbp_histograms_tell_texture_from_flat():
    flat = _person((128, 128, 128), (128, 128, 128))
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 256, flat.shape).astype(np.uint8)
    f, n = lbp_histograms(flat, stripes=1), lbp_histograms(noisy, stripes=1)
    assert f.shape == n.shape == (1, 10)
    # one code on flat cloth (but for the border, which LBP compares with zeros), spread on texture
    assert f[0].max() > 0.8 and n[0].max() < 0.5


def test_colour_moments_of_a_uniform_stripe():
    m = colour_moments(_person((255, 255, 255), (0, 0, 0)), stripes=2).reshape(2, 3, 3)  # stripe, moment, channel
    assert m[0, 0, 0] > 99 and m[1, 0, 0] < 1  # L* of white ~100, of black ~0
    np.testing.assert_allclose(m[:, 1:], 0, atol=1e-3)  # no spread, no skew
