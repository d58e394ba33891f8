"""The obfuscator contract: what every registered obfuscator receives and must return.

An obfuscator O is an ``nn.Module`` built by ``OBFUSCATORS.build(name, **arguments)``; the
arguments are saved in the training config and the checkpoint, so ``load_models`` rebuilds it.

Input
    * a frame obfuscator (``clip == 1``): frames ``(B, 3, H, W)``, float in [0, 1], any H and W;
    * a temporal obfuscator (``clip == T > 1``): clips ``(B, T, 3, H, W)``: the frame to
      obfuscate LAST, the T - 1 frames before it at the dataset's own fps. Before the first
      frame of a video (or of a dataset split) the first frame is repeated, so a clip always
      exists and streaming equals batch processing (``FrameStream``).
Output
    ``(B, 3, H, W)`` float in [0, 1] at the input's size: an image the frozen, unmodified
    detector reads. This is what leaves the camera and what the audit attacks.
Rules
    * A frame's output depends on that frame (and its clip) only, never on the rest of the
      batch: no batch statistics at inference (eval mode), no batch min/max normalisation.
    * ``regulariser()`` is an extra term O's loss adds (for example a lensless mask's priors);
      it is 0 for most obfuscators.
    * ``set_progress(fraction)`` tells O how far training is (0 -> 1), for annealed parts such
      as a quantiser's temperature; it is a function of the step, so a resumed run matches.
    * ``transmitted`` / ``attacked`` describe in words what leaves the camera and what the
      audit attacks; the model card and the report quote them.
    * ``latent_bits_per_frame(frame_size)`` bounds, in bits, what one frame's output can carry
      when the output is a function of a quantised latent (None: no such bound).
"""

from __future__ import annotations

from collections import deque

import torch
from torch import nn


class Obfuscator(nn.Module):
    """Base class of every registered obfuscator (see the module docstring for the contract)."""

    #: frames per input clip; 1: a frame obfuscator
    clip: int = 1
    transmitted: str = "the obfuscator's output image"
    attacked: str = "the obfuscator's output image"

    def regulariser(self) -> torch.Tensor:
        """Extra term of O's loss (already weighted); 0 unless an obfuscator needs one."""
        return torch.zeros(())

    def set_progress(self, fraction: float) -> None:  # noqa: B027  (a no-op hook by design)
        """Training progress in [0, 1]; annealed obfuscators override this."""

    def latent_bits_per_frame(self, frame_size: tuple[int, int]) -> float | None:  # noqa: ARG002
        """Bits that one ``frame_size`` (width, height) frame's output is a function of: latent
        values x log2(levels); None when the output is not a function of a quantised latent."""
        return None


def clip_length(obfuscator: object) -> int:
    """Frames per input of ``obfuscator`` (1 for frame obfuscators, plain modules and plain transforms)."""
    return int(getattr(obfuscator, "clip", 1))


def previous_indices(index: int, length: int, start: int = 0) -> list[int]:
    """Indices of the clip ending at ``index``: ``index - length + 1 .. index``, clamped at ``start``
    (the first frame repeated before it)."""
    return [max(start, index - length + 1 + i) for i in range(length)]


class FrameStream:
    """Frame-by-frame inference that keeps the state a temporal obfuscator needs.

    ``stream(frame)`` takes ``(B, 3, H, W)`` (one frame per stream in the batch) and returns O's
    output for it; the first frame is repeated to fill the first clip, as the contract says.
    """

    def __init__(self, obfuscator: nn.Module) -> None:
        self.obfuscator = obfuscator
        self.length = clip_length(obfuscator)
        self.frames: deque[torch.Tensor] = deque(maxlen=self.length)

    def reset(self) -> None:
        self.frames.clear()

    def __call__(self, frame: torch.Tensor) -> torch.Tensor:
        if self.length == 1:
            return self.obfuscator(frame)
        if not self.frames:
            self.frames.extend([frame] * (self.length - 1))
        self.frames.append(frame)
        return self.obfuscator(torch.stack(list(self.frames), dim=1))
