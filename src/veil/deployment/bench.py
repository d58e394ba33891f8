"""``veil bench edge``: per-frame CPU latency of the obfuscator against the detector it serves.

The paper's edge table (de-coninck-2024 section 4.5): the obfuscator must cost the camera
far less than the detector costs the cloud. Everything runs on one real vtest frame at
640x480: the obfuscator in PyTorch and in ONNX Runtime (fp32 and int8), with 1 thread and
with all threads, and the detector on the same frame, in PyTorch and ALSO in ONNX Runtime
(its network exported with ``torch.onnx.export``, not Ultralytics' exporter, which may try to
pip-install packages; the raw network without NMS, checked against PyTorch's output), so the
ratio compares one runtime with itself. Latency is the median of ``repeats`` timed runs after
``warmup`` untimed ones. Target: obfuscator ONNX fp32 <= 1/50 of the detector ONNX fp32 at
one thread (``target``); the ratio to the PyTorch detector is kept as before.

:func:`bench_designs` times further obfuscator designs (untrained: latency does not depend on
the weights) the same way against the same detector export: ONNX fp32 at 1 and all threads,
MACs, parameters and the bound in bits per frame.
"""

from __future__ import annotations

import os
import platform
import tempfile
import warnings
from collections.abc import Callable
from functools import partial
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from torch import nn

from veil.data.sources import sha256
from veil.deployment.export import export_onnx, output_paths, vtest_frames
from veil.deployment.runtime import OnnxObfuscator, ort_session, stream_inputs, to_input
from veil.errors import VeilError
from veil.evaluation.cost import MAC_COUNTER, count_macs, median_ms, torch_threads
from veil.io import read_json
from veil.obfuscators.base import clip_length
from veil.training.state import load_models

FRAME_SIZE = (640, 480)
TARGET_RATIO = 1 / 50


class _RawNetwork(nn.Module):
    """The detector's network alone: frames in, its raw prediction tensor out (no NMS)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return out[0] if isinstance(out, (list, tuple)) else out


def export_detector(detector, path: Path, frame: torch.Tensor, opset: int = 17) -> dict:
    """Export ``detector``'s network at ``frame``'s size with ``torch.onnx.export`` (TorchScript
    tracing: a fixed-size graph, as a deployed detector runs) and check it against PyTorch."""
    net = _RawNetwork(detector.model).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (frame,), str(path), input_names=["images"], output_names=["predictions"],
                          opset_version=opset, dynamo=False)
        expected = net(frame).numpy()
    got = ort_session(path, 1).run(None, {"images": frame.numpy()})[0]
    if got.shape != expected.shape:
        raise VeilError(f"the detector's ONNX output {got.shape} differs from PyTorch's {expected.shape}")
    scale = float(np.abs(expected).max()) or 1.0
    return {"exporter": f"torch.onnx.export (TorchScript), opset {opset}, static {tuple(frame.shape)}",
            "graph": "the raw network, without NMS", "max_abs_diff_vs_pytorch": float(np.abs(got - expected).max()),
            "max_abs_value": scale, "bytes": path.stat().st_size}


def bench_edge(checkpoint: str | Path, repeats: int = 20, warmup: int = 3, detector=None,
               progress: Callable[[str], None] | None = None, onnx: str | Path | None = None,
               designs: list[tuple[str, dict]] | None = None, detector_weights: str | None = None) -> dict:
    """Latency table at 640x480 for ``checkpoint``'s obfuscator and ``detector`` (default: its own).

    ``onnx``: an existing ``veil export --int8`` of this checkpoint to time (else one is made).
    ``designs``: further (obfuscator name, arguments) to time against the same detector export
    (:func:`bench_designs`), reported under ``designs``.
    """
    say = progress or (lambda _line: None)
    checkpoint = Path(checkpoint)
    obfuscator, _, meta = load_models(checkpoint)
    if detector is None:
        from veil.detectors import build_recorded

        detector = build_recorded(meta["config"]["detector"], meta["config"].get("detector_weights"),
                                  detector_weights, f"the checkpoint {checkpoint}")
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
        say("exporting the detector's network to ONNX")
        detector_path = Path(tmp) / "detector.onnx"
        result["detector_onnx"] = export_detector(detector, detector_path, x_torch)
        feed = {"images": x_torch.numpy()}
        for label, n in threads.items():
            say(f"timing with {label.replace('_', ' ')}")
            with torch_threads(n), torch.inference_mode():
                row = {"obfuscator_pytorch": median_ms(lambda: obfuscator(x_obf), repeats, warmup)}
                for kind in ("fp32", "int8"):
                    model = OnnxObfuscator(paths[kind], threads=n)
                    row[f"obfuscator_onnx_{kind}"] = median_ms(partial(model.run, x), repeats, warmup)
                row["detector"] = median_ms(lambda: detector.detect(x_torch), repeats, warmup)
                session = ort_session(detector_path, n)
                row["detector_onnx_fp32"] = median_ms(partial(session.run, None, feed), repeats, warmup)
            result["latency"][label] = row
        if designs:
            result["designs"] = bench_designs(designs, result["latency"], frame, repeats, warmup, say)
    detector_macs, detector_params = count_macs(detector.model, FRAME_SIZE)
    result["detector"] = {"name": detector.name, "framework": f"PyTorch {torch.__version__}",
                          "parameters": detector_params, "gmacs_640x480": round(detector_macs / 1e9, 3)}
    # Load-independent: what the ratio would be if latency followed arithmetic alone.
    result["macs_ratio"] = round(card["model"]["macs_640x480"] / detector_macs, 4)
    obfuscator_rows = ("obfuscator_pytorch", "obfuscator_onnx_fp32", "obfuscator_onnx_int8")
    result["ratio_to_detector"] = {  # against the detector in PyTorch (the first release's table)
        label: {k: round(row[k]["median_ms"] / row["detector"]["median_ms"], 4) for k in obfuscator_rows}
        for label, row in result["latency"].items()
    }
    result["ratio_to_detector_onnx"] = {  # one runtime against itself: the figure the target is on
        label: {k: round(row[k]["median_ms"] / row["detector_onnx_fp32"]["median_ms"], 4)
                for k in ("obfuscator_onnx_fp32", "obfuscator_onnx_int8")}
        for label, row in result["latency"].items()
    }
    best = min(v for ratios in result["ratio_to_detector"].values() for v in ratios.values())
    one = result["ratio_to_detector"]["1_thread"]["obfuscator_onnx_fp32"]
    one_onnx = result["ratio_to_detector_onnx"]["1_thread"]["obfuscator_onnx_fp32"]
    result["target"] = {"ratio_max": TARGET_RATIO, "onnx_fp32_1_thread": one, "met_by_onnx_fp32_1_thread":
                        one <= TARGET_RATIO, "best_ratio": best, "met_by_best": best <= TARGET_RATIO,
                        "onnx_fp32_1_thread_vs_detector_onnx": one_onnx,
                        "met_by_onnx_fp32_1_thread_vs_detector_onnx": one_onnx <= TARGET_RATIO}
    result["machine"]["load_average_after"] = list(os.getloadavg())
    return result


def bench_designs(designs: list[tuple[str, dict]], latency: dict, frame: np.ndarray, repeats: int, warmup: int,
                  say: Callable[[str], None]) -> list[dict]:
    """ONNX fp32 latency of untrained obfuscator ``designs`` on ``frame`` (uint8 (1, H, W, 3)), at
    the thread counts of ``latency``, as a ratio to its ``detector_onnx_fp32`` rows (timed just
    before, on the same frame)."""
    from veil.deployment.export import export_onnx
    from veil.training.config import TrainConfig
    from veil.training.state import build_models, save_models

    out = []
    with tempfile.TemporaryDirectory(prefix="veil-bench-designs.") as tmp:
        for i, (name, args) in enumerate(designs):
            say(f"timing design {name} {args or ''}")
            config = TrainConfig(obfuscator=name, obfuscator_args=dict(args))
            obfuscator, _ = build_models(config)
            checkpoint, onnx_path = Path(tmp) / f"d{i}.safetensors", Path(tmp) / f"d{i}.onnx"
            save_models(checkpoint, config, obfuscator, None, {"frame_size": list(FRAME_SIZE), "epoch": 0})
            card = export_onnx(checkpoint, onnx_path)
            x = to_input(stream_inputs(frame, clip_length(obfuscator)))  # a temporal design gets the frame's clip
            row: dict = {"obfuscator": name, "arguments": dict(args), "trained": False,
                         "parameters": card["model"]["parameters"],
                         "gmacs_640x480": round(card["model"]["macs_640x480"] / 1e9, 4),
                         "bits_per_frame_640x480": card["bound"].get("bits_per_frame_640x480"),
                         "transmitted": card["model"]["transmitted"], "latency": {}, "ratio_to_detector_onnx": {}}
            for label in latency:
                n = int(label.split("_")[0])
                model = OnnxObfuscator(onnx_path, threads=n)
                timed = median_ms(partial(model.run, x), repeats, warmup)
                row["latency"][label] = {"obfuscator_onnx_fp32": timed}
                row["ratio_to_detector_onnx"][label] = round(
                    row["latency"][label]["obfuscator_onnx_fp32"]["median_ms"]
                    / latency[label]["detector_onnx_fp32"]["median_ms"], 4)
            row["met_target_1_thread"] = row["ratio_to_detector_onnx"]["1_thread"] <= TARGET_RATIO
            out.append(row)
    return out


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
