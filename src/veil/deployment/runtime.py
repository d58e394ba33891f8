"""Running an exported obfuscator with ONNX Runtime: what a camera needs, without PyTorch.

The ONNX model takes ``frames`` (float32, RGB in [0, 1], NCHW, any batch, height and width)
and returns ``obfuscated`` of the same shape. A temporal obfuscator's model takes clips
``(N, T, 3, H, W)``, the frame to obfuscate last, and returns ``(N, 3, H, W)``.
:func:`load_onnx_obfuscator` wraps either for uint8 ``HxWx3`` RGB frames, the form cameras
and OpenCV decode to; for a temporal model it keeps the previous frames of the stream.
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
    """uint8 ``(N, H, W, 3)`` RGB -> float32 ``(N, 3, H, W)`` in [0, 1] (clips: ``(N, T, ...)`` alike)."""
    return np.ascontiguousarray(np.moveaxis(frames, -1, -3), dtype=np.float32) / np.float32(255)


def from_output(obfuscated: np.ndarray) -> np.ndarray:
    """float ``(N, 3, H, W)`` in [0, 1] -> uint8 ``(N, H, W, 3)``, rounded like the PyTorch path."""
    return np.clip(np.rint(obfuscated * 255), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


class ClipWindow:
    """Consecutive frames of one stream -> a temporal obfuscator's clips, the stream's first frame
    repeated before it (the obfuscator contract, as ``veil.obfuscators.FrameStream`` does).

    ``window(frames)``: ``(N, ...)`` frames that follow the ones it saw -> ``(N, length, ...)``.
    """

    def __init__(self, length: int) -> None:
        self.length = length
        self.previous: np.ndarray | None = None  # the stream's last length - 1 frames

    def reset(self) -> None:
        """A new stream starts."""
        self.previous = None

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        if self.previous is None:
            self.previous = np.repeat(frames[:1], self.length - 1, axis=0)
        sequence = np.concatenate([self.previous, frames])
        self.previous = sequence[len(sequence) - (self.length - 1):]
        return np.stack([sequence[i : i + self.length] for i in range(len(frames))])


def stream_inputs(frames: np.ndarray, length: int) -> np.ndarray:
    """Consecutive ``frames`` of one stream as an obfuscator's inputs: clips of ``length`` for a
    temporal obfuscator, the frames themselves for a frame obfuscator (``length`` 1)."""
    return ClipWindow(length)(frames) if length > 1 else frames


def onnx_clip_length(session) -> int:
    """Frames per input of an exported obfuscator: T for a clip input (N, T, 3, H, W), else 1."""
    shape = session.get_inputs()[0].shape
    return int(shape[1]) if len(shape) == 5 else 1


class OnnxObfuscator:
    """Callable: one uint8 ``HxWx3`` RGB frame (or an ``NxHxWx3`` batch) in, the same form out.

    It obfuscates at the size it is given. Resize frames to the model card's
    ``input.trained_frame_size`` first: the obfuscator was trained at the detector's scale.
    A temporal model (``clip`` > 1) treats the frames of successive calls as one stream, in
    order: each frame's clip is it and the frames before it; ``reset()`` starts a new stream.
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        self.session = ort_session(self.path, threads)
        self.clip = onnx_clip_length(self.session)
        self.window = ClipWindow(self.clip) if self.clip > 1 else None

    def reset(self) -> None:
        if self.window is not None:
            self.window.reset()

    def run(self, batch: np.ndarray) -> np.ndarray:
        """float32 NCHW (or NTCHW clips) in [0, 1] -> float32 NCHW in [0, 1] (the raw graph)."""
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or frames.shape[-1] != 3:
            raise VeilError(f"expected uint8 HxWx3 RGB frames, got {frames.dtype} {frames.shape}")
        single = frames.ndim == 3
        frames = frames[None] if single else frames
        out = from_output(self.run(to_input(self.window(frames) if self.window is not None else frames)))
        return out[0] if single else out


def load_onnx_obfuscator(path: str | Path, threads: int | None = None) -> OnnxObfuscator:
    """Load an obfuscator written by ``veil export`` for uint8 RGB frames (``threads``: None = all)."""
    return OnnxObfuscator(path, threads)
