"""The budget adversary's term in L_O (wu-2018 eq. 3) and the differentiable crops it is computed on."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align


def negative_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean over rows of sum_c p_c log p_c (0 for a one-hot prediction, -log C for uniform)."""
    logp = F.log_softmax(logits.float(), dim=1)
    return (logp.exp() * logp).sum(1).mean()


def ensemble_budget_loss(logits: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """wu-2018 eq. 3: the max over the ensemble of each model's negative entropy, and all of them."""
    each = torch.stack([negative_entropy(lg) for lg in logits])
    return each.max(), each


def cut(images: torch.Tensor, boxes: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
    """Differentiable crops of ``images`` at per-image xyxy ``boxes``, each resized to (h, w)."""
    rois = torch.cat([torch.cat([torch.full((len(b), 1), float(i)), b.float()], 1) for i, b in enumerate(boxes)])
    return roi_align(images.float(), rois.to(images.device), output_size=size, spatial_scale=1.0,
                     sampling_ratio=2, aligned=True)
