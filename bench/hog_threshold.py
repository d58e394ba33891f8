"""Choose the HOG detector's pseudo-label threshold on vtest -> JSON.

    python bench/hog_threshold.py [--every 20] [--out bench/results/hog-threshold.json]

HOG's pseudo-labels should be the people that are there. YOLOv8s (the shipped detector) finds far
more of vtest's pedestrians than HOG, so its pseudo-labels stand in for the truth: for each score
threshold, HOG's boxes at or above it are matched one-to-one to YOLO's (IoU >= 0.5, Hungarian) on
every ``every``-th frame of vtest at 640x480, and precision, recall and F1 are recorded. The
threshold with the best F1 is the adapter's ``pseudo_label_threshold``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torchvision.ops import box_iou

from veil.data.sources import vtest_path
from veil.data.video import read_video, resize
from veil.detectors import DETECTORS
from veil.io import write_json

THRESHOLDS = [0.5, 0.6, 0.65, 0.7, 0.73, 0.75, 0.8, 0.85, 0.9]


def matches(a: torch.Tensor, b: torch.Tensor, iou: float = 0.5) -> int:
    """One-to-one matches between box sets ``a`` and ``b`` with IoU >= ``iou``."""
    if len(a) == 0 or len(b) == 0:
        return 0
    overlap = box_iou(a.float(), b.float()).numpy()
    rows, cols = linear_sum_assignment(-overlap)
    return int((overlap[rows, cols] >= iou).sum())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--every", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "hog-threshold.json")
    args = parser.parse_args()
    frames = [resize(f.image, (640, 480)) for f in read_video(vtest_path()) if f.index % args.every == 0]
    images = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div(255)
    yolo, hog = DETECTORS.build("yolo"), DETECTORS.build("hog")
    reference = [d.boxes for s in range(0, len(images), 8)
                 for d in yolo.detect(images[s : s + 8], conf=yolo.pseudo_label_threshold)]
    start = time.perf_counter()
    found = [d for s in range(0, len(images), 4) for d in hog.detect(images[s : s + 4], conf=0.0)]
    seconds = (time.perf_counter() - start) / len(images)
    rows = []
    for t in THRESHOLDS:
        tp = sum(matches(d.boxes[d.scores >= t], r) for d, r in zip(found, reference))
        n_hog = sum(int((d.scores >= t).sum()) for d in found)
        n_ref = sum(len(r) for r in reference)
        precision, recall = tp / max(n_hog, 1), tp / max(n_ref, 1)
        f1 = 2 * tp / max(n_hog + n_ref, 1)
        rows.append({"threshold": t, "margin": float(np.log(t / (1 - t))), "hog_boxes": n_hog, "matched": tp,
                     "precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)})
        print(rows[-1])
    best = max(rows, key=lambda r: r["f1"])
    write_json(args.out, {
        "what": "HOG pseudo-label threshold against YOLOv8s pseudo-labels (IoU 0.5, one-to-one) on vtest 640x480",
        "frames": len(images), "every": args.every, "yolo_threshold": yolo.pseudo_label_threshold,
        "yolo_boxes": sum(len(r) for r in reference), "hog": hog.spec, "hog_seconds_per_frame": round(seconds, 3),
        "rows": rows, "best": best, "adapter_threshold": hog.pseudo_label_threshold,
        "torch_threads": torch.get_num_threads(),
    })
    print("best", best, "->", args.out)


if __name__ == "__main__":
    main()
