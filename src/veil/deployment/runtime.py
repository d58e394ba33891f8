"""Running an exported obfuscator with ONNX Runtime: what a camera needs, without PyTorch.

The ONNX model takes ``frames`` (float32, RGB in [0, 1], NCHW, any batch, height and width)
and returns ``obfuscated`` of the same shape. :func:`load_onnx_obfuscator` wraps it for
uint8 ``HxWx3`` RGB frames, the form cameras and OpenCV decode to.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from veil.errors import VeilError

INPUT_NAME = "frames"
OUTPUT_NAME = "obfuscated"


def ort_session(path: str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session on ``path`` with ``threads`` intra-op threads (None: all cores)."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise VeilError(f"ONNX model not found: {path}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1  # the graph is a chain: parallelism lives inside each op
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 (onnxruntime raises its own untyped errors on bad files)
        raise VeilError(f"cannot load ONNX model {path}: {str(exc).splitlines()[0]}") from None


def to_input(frames: np.ndarray) -> np.ndarray:
    """uint8 ``(N, H, W, 3)`` RGB -> float32 ``(N, 3, H, W)`` in [0, 1]."""
    return np.ascontiguousarray(frames.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255)


def from_output(obfuscated: np.ndarray) -> np.ndarray:
    """float ``(N, 3, H, W)`` in [0, 1] -> uint8 ``(N, H, W, 3)``, rounded like the PyTorch path."""
    return np.clip(np.rint(obfuscated * 255), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


class OnnxObfuscator:
    """Callable: one uint8 ``HxWx3`` RGB frame (or an ``NxHxWx3`` batch) in, the same form out.

    It obfuscates at the size it is given. Resize frames to the model card's
    ``input.trained_frame_size`` first: the obfuscator was trained at the detector's scale.
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        self.session = ort_session(self.path, threads)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """float32 NCHW in [0, 1] -> float32 NCHW in [0, 1] (the raw graph)."""
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or frames.shape[-1] != 3:
            raise VeilError(f"expected uint8 HxWx3 RGB frames, got {frames.dtype} {frames.shape}")
        single = frames.ndim == 3
        out = from_output(self.run(to_input(frames[None] if single else frames)))
        return out[0] if single else out


def load_onnx_obfuscator(path: str | Path, threads: int | None = None) -> OnnxObfuscator:
    """Load an obfuscator written by ``veil export`` for uint8 RGB frames (``threads``: None = all)."""
    return OnnxObfuscator(path, threads)
