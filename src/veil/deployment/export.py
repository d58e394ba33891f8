"""``veil export``: a trained obfuscator as an ONNX model for the camera, with a model card.

:func:`export_onnx` writes, beside each other::

    OUT.onnx          fp32, opset >= 17; dynamic batch, height and width
    OUT.int8.onnx     optional: static QDQ int8 (onnxruntime.quantization), calibrated on real frames
    OUT.card.json     the model card: parameters, MACs at 640x480 (ptflops), input contract,
                      training config, the detector it was trained for, SHA-256 of every file,
                      the PyTorch-vs-ONNX max abs diff on real vtest frames, int8's relative AP

Input contract of both models: ``frames``, float32 RGB in [0, 1], NCHW, any batch and any
height/width >= 1 (the graph pads each side to a multiple of 8, the encoder's stride, by
edge replication and crops the output back), but frames should be resized to the card's
``input.trained_frame_size``: the detector scale the obfuscator was trained at. Output:
``obfuscated``, the same shape and range. A temporal obfuscator (``input.clip`` T > 1) takes
clips ``(N, T, 3, H, W)``, the frame to obfuscate last, and returns ``(N, 3, H, W)``. Part
of the pipeline that runs on a camera: :func:`veil.deployment.runtime.load_onnx_obfuscator`
(re-exported here) wraps either model as a callable on uint8 ``HxWx3`` RGB frames (streaming
the previous frames a temporal model needs).

Every file is written to a temporary file and renamed into place; existing outputs are
refused unless ``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from torch import nn

import veil
from veil.data.sources import sha256, vtest_path
from veil.data.video import read_video, resize
from veil.deployment.runtime import (
    INPUT_NAME,
    OUTPUT_NAME,
    OnnxObfuscator,
    load_onnx_obfuscator,
    stream_inputs,
    to_input,
)
from veil.errors import VeilError
from veil.evaluation.cost import MAC_COUNTER, count_macs
from veil.io import atomic_path, write_json
from veil.obfuscators.base import clip_length
from veil.training.config import TrainConfig
from veil.training.state import load_models

__all__ = ["count_macs", "export_onnx", "load_onnx_obfuscator", "output_paths", "vtest_frames"]

DEFAULT_OPSET = 18  # the dynamo exporter's native opset; it cannot down-convert Pad to 17
PARITY_TOLERANCE = 1e-4  # float32 outputs in [0, 1]; a correct export differs by ~1e-7
MAC_SIZE = (640, 480)
# vtest frame indices: verification and calibration use different frames of the real clip.
VERIFY_FRAMES = (75, 275, 475, 675)
CALIBRATION_FRAMES = (0, 100, 200, 300, 400, 500, 600, 700)

Progress = Callable[[str], None]


def output_paths(out: str | Path, int8: bool = False) -> dict[str, Path]:
    """The files :func:`export_onnx` writes for ``out`` (``fp32``, ``card`` and maybe ``int8``)."""
    out = Path(out)
    stem = out.with_suffix("")
    paths = {"fp32": out, "card": Path(f"{stem}.card.json")}
    if int8:
        paths["int8"] = Path(f"{stem}.int8.onnx")
    return paths


def vtest_frames(indices: tuple[int, ...], size: tuple[int, int]) -> np.ndarray:
    """Frames ``indices`` of the real vtest clip, resized to ``size``: uint8 ``(N, H, W, 3)`` RGB."""
    wanted = set(indices)
    decoded = itertools.takewhile(lambda f: f.index <= max(indices), read_video(vtest_path()))
    frames = [resize(f.image, size) for f in decoded if f.index in wanted]
    if len(frames) != len(indices):
        raise VeilError(f"vtest has fewer frames than expected ({len(frames)} of {len(indices)})")
    return np.stack(frames)


def export_onnx(
    checkpoint: str | Path,
    out: str | Path,
    opset: int = DEFAULT_OPSET,
    int8: bool = False,
    overwrite: bool = False,
    dataset: str | Path | None = None,
    detector=None,
    split: str = "test",
    progress: Progress | None = None,
) -> dict:
    """Export the obfuscator of ``checkpoint`` to ``out`` (.onnx) and return its model card.

    With ``int8``, also writes the static-QDQ int8 model, calibrated on ``dataset``'s train
    frames (or on real vtest frames without a dataset). With ``dataset``, the card carries the
    relative person AP of the fp32 and int8 models on its ``split``, measured with ``detector``
    (default: the detector the checkpoint was trained against).
    """
    say = progress or (lambda _line: None)
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise VeilError(f"the export must be an .onnx file, got {out}")
    if opset < 17:
        raise VeilError(f"opset {opset} is too old: the export needs opset 17 or later")
    paths = output_paths(out, int8)
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise VeilError(f"{', '.join(existing)} already exists (pass --overwrite to replace it)")
    checkpoint = Path(checkpoint)
    obfuscator, _, meta = load_models(checkpoint)
    config = meta["config"]
    frame_size = tuple(meta.get("frame_size") or MAC_SIZE)
    data = _dataset(dataset, split) if dataset is not None else None

    card: dict = {
        "format": "veil-model-card",
        "veil_version": veil.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": _model_stats(obfuscator, TrainConfig.from_dict(config)),
        "input": _input_contract(obfuscator, frame_size),
        "output": {"name": OUTPUT_NAME, "layout": "NCHW", "dtype": "float32", "color": "RGB", "range": [0, 1],
                   "shape": "same as the input"},
        "training": {"config": config, "epoch": meta.get("epoch"), "frame_size": list(frame_size)},
        "detector": {"name": config.get("detector"), "weights": config.get("detector_weights"),
                     "id": meta.get("detector")},
        "checkpoint": {"file": checkpoint.name, "sha256": sha256(checkpoint)},
        "files": {},
    }
    verify = vtest_frames(VERIFY_FRAMES, frame_size)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp_dir:
        tmp = Path(tmp_dir)
        say("exporting to ONNX")
        _torch_export(obfuscator, tmp / "fp32.onnx", opset, frame_size, card)
        say("verifying against PyTorch on real vtest frames")
        card["parity"] = _parity(obfuscator, tmp / "fp32.onnx", verify)
        if int8:
            say("quantising to int8")
            calib, calib_source = _calibration_frames(data, dataset, frame_size)
            card["int8"] = _quantize(tmp / "fp32.onnx", tmp, calib, verify, clip_length(obfuscator))
            card["int8"]["calibration"] = calib_source
        if data is not None:
            say(f"measuring person AP on {len(data)} {split} frames")
            card["utility"] = _utility(data, dataset, split, tmp, int8, config, detector)
        for kind in ("fp32", "int8") if int8 else ("fp32",):
            with atomic_path(paths[kind]) as target:
                target.write_bytes((tmp / f"{kind}.onnx").read_bytes())
            card["files"][kind] = _file_entry(paths[kind])
    write_json(paths["card"], card)
    return card


def _dataset(dataset: str | Path, split: str):
    from veil.data.dataset import FrameDataset

    data = FrameDataset(dataset, split)
    if len(data) == 0:
        raise VeilError(f"the {split} split of {dataset} is empty: nothing to measure AP on")
    return data


def _model_stats(obfuscator: nn.Module, config: TrainConfig) -> dict:
    macs, params = count_macs(obfuscator)
    return {"architecture": config.obfuscator, "arguments": config.obfuscator_args,
            "clip": clip_length(obfuscator),
            "transmitted": getattr(obfuscator, "transmitted", "the obfuscator's output image"),
            "attacked": getattr(obfuscator, "attacked", "the obfuscator's output image"),
            "parameters": params, "macs_640x480": macs, "mac_counter": MAC_COUNTER}


def _input_contract(obfuscator: nn.Module, frame_size: tuple[int, int]) -> dict:
    stride = int(getattr(obfuscator, "stride", 1))
    length = clip_length(obfuscator)
    clip = {"layout": "NCHW", "clip": 1} if length == 1 else {
        "layout": "NTCHW", "clip": length,
        "clips": f"each input is {length} consecutive frames at the training data's fps, the frame to obfuscate "
                 "last; at a stream's start the first frame is repeated (load_onnx_obfuscator does this)"}
    return {
        "name": INPUT_NAME, **clip, "dtype": "float32", "color": "RGB", "range": [0, 1],
        "batch": "dynamic", "height": "dynamic, >= 1", "width": "dynamic, >= 1",
        "padding": f"each side is padded to a multiple of {stride} by edge replication inside the graph, "
                   "and the output is cropped back to the input size",
        "trained_frame_size": list(frame_size),
        "note": "resize frames to trained_frame_size (width, height) first: the obfuscator was trained at the "
                "detector's scale",
    }


def _torch_export(obfuscator: nn.Module, path: Path, opset: int, frame_size: tuple[int, int], card: dict) -> None:
    import onnx

    w, h = frame_size
    length = clip_length(obfuscator)
    lead = 0 if length == 1 else 1  # a temporal obfuscator's input has the clip axis after the batch
    dims = {0: torch.export.Dim("batch"), 2 + lead: torch.export.Dim("height"), 3 + lead: torch.export.Dim("width")}
    example = torch.zeros(2, 3, h, w) if length == 1 else torch.zeros(2, length, 3, h, w)
    with warnings.catch_warnings(), _quiet_logs():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(obfuscator, (example,), None, input_names=[INPUT_NAME],
                                    output_names=[OUTPUT_NAME], opset_version=opset, dynamic_shapes=(dims,),
                                    dynamo=True, verbose=False)
    program.save(str(path), external_data=False)
    model = onnx.load(str(path))
    # The exporter names the output dims by their symbolic formula; they equal the input's.
    for dim, name in zip(model.graph.output[0].type.tensor_type.shape.dim, ("batch", None, "height", "width")):
        if name:
            dim.dim_param = name
    model.doc_string = ("Veil obfuscator: RGB float [0, 1] NCHW in, obfuscated frames of the same shape out"
                        if length == 1 else f"Veil temporal obfuscator: RGB float [0, 1] clips (N, {length}, 3, H, W) "
                        "in, the frame to obfuscate last; obfuscated frames (N, 3, H, W) out")
    props = {"veil_version": veil.__version__, "checkpoint_sha256": card["checkpoint"]["sha256"]}
    onnx.helper.set_model_props(model, props)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    card["opset"] = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if card["opset"] < 17:
        raise VeilError(f"the exporter wrote opset {card['opset']}, below the 17 asked for")


def _parity(obfuscator: nn.Module, path: Path, frames: np.ndarray) -> dict:
    """Max abs diff between PyTorch and ONNX Runtime on real frames, a batch and an odd size."""
    model = OnnxObfuscator(path)
    h, w = frames.shape[1:3]
    odd = np.stack([resize(frames[0], (w - 3, h - 5))])  # not a multiple of the stride: pad and crop
    cases = {f"batch {len(frames)} at {w}x{h}": frames, f"batch 1 at {w - 3}x{h - 5}": odd}
    diffs = {}
    for name, batch in cases.items():
        x = to_input(stream_inputs(batch, clip_length(obfuscator)))
        with torch.no_grad():
            expected = obfuscator(torch.from_numpy(x)).numpy()
        got = model.run(x)
        if got.shape != expected.shape:
            raise VeilError(f"ONNX output shape {got.shape} differs from PyTorch's {expected.shape} ({name})")
        diffs[name] = float(np.abs(got - expected).max())
    worst = max(diffs.values())
    if worst > PARITY_TOLERANCE:
        raise VeilError(f"the ONNX export differs from PyTorch by {worst:.2e} (tolerance {PARITY_TOLERANCE:.0e})")
    return {"frames": f"vtest.avi frames {list(VERIFY_FRAMES)}", "max_abs_diff": worst, "per_case": diffs,
            "tolerance": PARITY_TOLERANCE}


def _calibration_frames(data, dataset, frame_size: tuple[int, int]) -> tuple[np.ndarray, str]:
    if data is not None:
        from veil.data.dataset import FrameDataset

        train = FrameDataset(dataset, "train")
        if len(train):
            picks = np.linspace(0, len(train) - 1, num=min(8, len(train))).round().astype(int)
            images = train.images[list(picks)].permute(0, 2, 3, 1).numpy()
            return images, f"{len(picks)} frames of the train split of {Path(dataset).name}"
    return vtest_frames(CALIBRATION_FRAMES, frame_size), f"vtest.avi frames {list(CALIBRATION_FRAMES)}"


def _quantize(fp32: Path, tmp: Path, calibration: np.ndarray, verify: np.ndarray, length: int = 1) -> dict:
    """Static QDQ quantisation: int8 per-channel weights, uint8 activations, MinMax calibration.

    Static beats dynamic here: dynamic quantisation turns convolutions into ConvInteger with
    activations re-quantised per call, which ran slower than fp32 on this conv-only network.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{INPUT_NAME: to_input(c[None])} for c in stream_inputs(calibration, length)])

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    with _quiet_logs():
        quant_pre_process(str(fp32), str(tmp / "pre.onnx"))
        quantize_static(str(tmp / "pre.onnx"), str(tmp / "int8.onnx"), Frames(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    x = to_input(stream_inputs(verify, length))
    diff = float(np.abs(OnnxObfuscator(tmp / "int8.onnx").run(x) - OnnxObfuscator(fp32).run(x)).max())
    return {"method": "onnxruntime static QDQ: per-channel int8 weights, uint8 activations, MinMax calibration",
            "max_abs_diff_vs_fp32": diff, "max_abs_diff_frames": f"vtest.avi frames {list(VERIFY_FRAMES)}"}


def _utility(data, dataset, split: str, tmp: Path, int8: bool, config: dict, detector) -> dict:
    """Person AP of the detector on original, ONNX fp32 and int8 obfuscated frames (pseudo-labels)."""
    from veil.evaluation.utility import detection_ap

    if detector is None:
        from veil.detectors import DETECTORS

        weights = config.get("detector_weights")
        detector = DETECTORS.build(config["detector"], **({"weights": weights} if weights else {}))
    start = time.time()
    ap = {"original": detection_ap(detector, data)}
    for kind in ("fp32", "int8") if int8 else ("fp32",):
        model = OnnxObfuscator(tmp / f"{kind}.onnx")

        def run(x: torch.Tensor, m: OnnxObfuscator = model) -> torch.Tensor:
            return torch.from_numpy(m.run(x.numpy()))

        run.clip = model.clip  # type: ignore[attr-defined]  (detection_ap hands a temporal model clips)
        ap[f"onnx_{kind}"] = detection_ap(detector, data, run)
    base = ap["original"]
    relative = {k: (v / base if base > 0 else float("nan")) for k, v in ap.items() if k != "original"}
    result = {"dataset": Path(dataset).name, "split": split, "frames": len(data),
              "pseudo_label_boxes": sum(len(t.boxes) for t in data.targets), "detector": detector.name,
              "person_ap": ap, "relative_ap": relative, "seconds": round(time.time() - start, 1)}
    if int8:
        result["int8_relative_ap_cost"] = relative["onnx_fp32"] - relative["onnx_int8"]
    return result


def _file_entry(path: Path) -> dict:
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": sha256(path)}


@contextlib.contextmanager
def _quiet_logs():
    """Silence the exporter's and the quantiser's chatter (progress lines, shape-inference notes)."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "root", "")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
