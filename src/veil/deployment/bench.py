"""``veil bench edge``: per-frame CPU latency of the obfuscator against the detector it serves.

The paper's edge table (de-coninck-2024 section 4.5): the obfuscator must cost the camera
far less than the detector costs the cloud. Everything runs on one real vtest frame at
640x480: the obfuscator in PyTorch and in ONNX Runtime (fp32 and int8), with 1 thread and
with all threads, and the detector (PyTorch) on the same frame. Latency is the median of
``repeats`` timed runs after ``warmup`` untimed ones. Target: obfuscator <= 1/50 of the
detector, compared at the same thread count.
"""

from __future__ import annotations

import os
import platform
import tempfile
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import torch

from veil.data.sources import sha256
from veil.deployment.export import export_onnx, output_paths, vtest_frames
from veil.deployment.runtime import OnnxObfuscator, stream_inputs, to_input
from veil.errors import VeilError
from veil.evaluation.cost import MAC_COUNTER, count_macs, median_ms
from veil.io import read_json
from veil.obfuscators.base import clip_length
from veil.training.state import load_models

FRAME_SIZE = (640, 480)
TARGET_RATIO = 1 / 50


def bench_edge(checkpoint: str | Path, repeats: int = 20, warmup: int = 3, detector=None,
               progress: Callable[[str], None] | None = None, onnx: str | Path | None = None) -> dict:
    """Latency table at 640x480 for ``checkpoint``'s obfuscator and ``detector`` (default: its own).

    ``onnx``: an existing ``veil export --int8`` of this checkpoint to time (else one is made).
    """
    say = progress or (lambda _line: None)
    checkpoint = Path(checkpoint)
    obfuscator, _, meta = load_models(checkpoint)
    if detector is None:
        from veil.detectors import DETECTORS

        weights = meta["config"].get("detector_weights")
        detector = DETECTORS.build(meta["config"]["detector"], **({"weights": weights} if weights else {}))
    detector.eval()
    frame = vtest_frames((100,), FRAME_SIZE)
    x_torch = torch.from_numpy(to_input(frame))  # the detector's input
    # the obfuscator's: a temporal one gets the frame's clip (the first frame repeated, as at a stream's start)
    x = to_input(stream_inputs(frame, clip_length(obfuscator)))
    x_obf = torch.from_numpy(x)
    cores = os.cpu_count() or 1
    threads = {"1_thread": 1, f"{cores}_threads": cores}
    result: dict = {
        "frame": f"vtest.avi frame 100 at {FRAME_SIZE[0]}x{FRAME_SIZE[1]}, batch 1",
        "checkpoint": {"file": str(checkpoint), "epoch": meta.get("epoch"),
                       "trained": bool(meta.get("epoch"))},
        "machine": _machine(),
        "latency": {},
    }
    with tempfile.TemporaryDirectory(prefix="veil-bench-edge.") as tmp:
        paths = output_paths(Path(onnx or Path(tmp) / "obfuscator.onnx"), int8=True)
        if onnx is None:
            say("exporting fp32 and int8 ONNX")
            card = export_onnx(checkpoint, paths["fp32"], int8=True)
        else:
            card = _matching_card(paths, checkpoint)
        result["onnx"] = str(onnx) if onnx else "exported for this run"
        result["obfuscator"] = {"parameters": card["model"]["parameters"],
                                "gmacs_640x480": round(card["model"]["macs_640x480"] / 1e9, 3),
                                "mac_counter": MAC_COUNTER}
        previous = torch.get_num_threads()
        try:
            for label, n in threads.items():
                torch.set_num_threads(n)
                say(f"timing with {label.replace('_', ' ')}")
                with torch.inference_mode():
                    row = {"obfuscator_pytorch": median_ms(lambda: obfuscator(x_obf), repeats, warmup)}
                    for kind in ("fp32", "int8"):
                        model = OnnxObfuscator(paths[kind], threads=n)
                        row[f"obfuscator_onnx_{kind}"] = median_ms(lambda m=model: m.run(x), repeats, warmup)
                    row["detector"] = median_ms(lambda: detector.detect(x_torch), repeats, warmup)
                result["latency"][label] = row
        finally:
            torch.set_num_threads(previous)
    detector_macs, detector_params = count_macs(detector.model, FRAME_SIZE)
    result["detector"] = {"name": detector.name, "framework": f"PyTorch {torch.__version__}",
                          "parameters": detector_params, "gmacs_640x480": round(detector_macs / 1e9, 3)}
    # Load-independent: what the ratio would be if latency followed arithmetic alone.
    result["macs_ratio"] = round(card["model"]["macs_640x480"] / detector_macs, 4)
    result["ratio_to_detector"] = {
        label: {k: round(v["median_ms"] / row["detector"]["median_ms"], 4)
                for k, v in row.items() if k != "detector"}
        for label, row in result["latency"].items()
    }
    best = min(v for ratios in result["ratio_to_detector"].values() for v in ratios.values())
    one = result["ratio_to_detector"]["1_thread"]["obfuscator_onnx_fp32"]
    result["target"] = {"ratio_max": TARGET_RATIO, "onnx_fp32_1_thread": one, "met_by_onnx_fp32_1_thread":
                        one <= TARGET_RATIO, "best_ratio": best, "met_by_best": best <= TARGET_RATIO}
    result["machine"]["load_average_after"] = list(os.getloadavg())
    return result


def _matching_card(paths: dict[str, Path], checkpoint: Path) -> dict:
    """The card of an existing export, which must be of ``checkpoint`` and include int8."""
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise VeilError(f"{missing[0]} not found: export with 'veil export --int8' first, or omit --onnx")
    card = read_json(paths["card"])
    if card.get("checkpoint", {}).get("sha256") != sha256(checkpoint):
        raise VeilError(f"{paths['fp32']} was not exported from {checkpoint} (its card names other weights)")
    return card


def _machine() -> dict:
    model = ""
    if Path("/proc/cpuinfo").is_file():
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "")
    return {"cpu": model or platform.processor(), "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "onnxruntime": version("onnxruntime"),
            # A shared machine: other processes' load skews the numbers, so it is recorded.
            "load_average_before": list(os.getloadavg())}
