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

The card's ``bound`` states, for an obfuscator whose output is a function of a quantised
latent (``bottleneck``, ``mobilenet_ae`` with ``levels``, ``lowres``, ``bdq``), the bits per
frame that output can carry (latent values x log2 levels) at the trained frame size and at
640x480. For a quantised latent the parity check also compares the latent itself, level for
level, through a second (unshipped) export of the encoder; a model with latent noise is
checked with the noise off.

:func:`export_baseline` writes a plain baseline transform (``grey``, ``downsample``, ...) the
same way, so the edge runtime runs it exactly like a learned obfuscator.

Every file is written to a temporary file and renamed into place; existing outputs are
refused unless ``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import itertools
import logging
import math
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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

__all__ = ["count_macs", "export_baseline", "export_onnx", "load_onnx_obfuscator", "output_paths", "vtest_frames"]

DEFAULT_OPSET = 18  # the dynamo exporter's native opset; it cannot down-convert Pad to 17
PARITY_TOLERANCE = 1e-4  # float32 outputs in [0, 1]; a correct export differs by ~1e-7
# A latent value this close to a rounding boundary (in units of one level) may round either way
# in two runtimes whose convolutions add in different orders; no other value may differ.
BOUNDARY_TOLERANCE = 1e-4
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
    detector_weights: str | None = None,
) -> dict:
    """Export the obfuscator of ``checkpoint`` to ``out`` (.onnx) and return its model card.

    With ``int8``, also writes the static-QDQ int8 model, calibrated on ``dataset``'s train
    frames (or on real vtest frames without a dataset). With ``dataset``, the card carries the
    relative person AP of the fp32 and int8 models on its ``split``, measured with ``detector``
    (default: the detector the checkpoint was trained against; a weights file it records is
    loaded only when passed again as ``detector_weights``, see :mod:`veil.detectors.recorded`).
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
    verify = vtest_frames(VERIFY_FRAMES, frame_size)

    card: dict = {
        "format": "veil-model-card",
        "veil_version": veil.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": _model_stats(obfuscator, TrainConfig.from_dict(config)),
        "bound": _bound(obfuscator, frame_size, verify),
        "input": _input_contract(obfuscator, frame_size),
        "output": {"name": OUTPUT_NAME, "layout": "NCHW", "dtype": "float32", "color": "RGB", "range": [0, 1],
                   "shape": "same as the input"},
        "training": {"config": config, "epoch": meta.get("epoch"), "frame_size": list(frame_size)},
        "detector": {"name": config.get("detector"), "weights": config.get("detector_weights"),
                     "id": meta.get("detector")},
        "checkpoint": {"file": checkpoint.name, "sha256": sha256(checkpoint)},
        "files": {},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp_dir:
        tmp = Path(tmp_dir)
        say("exporting to ONNX")
        props = {"veil_version": veil.__version__, "checkpoint_sha256": card["checkpoint"]["sha256"]}
        _torch_export(obfuscator, tmp / "fp32.onnx", opset, frame_size, card, props)
        say("verifying against PyTorch on real vtest frames")
        card["parity"] = _verify(obfuscator, tmp, opset, frame_size, verify)
        if int8:
            say("quantising to int8")
            calib, calib_source = _calibration_frames(data, dataset, frame_size)
            card["int8"] = _quantize(tmp / "fp32.onnx", tmp, calib, verify, clip_length(obfuscator))
            card["int8"]["calibration"] = calib_source
        if data is not None:
            say(f"measuring person AP on {len(data)} {split} frames")
            card["utility"] = _utility(data, dataset, split, tmp, int8, config, detector, detector_weights)
        for kind in ("fp32", "int8") if int8 else ("fp32",):
            with atomic_path(paths[kind]) as target:
                target.write_bytes((tmp / f"{kind}.onnx").read_bytes())
            card["files"][kind] = _file_entry(paths[kind])
    write_json(paths["card"], card)
    return card


def export_baseline(
    name: str,
    out: str | Path,
    strength: float | None = None,
    opset: int = DEFAULT_OPSET,
    overwrite: bool = False,
    frame_size: tuple[int, int] = MAC_SIZE,
    dataset: str | Path | None = None,
    detector=None,
    split: str = "test",
    progress: Progress | None = None,
    detector_weights: str | None = None,
) -> dict:
    """Export the plain baseline ``name`` at ``strength`` (default: its own) to ``out`` (.onnx)
    with a model card, as :func:`export_onnx` does for a checkpoint: the same input and output
    contract, so the edge runtime runs it exactly like a learned obfuscator.

    ``frame_size`` is the size cameras should resize to (the card's ``trained_frame_size``);
    with ``dataset``, the card carries the relative person AP on its ``split`` (the dataset's
    detector unless ``detector`` is given).
    """
    from veil.obfuscators.baselines import BASELINES

    say = progress or (lambda _line: None)
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise VeilError(f"the export must be an .onnx file, got {out}")
    if opset < 17:
        raise VeilError(f"opset {opset} is too old: the export needs opset 17 or later")
    if name not in BASELINES:
        raise VeilError(f"unknown baseline {name!r} (known: {', '.join(BASELINES.names())})")
    baseline = BASELINES.build(name)
    if strength is not None:
        baseline = baseline.with_strength(baseline.snap(strength))
    module = baseline.module().eval()  # a VeilError for baselines that need a detector or random draws
    paths = output_paths(out)
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise VeilError(f"{', '.join(existing)} already exists (pass --overwrite to replace it)")
    data = _dataset(dataset, split) if dataset is not None else None
    macs, params = count_macs(module)
    factor = max(int(getattr(m, "factor", 1)) for m in module.modules())  # a downsampling pads to its factor
    card: dict = {
        "format": "veil-model-card",
        "veil_version": veil.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": {"architecture": f"baseline:{name}", "baseline": baseline.describe(), "clip": 1,
                  "transmitted": f"the {name} baseline's output image at strength {baseline.strength:g}",
                  "attacked": f"the {name} baseline's output image", "parameters": params, "macs_640x480": macs,
                  "mac_counter": MAC_COUNTER},
        "bound": {"bits_per_frame": None, "statement": "no bound in bits: a plain transform, not a quantised latent"},
        "input": {**_input_contract(module, frame_size), "padding": (
            f"each side is padded to a multiple of {factor} by edge replication inside the graph, and the output "
            "is cropped back to the input size" if factor > 1 else "none"),
            "note": "resize frames to trained_frame_size (width, height) first: the detector's scale"},
        "output": {"name": OUTPUT_NAME, "layout": "NCHW", "dtype": "float32", "color": "RGB", "range": [0, 1],
                   "shape": "same as the input"},
        "training": None,
        "files": {},
    }
    verify = vtest_frames(VERIFY_FRAMES, frame_size)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp_dir:
        tmp = Path(tmp_dir)
        say(f"exporting the {name} baseline (strength {baseline.strength:g}) to ONNX")
        props = {"veil_version": veil.__version__, "baseline": name, "strength": f"{baseline.strength:g}"}
        _torch_export(_Clamped(module), tmp / "fp32.onnx", opset, frame_size, card, props)
        say("verifying against PyTorch on real vtest frames")
        card["parity"] = _parity(_Clamped(module), tmp / "fp32.onnx", verify)
        if data is not None:
            from veil.io import read_json

            assert dataset is not None  # data is the dataset's split
            manifest = read_json(Path(dataset) / "manifest.json")["detector"]
            config = {"detector": manifest["name"], "detector_weights": manifest.get("weights")}
            say(f"measuring person AP on {len(data)} {split} frames")
            card["utility"] = _utility(data, dataset, split, tmp, False, config, detector, detector_weights)
            card["detector"] = {"name": config["detector"], "weights": config["detector_weights"]}
        with atomic_path(paths["fp32"]) as target:
            target.write_bytes((tmp / "fp32.onnx").read_bytes())
        card["files"]["fp32"] = _file_entry(paths["fp32"])
    write_json(paths["card"], card)
    return card


class _Clamped(nn.Module):
    """A baseline's module with the [0, 1] clamp ``Baseline.__call__`` applies."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x).clamp(0, 1)


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


def _torch_export(obfuscator: nn.Module, path: Path, opset: int, frame_size: tuple[int, int], card: dict,
                  props: dict[str, str], output_names: tuple[str, ...] = (OUTPUT_NAME,)) -> None:
    import onnx

    w, h = frame_size
    length = clip_length(obfuscator)
    lead = 0 if length == 1 else 1  # a temporal obfuscator's input has the clip axis after the batch
    dims = {0: torch.export.Dim("batch"), 2 + lead: torch.export.Dim("height"), 3 + lead: torch.export.Dim("width")}
    example = torch.zeros(2, 3, h, w) if length == 1 else torch.zeros(2, length, 3, h, w)
    with warnings.catch_warnings(), _quiet_logs():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(obfuscator, (example,), None, input_names=[INPUT_NAME],
                                    output_names=list(output_names), opset_version=opset, dynamic_shapes=(dims,),
                                    dynamo=True, verbose=False)
    assert program is not None  # dynamo=True returns the program
    program.save(str(path), external_data=False)
    model = onnx.load(str(path))
    # The exporter names the output dims by their symbolic formula; they equal the input's.
    for dim, name in zip(model.graph.output[0].type.tensor_type.shape.dim, ("batch", None, "height", "width")):
        if name:
            dim.dim_param = name
    model.doc_string = ("Veil obfuscator: RGB float [0, 1] NCHW in, obfuscated frames of the same shape out"
                        if length == 1 else f"Veil temporal obfuscator: RGB float [0, 1] clips (N, {length}, 3, H, W) "
                        "in, the frame to obfuscate last; obfuscated frames (N, 3, H, W) out")
    onnx.helper.set_model_props(model, props)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    card["opset"] = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if card["opset"] < 17:
        raise VeilError(f"the exporter wrote opset {card['opset']}, below the 17 asked for")


def _parity_cases(frames: np.ndarray) -> dict[str, np.ndarray]:
    """The verification frames as a batch, and one frame at an odd size (not a multiple of the stride)."""
    h, w = frames.shape[1:3]
    odd = np.stack([resize(frames[0], (w - 3, h - 5))])
    return {f"batch {len(frames)} at {w}x{h}": frames, f"batch 1 at {w - 3}x{h - 5}": odd}


def _parity(obfuscator: nn.Module, path: Path, frames: np.ndarray, exempt: set[str] | frozenset = frozenset()) -> dict:
    """Max abs diff between PyTorch and ONNX Runtime on real frames, a batch and an odd size.

    ``exempt``: cases whose quantised latent legitimately differs (a value at a rounding
    boundary): their difference is reported, not held to the tolerance."""
    model = OnnxObfuscator(path)
    diffs = {}
    for name, batch in _parity_cases(frames).items():
        x = to_input(stream_inputs(batch, clip_length(obfuscator)))
        with torch.no_grad():
            expected = obfuscator(torch.from_numpy(x)).numpy()
        got = model.run(x)
        if got.shape != expected.shape:
            raise VeilError(f"ONNX output shape {got.shape} differs from PyTorch's {expected.shape} ({name})")
        diffs[name] = float(np.abs(got - expected).max())
    held = [v for k, v in diffs.items() if k not in exempt] or [0.0]
    if max(held) > PARITY_TOLERANCE:
        raise VeilError(f"the ONNX export differs from PyTorch by {max(held):.2e} (tolerance {PARITY_TOLERANCE:.0e})")
    out = {"frames": f"vtest.avi frames {list(VERIFY_FRAMES)}", "max_abs_diff": max(diffs.values()),
           "per_case": diffs, "tolerance": PARITY_TOLERANCE}
    if exempt:
        out["exempt_cases"] = sorted(exempt)
    return out


def _quantised(obfuscator: nn.Module):
    """The obfuscator's LatentQuantiser when its latent is quantised (else None)."""
    quantiser = getattr(obfuscator, "quantiser", None)
    has_levels = quantiser is not None and getattr(quantiser, "levels", None)
    return quantiser if has_levels and hasattr(obfuscator, "latent_features") else None


# A quantised obfuscator (``_quantised`` found its quantiser) is read by duck typing: its
# ``latent_features`` and ``quantiser`` are module attributes torch types as ``Tensor | Module``.
Quantised = Any


class _LatentProbe(nn.Module):
    """The latent before and after rounding, as a graph: to check the export's quantisation."""

    def __init__(self, obfuscator: Quantised) -> None:
        super().__init__()
        self.obfuscator = obfuscator

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.obfuscator.latent_features(x)
        return torch.sigmoid(features), self.obfuscator.quantiser(features)


def _verify(obfuscator: Quantised, tmp: Path, opset: int, frame_size: tuple[int, int], frames: np.ndarray) -> dict:
    """Parity of the export on real frames; for a quantised latent, the latent level for level too.

    A model with latent noise is checked as a noise-free copy exported the same way (its draws
    cannot match PyTorch's); the card says so."""
    quantiser = _quantised(obfuscator)
    if quantiser is None:
        return _parity(obfuscator, tmp / "fp32.onnx", frames)
    checked, path, noise = obfuscator, tmp / "fp32.onnx", quantiser.noise
    if noise > 0:
        checked = copy.deepcopy(obfuscator).eval()
        checked.quantiser.noise = 0.0
        path = tmp / "noise-free.onnx"
        _torch_export(checked, path, opset, frame_size, {}, {})
    latent, exempt = _latent_parity(checked, tmp, opset, frame_size, frames)
    out = {**_parity(checked, path, frames, exempt), "latent": latent}
    if noise > 0:
        out["noise"] = (f"the shipped model adds per-frame latent noise (sigma {noise:g}); parity was checked on "
                        "the same model exported with the noise off")
    return out


def _latent_parity(obfuscator: Quantised, tmp: Path, opset: int, frame_size: tuple[int, int],
                   frames: np.ndarray) -> tuple[dict, set[str]]:
    """Export the encoder and quantiser alone; every latent value must equal PyTorch's level,
    except values within BOUNDARY_TOLERANCE of a rounding boundary. Returns the record and the
    cases where such a boundary value did round the other way."""
    import onnxruntime as ort

    w, h = frame_size
    path = tmp / "latent.onnx"
    dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
    with warnings.catch_warnings(), _quiet_logs():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(_LatentProbe(obfuscator).eval(), (torch.zeros(2, 3, h, w),), None,
                                    input_names=[INPUT_NAME], output_names=["sigmoid", "latent"],
                                    opset_version=opset, dynamic_shapes=(dims,), dynamo=True, verbose=False)
    assert program is not None  # dynamo=True returns the program
    program.save(str(path), external_data=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    levels = obfuscator.quantiser.levels
    grid = np.arange(levels, dtype=np.float32) / np.float32(levels - 1)
    total = differ = 0
    exempt: set[str] = set()
    for name, batch in _parity_cases(frames).items():
        x = to_input(batch)
        _, q = session.run(None, {INPUT_NAME: x})
        with torch.no_grad():
            u_ref, q_ref = (t.numpy() for t in _LatentProbe(obfuscator)(torch.from_numpy(x)))
        if q.shape != q_ref.shape or not np.isin(q, grid).all():
            raise VeilError(f"the exported latent is not quantised to {levels} levels like PyTorch's ({name})")
        scaled = u_ref * (levels - 1)
        at_boundary = np.abs(scaled - np.floor(scaled) - 0.5) < BOUNDARY_TOLERANCE
        mismatch = q != q_ref
        if (mismatch & ~at_boundary).any():
            raise VeilError(f"the exported latent differs from PyTorch's in {int((mismatch & ~at_boundary).sum())} "
                            f"values away from any rounding boundary ({name})")
        total, differ = total + q.size, differ + int(mismatch.sum())
        if mismatch.any():
            exempt.add(name)
    return {"levels": levels, "values": total, "equal": total - differ, "differ_at_rounding_boundary": differ,
            "boundary_tolerance": BOUNDARY_TOLERANCE}, exempt


def _bound(obfuscator: Quantised, frame_size: tuple[int, int], frames: np.ndarray | None = None) -> dict:
    """What one frame's output can carry, in bits (None: not a function of a quantised latent);
    with real ``frames``, also the entropy its latent measured on them."""
    bits = getattr(obfuscator, "latent_bits_per_frame", lambda _size: None)
    at_size, at_640 = bits(frame_size), bits(MAC_SIZE)
    if at_size is None:
        return {"bits_per_frame": None, "statement": "no bound in bits: the output is not a function of a quantised "
                                                     "latent"}
    out: dict = {"bits_per_frame": at_size, "frame_size": list(frame_size), "bits_per_frame_640x480": at_640,
                 "bytes_per_frame": at_size / 8}
    quantiser = _quantised(obfuscator)
    if quantiser is not None:
        w, h = frame_size
        with torch.no_grad():
            shape = list(obfuscator.latent_features(torch.zeros(1, 3, h, w)).shape[1:])
        out["latent"] = {"shape": shape, "values": math.prod(shape), "levels": quantiser.levels,
                         "bits_per_value": math.log2(quantiser.levels), "noise": quantiser.noise}
        out["formula"] = (f"{math.prod(shape)} latent values x log2({quantiser.levels}) = {at_size:g} bits per "
                          f"{frame_size[0]}x{frame_size[1]} frame")
        if frames is not None and quantiser.noise == 0:
            from veil.obfuscators.latent import channel_entropy

            with torch.no_grad():
                q = quantiser(obfuscator.latent_features(torch.from_numpy(to_input(frames))))
            measured = float(channel_entropy(q, quantiser.levels).sum()) * shape[1] * shape[2]
            out["measured_bits_per_frame"] = {
                "value": round(measured, 1), "frames": f"vtest.avi frames {list(VERIFY_FRAMES)}",
                "method": "per-channel empirical entropy of the quantised latent on these frames x latent positions: "
                          "the rate of an entropy code with one static distribution per channel"}
    out["statement"] = (f"The whole obfuscator (encoder, quantiser and decoder) runs on the camera, so what leaves it "
                        f"is a function of at most {at_size:g} bits per {frame_size[0]}x{frame_size[1]} frame "
                        f"({at_640:g} at 640x480): no attacker can recover more about a frame than those bits hold.")
    return out


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


def _utility(data, dataset, split: str, tmp: Path, int8: bool, config: dict, detector,
             detector_weights: str | None = None) -> dict:
    """Person AP of the detector on original, ONNX fp32 and int8 obfuscated frames (pseudo-labels)."""
    from veil.evaluation.utility import detection_ap

    if detector is None:
        from veil.detectors import build_recorded

        detector = build_recorded(config["detector"], config.get("detector_weights"), detector_weights,
                                  "the checkpoint or dataset")
    start = time.time()
    ap = {"original": detection_ap(detector, data)}
    for kind in ("fp32", "int8") if int8 else ("fp32",):
        model = OnnxObfuscator(tmp / f"{kind}.onnx")

        def run(x: torch.Tensor, m: OnnxObfuscator = model) -> torch.Tensor:
            return torch.from_numpy(m.run(x.numpy()))

        # detection_ap hands a temporal model clips
        run.clip = model.clip  # type: ignore[attr-defined]
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
