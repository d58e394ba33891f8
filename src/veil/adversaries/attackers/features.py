"""Hand-crafted colour and texture descriptors of person crops, for the classical attackers.

Person re-identification's classic recipe (e.g. LOMO, Liao et al. 2015; ELF, Gray & Tao 2008):
colour histograms and texture histograms pooled over horizontal stripes, so that "red top,
blue trousers" survives small misalignments. All functions take uint8 (N, 3, h, w) crops and
return float32 (N, D), batched where scikit-image allows it.
"""

from __future__ import annotations

import numpy as np


def _hwc(crops: np.ndarray) -> np.ndarray:
    """uint8 (N, 3, h, w) -> float (N, h, w, 3) in [0, 1]."""
    return crops.transpose(0, 2, 3, 1).astype(np.float32) / 255


def stripe_histograms(bins: np.ndarray, n_bins: int, stripes: int) -> np.ndarray:
    """Normalised histograms of integer bin indices (N, h, w) over ``stripes`` horizontal stripes."""
    n, h, w = bins.shape
    stripe = (np.arange(h) * stripes) // h  # row -> stripe
    flat = np.arange(n)[:, None, None] * (stripes * n_bins) + stripe[None, :, None] * n_bins + bins
    counts = np.bincount(flat.ravel(), minlength=n * stripes * n_bins).reshape(n, stripes, n_bins)
    return (counts / np.maximum(counts.sum(-1, keepdims=True), 1)).reshape(n, -1).astype(np.float32)


def hsv_histograms(crops: np.ndarray, stripes: int, bins: tuple[int, int, int] = (8, 3, 3)) -> np.ndarray:
    """Joint hue x saturation x value histograms of each stripe."""
    from skimage.color import rgb2hsv

    hsv = rgb2hsv(_hwc(crops))
    sizes = np.array(bins)
    idx = np.minimum((hsv * sizes).astype(np.int64), sizes - 1)
    joint = (idx[..., 0] * bins[1] + idx[..., 1]) * bins[2] + idx[..., 2]
    return stripe_histograms(joint, int(np.prod(bins)), stripes)


def lbp_histograms(crops: np.ndarray, stripes: int, points: int = 8, radius: float = 1) -> np.ndarray:
    """Rotation-invariant uniform local binary pattern histograms (points + 2 bins) of each stripe."""
    from skimage.color import rgb2gray
    from skimage.feature import local_binary_pattern

    grey = (rgb2gray(_hwc(crops)) * 255).astype(np.uint8)  # uint8: LBP compares exact equalities
    codes = np.stack([local_binary_pattern(g, points, radius, method="uniform") for g in grey])
    return stripe_histograms(codes.astype(np.int64), points + 2, stripes)


def colour_moments(crops: np.ndarray, stripes: int) -> np.ndarray:
    """Mean, standard deviation and skewness of the CIE Lab channels of each stripe."""
    from skimage.color import rgb2lab

    lab = rgb2lab(_hwc(crops))
    n, h = lab.shape[:2]
    out = []
    for rows in np.array_split(np.arange(h), stripes):
        px = lab[:, rows].reshape(n, -1, 3)
        mean = px.mean(1)
        std = px.std(1)
        skew = ((px - mean[:, None]) ** 3).mean(1) / np.maximum(std, 1e-3) ** 3
        out += [mean, std, np.cbrt(skew)]  # cube root: skewness has heavy tails
    return np.concatenate(out, 1).astype(np.float32)
