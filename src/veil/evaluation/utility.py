"""Utility of an obfuscator: person AP of the frozen detector against the pseudo-labels on
original, obfuscated and reconstructed frames, plus how much the frames still look alike.

A transform with ``clip`` > 1 (a temporal obfuscator, see ``veil.obfuscators.base``) gets each
frame's clip from the split: the frame and its predecessors, the split's first frame repeated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

from veil.data.dataset import FrameDataset, FrameSource, obfuscator_inputs
from veil.detectors import FrozenDetector
from veil.evaluation.ap import average_precision
from veil.obfuscators.base import clip_length

Transform = Callable[[torch.Tensor], torch.Tensor]


def _batches(dataset: FrameSource, transform: Transform | None, batch_size: int,
             device: str | torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """(frames, transform of those frames or None) per batch; a temporal transform gets clips."""
    length = clip_length(transform) if transform is not None else 1
    for start in range(0, len(dataset), batch_size):
        indices = list(range(start, min(start + batch_size, len(dataset))))
        inputs = obfuscator_inputs(dataset, indices, length)[0].to(device)
        frames = inputs[:, -1] if length > 1 else inputs
        yield frames, (transform(inputs).clamp(0, 1) if transform is not None else None)


@torch.no_grad()
def detection_ap(
    detector: FrozenDetector, dataset: FrameSource, transform: Transform | None = None,
    batch_size: int = 8, device: str | torch.device = "cpu",
) -> float:
    """Person AP (VOC, IoU 0.5) of ``detector`` on ``transform(frames)`` against the pseudo-labels."""
    dets = []
    for frames, out in _batches(dataset, transform, batch_size, device):
        dets += [(d.boxes.cpu(), d.scores.cpu()) for d in detector.detect(frames if out is None else out)]
    return average_precision(dets, [t.boxes for t in dataset.targets])


@torch.no_grad()
def image_similarity(
    dataset: FrameSource, transform: Transform, batch_size: int = 8, device: str | torch.device = "cpu"
) -> dict[str, float]:
    """Mean SSIM and PSNR between original frames and ``transform(frames)`` (data range 1)."""
    # imported here, not at the top: torchmetrics takes ~2 s to import, and veil train imports this module
    # for person AP only
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    ssim, psnr, n = 0.0, 0.0, 0
    for images, out in _batches(dataset, transform, batch_size, device):
        assert out is not None  # a transform is given, so every batch has its output
        for a, b in zip(out, images):
            # (typed Tensor | tuple: it is a tuple only with return_full_image / return_contrast_sensitivity)
            ssim += float(structural_similarity_index_measure(a[None], b[None], data_range=1.0))  # type: ignore[arg-type]
            psnr += float(peak_signal_noise_ratio(a[None], b[None], data_range=1.0))
            n += 1
    return {"ssim": ssim / max(n, 1), "psnr": psnr / max(n, 1)}


def evaluate_utility(
    detector: FrozenDetector, dataset: FrameDataset, obfuscator: torch.nn.Module,
    deobfuscator: torch.nn.Module | None = None, device: str | torch.device = "cpu",
) -> dict:
    """The paper's Table 1 figures for one split, plus SSIM/PSNR of obfuscation and reconstruction."""
    obfuscator.eval()
    result: dict[str, Any] = {"split_frames": len(dataset),
                              "pseudo_label_boxes": sum(len(t.boxes) for t in dataset.targets)}
    ap_orig = detection_ap(detector, dataset, None, device=device)
    ap_obf = detection_ap(detector, dataset, obfuscator, device=device)
    result["person_ap"] = {"original": ap_orig, "obfuscated": ap_obf}
    result["relative_ap"] = {"obfuscated": ap_obf / ap_orig if ap_orig > 0 else float("nan")}
    result["similarity_to_original"] = {"obfuscated": image_similarity(dataset, obfuscator, device=device)}
    if deobfuscator is not None:
        deobfuscator.eval()

        def reconstruct(x: torch.Tensor) -> torch.Tensor:
            return deobfuscator(obfuscator(x))

        # It takes O's input, so it has O's clip (a function attribute mypy cannot declare).
        reconstruct.clip = clip_length(obfuscator)  # type: ignore[attr-defined]

        ap_rec = detection_ap(detector, dataset, reconstruct, device=device)
        result["person_ap"]["reconstructed"] = ap_rec
        result["relative_ap"]["reconstructed"] = ap_rec / ap_orig if ap_orig > 0 else float("nan")
        result["similarity_to_original"]["reconstructed"] = image_similarity(dataset, reconstruct, device=device)
    return result
