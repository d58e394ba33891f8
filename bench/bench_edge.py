"""Benchmark: obfuscator vs detector latency per 640x480 frame on this CPU -> JSON.

    python bench/bench_edge.py [CHECKPOINT] [--onnx EXPORT.onnx] [--repeats 20] [--out bench/results/edge-cpu.json]
        [--design bottleneck --design "bottleneck:stride=16,latent=4" ...]

Same as `veil bench edge`, plus ``--design``: further obfuscators (untrained) timed in ONNX
Runtime against the same detector export, reported under ``designs``. Without CHECKPOINT it
times an untrained mobilenet_ae (latency does not depend on the weights) and says so in the
JSON. The detector runs in PyTorch and in ONNX Runtime; the target ratio (1/50) is on the
ONNX-to-ONNX figure at one thread.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from veil.deployment.bench import bench_edge
from veil.io import write_json
from veil.training.config import parse_arguments


def design(spec: str) -> tuple[str, dict]:
    """``NAME`` or ``NAME:key=value,key=value`` (values as ``--obfuscator-arg`` reads them)."""
    name, _, args = spec.partition(":")
    return name, parse_arguments([a for a in args.split(",") if a]) if args else {}


def untrained_checkpoint(folder: Path) -> Path:
    from veil.training.config import TrainConfig
    from veil.training.state import build_models, save_models

    config = TrainConfig()
    path = folder / "untrained.safetensors"
    save_models(path, config, *build_models(config), {"frame_size": [640, 480], "epoch": 0})
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint", nargs="?", type=Path)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--onnx", type=Path, help="an existing 'veil export --int8' of CHECKPOINT to time")
    parser.add_argument("--out", type=Path, default=Path("bench/results/edge-cpu.json"))
    parser.add_argument("--design", action="append", default=[], type=design,
                        help="NAME[:key=value,...]: another obfuscator to time against the detector's ONNX")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or untrained_checkpoint(Path(tmp))
        result = bench_edge(checkpoint, repeats=args.repeats, warmup=args.warmup, progress=print, onnx=args.onnx,
                            designs=args.design)
    if args.checkpoint is None:
        result["checkpoint"]["note"] = "untrained mobilenet_ae: latency does not depend on the weights"
    write_json(args.out, result)
    print(json.dumps({"ratio_to_detector": result["ratio_to_detector"],
                      "ratio_to_detector_onnx": result["ratio_to_detector_onnx"], "target": result["target"],
                      "designs": [{k: d[k] for k in ("obfuscator", "arguments", "gmacs_640x480",
                                                     "bits_per_frame_640x480", "ratio_to_detector_onnx")}
                                  for d in result.get("designs", [])]}, indent=2))


if __name__ == "__main__":
    main()
