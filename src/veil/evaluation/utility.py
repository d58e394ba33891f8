"""Utility of an obfuscator: person AP of the frozen detector against the pseudo-labels on
original, obfuscated and reconstructed frames, plus how much the frames still look alike."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from veil.data.dataset import FrameDataset
from veil.detectors import FrozenDetector
from veil.evaluation.ap import average_precision

Transform = Callable[[torch.Tensor], torch.Tensor]


@torch.no_grad()
def detection_ap(
    detector: FrozenDetector, dataset: FrameDataset, transform: Transform | None = None,
    batch_size: int = 8, device: str | torch.device = "cpu",
) -> float:
    """Person AP (VOC, IoU 0.5) of ``detector`` on ``transform(frames)`` against the pseudo-labels."""
    dets = []
    for start in range(0, len(dataset), batch_size):
        images, _ = dataset.batch(list(range(start, min(start + batch_size, len(dataset)))))
        images = images.to(device)
        if transform is not None:
            images = transform(images).clamp(0, 1)
        dets += [(d.boxes.cpu(), d.scores.cpu()) for d in detector.detect(images)]
    return average_precision(dets, [t.boxes for t in dataset.targets])


@torch.no_grad()
def image_similarity(
    dataset: FrameDataset, transform: Transform, batch_size: int = 8, device: str | torch.device = "cpu"
) -> dict[str, float]:
    """Mean SSIM and PSNR between original frames and ``transform(frames)`` (data range 1)."""
    ssim, psnr, n = 0.0, 0.0, 0
    for start in range(0, len(dataset), batch_size):
        images, _ = dataset.batch(list(range(start, min(start + batch_size, len(dataset)))))
        images = images.to(device)
        out = transform(images).clamp(0, 1)
        for a, b in zip(out, images):
            ssim += float(structural_similarity_index_measure(a[None], b[None], data_range=1.0))
            psnr += float(peak_signal_noise_ratio(a[None], b[None], data_range=1.0))
            n += 1
    return {"ssim": ssim / max(n, 1), "psnr": psnr / max(n, 1)}


def evaluate_utility(
    detector: FrozenDetector, dataset: FrameDataset, obfuscator: torch.nn.Module,
    deobfuscator: torch.nn.Module | None = None, device: str | torch.device = "cpu",
) -> dict:
    """The paper's Table 1 figures for one split, plus SSIM/PSNR of obfuscation and reconstruction."""
    obfuscator.eval()
    result = {"split_frames": len(dataset), "pseudo_label_boxes": sum(len(t.boxes) for t in dataset.targets)}
    ap_orig = detection_ap(detector, dataset, None, device=device)
    ap_obf = detection_ap(detector, dataset, obfuscator, device=device)
    result["person_ap"] = {"original": ap_orig, "obfuscated": ap_obf}
    result["relative_ap"] = {"obfuscated": ap_obf / ap_orig if ap_orig > 0 else float("nan")}
    result["similarity_to_original"] = {"obfuscated": image_similarity(dataset, obfuscator, device=device)}
    if deobfuscator is not None:
        deobfuscator.eval()

        def reconstruct(x: torch.Tensor) -> torch.Tensor:
            return deobfuscator(obfuscator(x))

        ap_rec = detection_ap(detector, dataset, reconstruct, device=device)
        result["person_ap"]["reconstructed"] = ap_rec
        result["relative_ap"]["reconstructed"] = ap_rec / ap_orig if ap_orig > 0 else float("nan")
        result["similarity_to_original"]["reconstructed"] = image_similarity(dataset, reconstruct, device=device)
    return result
