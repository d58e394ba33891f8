"""Benchmark: training-step time, obfuscator latency per frame, parameters and MACs -> JSON.

    python bench/bench_train.py [--device cpu|cuda] [--out bench/results/train-<device>.json]

Uses random frames at the demo's scale (640x480, 320 px training crops) and the real
YOLOv8s detector, so the numbers are those of `veil train --preset cpu`.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from veil.detectors import DETECTORS, Target
from veil.io import write_json
from veil.training.config import TrainConfig
from veil.training.state import build_models


def timed(fn, repeat: int, sync) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeat):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--crop", type=int, default=320)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.manual_seed(0)

    config = TrainConfig()
    obfuscator, deobfuscator = (m.to(device) for m in build_models(config))
    detector = DETECTORS.build("yolo").to(device)
    opt_o = torch.optim.AdamW(obfuscator.parameters(), lr=1e-3)
    opt_d = torch.optim.AdamW(deobfuscator.parameters(), lr=1e-3)
    x = torch.rand(args.batch, 3, args.crop, args.crop, device=device)
    targets = [Target(torch.tensor([[60.0, 40.0, 110.0, 200.0]]), torch.tensor([0])) for _ in range(args.batch)]

    def step() -> None:
        with torch.no_grad():
            z = obfuscator(x)
        loss_d = torch.nn.functional.mse_loss(deobfuscator(z), x)
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        z = obfuscator(x)
        loss = detector.loss(z, targets) - torch.nn.functional.mse_loss(deobfuscator(z), x)
        opt_o.zero_grad()
        loss.backward()
        opt_o.step()

    step_times = timed(step, args.repeat, sync)
    obfuscator.eval()
    frame = torch.rand(1, 3, 480, 640, device=device)
    with torch.no_grad():
        latency = timed(lambda: obfuscator(frame), args.repeat * 4, sync)

    macs = None
    try:
        from ptflops import get_model_complexity_info

        macs, _ = get_model_complexity_info(obfuscator.cpu(), (3, 480, 640), as_strings=False,
                                            print_per_layer_stat=False, verbose=False)
    except ImportError:
        pass
    result = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor()
        or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "train_step": {"batch": args.batch, "crop": args.crop, "median_s": statistics.median(step_times),
                       "all_s": step_times},
        "obfuscator_latency_640x480": {"median_ms": 1000 * statistics.median(latency),
                                       "p90_ms": 1000 * sorted(latency)[int(0.9 * (len(latency) - 1))]},
        "obfuscator_params": sum(p.numel() for p in obfuscator.parameters()),
        "deobfuscator_params": sum(p.numel() for p in deobfuscator.parameters()),
        "detector_params": sum(p.numel() for p in detector.parameters()),
        "obfuscator_macs_640x480": macs,
    }
    out = args.out or Path(__file__).parent / "results" / f"train-{device.type}.json"
    write_json(out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
