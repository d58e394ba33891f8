"""PASCAL VOC average precision (IoU 0.5, all-point interpolation), as in Cartucho et al.

Single class (person): every detection of every image is ranked by score; a detection is a
true positive when it overlaps a not-yet-matched ground-truth box with IoU >= threshold.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.ops import box_iou


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision envelope (VOC 2010+ all-point interpolation)."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    idx = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


def average_precision(
    detections: list[tuple[torch.Tensor, torch.Tensor]],
    ground_truth: list[torch.Tensor],
    iou_threshold: float = 0.5,
) -> float:
    """AP over images. ``detections[i] = (boxes (N, 4), scores (N,))``; ``ground_truth[i]`` (M, 4)."""
    if len(detections) != len(ground_truth):
        raise ValueError("one detection entry per ground-truth image is needed")
    n_gt = sum(len(g) for g in ground_truth)
    if n_gt == 0:
        return float("nan")
    scores, hits = [], []
    for (boxes, conf), gt in zip(detections, ground_truth):
        if len(boxes) == 0:
            continue
        order = torch.argsort(conf, descending=True)
        boxes, conf = boxes[order], conf[order]
        matched = torch.zeros(len(gt), dtype=torch.bool)
        iou = box_iou(boxes.float(), gt.float()) if len(gt) else torch.zeros(len(boxes), 0)
        for d in range(len(boxes)):
            hit = False
            if iou.shape[1]:
                best = int(torch.argmax(iou[d]))
                if iou[d, best] >= iou_threshold and not matched[best]:
                    matched[best] = hit = True
            scores.append(float(conf[d]))
            hits.append(hit)
    if not scores:
        return 0.0
    ranked = np.argsort(-np.asarray(scores), kind="stable")
    tp = np.asarray(hits, dtype=np.float64)[ranked]
    tp_cum, fp_cum = np.cumsum(tp), np.cumsum(1 - tp)
    return voc_ap(tp_cum / n_gt, tp_cum / np.maximum(tp_cum + fp_cum, np.finfo(np.float64).eps))
