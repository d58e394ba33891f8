"""Benchmark: obfuscator vs detector latency per 640x480 frame on this CPU -> JSON.

    python bench/bench_edge.py [CHECKPOINT] [--onnx EXPORT.onnx] [--repeats 20] [--out bench/results/edge-cpu.json]

Same as `veil bench edge`. Without CHECKPOINT it times an untrained mobilenet_ae (latency
does not depend on the weights) and says so in the JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from veil.deployment.bench import bench_edge
from veil.io import write_json


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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or untrained_checkpoint(Path(tmp))
        result = bench_edge(checkpoint, repeats=args.repeats, warmup=args.warmup, progress=print, onnx=args.onnx)
    write_json(args.out, result)
    print(json.dumps({"latency": result["latency"], "ratio_to_detector": result["ratio_to_detector"],
                      "target": result["target"]}, indent=2))


if __name__ == "__main__":
    main()
