"""Classic privacy baselines the audit compares the learned obfuscator against
(de-coninck-2024 4.3, Table 3), each with one ``strength`` knob.

Whole-frame (no knowledge of where people are):

* ``gaussian_blur``: strength = odd kernel size in pixels (paper: 9); sigma follows
  OpenCV's rule for a kernel size. Stronger = higher.
* ``noise``: additive Gaussian noise, strength = sigma as a fraction of the [0, 1] range
  (paper: 0.075). Stronger = higher.
* ``quantisation``: strength = grey levels per channel (paper: 8). Stronger = LOWER.
* ``pixelation``: strength = downscale factor (paper: 1/3: area-downscale to a third, then
  nearest-neighbour upscale). Stronger = LOWER.
* ``grey``: luma 0.299 R + 0.587 G + 0.114 B replicated to three channels, blended with the
  frame; strength = the grey image's weight (1: fully grey). Stronger = higher.
* ``downsample``: area-downsample by a whole factor, bilinear upsample back (smooth, unlike
  pixelation's blocks; STPrivacy's 4x is the default); strength = the factor per side.
  Stronger = higher.
* ``grey_downsample``: ``downsample`` of the grey frame; strength = the factor (1: the
  original frame, unchanged; any factor above 1 is also fully grey). Stronger = higher.

Detect-then-anonymise (the frozen detector runs on the ORIGINAL frame, boxes at its
pseudo-label threshold):

* ``detect_blur``: Gaussian blur inside person boxes, strength = kernel size (default 25).
  Stronger = higher.
* ``detect_mask``: mask-out of person boxes with mid-grey, strength = opacity in [0, 1]
  (default 1: fully replaced, the paper's mask-out). Stronger = higher.

Every baseline maps float (B, 3, H, W) in [0, 1] to the same shape; ``sweep`` lists
strengths from weak to strong for privacy-utility curves, starting close to the original so
that a calibration to any utility finds a bracket; ``none_strength`` is the strength at which
the baseline returns 8-bit frames unchanged (the curve's anchor at the original frames).

A baseline that a camera can run on its own (no detector, no randomness) has ``module()``: the
same transform as an ``nn.Module`` (its ``apply`` IS that module), which ``veil export
--baseline`` writes as an ONNX model the edge runtime runs like a learned obfuscator's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import kornia
import torch
import torch.nn.functional as F
from torch import nn

from veil.errors import VeilError
from veil.obfuscators.ops import pad_to_multiple
from veil.registry import Registry

if TYPE_CHECKING:  # a detect-then-anonymise baseline holds the audit's detector
    from veil.detectors.base import FrozenDetector

#: ITU-R BT.601 luma weights of R, G and B
LUMA = (0.299, 0.587, 0.114)


class Baseline:
    """A strength-parameterised frame transform."""

    name: str = "baseline"
    detector: FrozenDetector | None = None  # set on baselines that need one (``needs_detector``)
    paper_strength: float = 1.0
    stronger: str = "higher"  # which way of ``strength`` removes more information
    sweep: tuple[float, ...] = ()
    none_strength: float = 0.0  # the no-op strength: 8-bit frames come back unchanged
    integer: bool = False  # strengths are rounded to whole numbers (kernel sizes, levels)
    needs_detector: bool = False

    def __init__(self, strength: float | None = None) -> None:
        self.strength = float(self.paper_strength if strength is None else strength)

    def with_strength(self, strength: float) -> Baseline:
        """The same baseline at another strength (detector and settings shared)."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.strength = float(strength)
        return clone

    def snap(self, strength: float) -> float:
        """The nearest strength this baseline can realise (whole kernel sizes, levels)."""
        return float(round(strength)) if self.integer else float(strength)

    def __call__(self, images: torch.Tensor, boxes: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        return self.apply(images.float(), boxes).clamp(0, 1)

    def apply(self, images: torch.Tensor, boxes: Sequence[torch.Tensor] | None) -> torch.Tensor:  # noqa: ARG002
        raise NotImplementedError

    def describe(self) -> dict:
        return {"name": self.name, "strength": self.strength, "paper_strength": self.paper_strength,
                "stronger": self.stronger}

    def module(self) -> nn.Module:
        """The transform at this strength as a module (for ONNX export); only for baselines a
        camera can run alone (no detector, no random draws)."""
        raise VeilError(f"the {self.name} baseline has no export path (exportable: {', '.join(exportable())})")


BASELINES: Registry[Baseline] = Registry("baseline")


def parse_spec(spec: str) -> tuple[str, float | None]:
    """``"grey_downsample@2"`` -> ("grey_downsample", 2.0): a registered baseline, at a fixed
    strength or (no ``@``) its own; a VeilError names what is wrong."""
    name, at, strength = spec.strip().partition("@")
    if name not in BASELINES:
        raise VeilError(f"unknown baseline {name!r} (known: {', '.join(BASELINES.names())})")
    if not at:
        return name, None
    try:
        value = float(strength)
    except ValueError:
        raise VeilError(f"a baseline's strength must be a number, as in {name}@2; got {spec!r}") from None
    if not math.isfinite(value) or value < 0:
        raise VeilError(f"a baseline's strength must be a finite number >= 0; got {spec!r}")
    return name, value


def build_spec(spec: str) -> Baseline:
    """The baseline ``NAME`` or ``NAME@STRENGTH`` (snapped to a strength it can realise)."""
    name, strength = parse_spec(spec)
    baseline = BASELINES.build(name)
    return baseline if strength is None else baseline.with_strength(baseline.snap(strength))


def odd_kernel(k: float) -> int:
    k = max(1, int(round(k)))
    return k if k % 2 else k + 1


def blur(images: torch.Tensor, kernel: float) -> torch.Tensor:
    """Gaussian blur with an odd ``kernel`` size; sigma as OpenCV derives it from the size."""
    k = odd_kernel(kernel)
    if k == 1:
        return images
    sigma = 0.3 * ((k - 1) * 0.5 - 1) + 0.8
    return kornia.filters.gaussian_blur2d(images, (k, k), (sigma, sigma), border_type="reflect")


class GaussianBlur(Baseline):
    name, paper_strength, stronger, integer = "gaussian_blur", 9, "higher", True
    none_strength = 1
    sweep = (3, 9, 17, 33, 65)

    def snap(self, strength: float) -> float:
        return float(odd_kernel(strength))

    def apply(self, images, boxes=None):  # noqa: ARG002
        return blur(images, self.strength)


class Noise(Baseline):
    name, paper_strength, stronger = "noise", 0.075, "higher"
    none_strength = 0.0
    sweep = (0.025, 0.075, 0.15, 0.3, 0.6)

    def __init__(self, strength: float | None = None, seed: int = 0) -> None:
        super().__init__(strength)
        self.seed = seed

    def apply(self, images, boxes=None):  # noqa: ARG002
        # seeded by each frame's own 8-bit content: reproducible, different per frame, and
        # independent of how frames are batched (a utility probe on a subset of the frames
        # sees exactly the noise the full evaluation sees)
        noise = torch.empty_like(images)
        for i, frame in enumerate(images):
            content = int(frame.mul(255).round().to(torch.int64).sum())
            gen = torch.Generator(device=images.device).manual_seed((self.seed + content) % 2**63)
            noise[i] = torch.randn(frame.shape, generator=gen, device=images.device, dtype=images.dtype)
        return images + self.strength * noise


class Quantisation(Baseline):
    name, paper_strength, stronger, integer = "quantisation", 8, "lower", True
    none_strength = 256
    sweep = (32, 8, 4, 3, 2)

    def apply(self, images, boxes=None):  # noqa: ARG002
        return self.module()(images)

    def module(self) -> nn.Module:
        return Levels(max(2, int(round(self.strength))))


class Pixelation(Baseline):
    name, paper_strength, stronger = "pixelation", 1 / 3, "lower"
    none_strength = 1.0
    sweep = (3 / 4, 1 / 2, 1 / 3, 1 / 6, 1 / 12)

    def apply(self, images, boxes=None):  # noqa: ARG002
        h, w = images.shape[-2:]
        f = min(max(self.strength, 1e-3), 1.0)
        small = F.interpolate(images, size=(max(1, round(h * f)), max(1, round(w * f))), mode="area")
        return F.interpolate(small, size=(h, w), mode="nearest")


class Levels(nn.Module):
    """Round every value in [0, 1] to ``levels`` values."""

    def __init__(self, levels: int) -> None:
        super().__init__()
        self.levels = levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * (self.levels - 1)) / (self.levels - 1)


class Grey(nn.Module):
    """``(1 - weight) * frame + weight * luma``, the luma replicated to three channels."""

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = float(weight)
        self.luma: torch.Tensor
        self.register_buffer("luma", torch.tensor(LUMA).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grey = (x * self.luma.to(x.dtype)).sum(1, keepdim=True).expand_as(x)
        return grey if self.weight == 1.0 else torch.lerp(x, grey, self.weight)


class Downsample(nn.Module):
    """Area-downsample by a whole ``factor`` (edges replicated to a multiple of it first), then
    bilinear upsampling back to the input's size."""

    def __init__(self, factor: int) -> None:
        super().__init__()
        self.factor = int(factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.factor == 1:
            return x
        h, w = x.shape[-2:]
        small = F.avg_pool2d(pad_to_multiple(x, self.factor), self.factor)
        up = F.interpolate(small, scale_factor=self.factor, mode="bilinear", align_corners=False)
        return up[..., :h, :w]


class GreyBaseline(Baseline):
    name, paper_strength, stronger = "grey", 1.0, "higher"
    none_strength = 0.0
    sweep = (0.25, 0.5, 0.75, 1.0)

    def apply(self, images, boxes=None):  # noqa: ARG002
        return self.module()(images)

    def module(self) -> nn.Module:
        return Grey(min(max(self.strength, 0.0), 1.0))


class DownsampleBaseline(Baseline):
    name, paper_strength, stronger, integer = "downsample", 4, "higher", True
    none_strength = 1
    sweep = (2, 4, 8, 16, 32)

    def factor(self) -> int:
        return max(1, int(round(self.strength)))

    def apply(self, images, boxes=None):  # noqa: ARG002
        return self.module()(images)

    def module(self) -> nn.Module:
        return Downsample(self.factor())


class GreyDownsampleBaseline(DownsampleBaseline):
    name = "grey_downsample"

    def module(self) -> nn.Module:
        factor = self.factor()
        return Downsample(1) if factor == 1 else nn.Sequential(Grey(1.0), Downsample(factor))


class DetectThenAnonymise(Baseline):
    """Anonymise the detector's person boxes of the original frame (``boxes`` may be passed
    in when they are already known, e.g. the dataset's pseudo-labels of the same detector)."""

    needs_detector = True

    def __init__(self, detector=None, strength: float | None = None, conf: float | None = None) -> None:
        super().__init__(strength)
        self.detector = detector
        self.conf = conf

    def person_boxes(self, images: torch.Tensor, boxes: Sequence[torch.Tensor] | None) -> list[torch.Tensor]:
        if boxes is not None:
            return [b.reshape(-1, 4) for b in boxes]
        if self.detector is None:
            raise ValueError(f"{self.name} needs a detector or precomputed boxes")
        conf = self.detector.pseudo_label_threshold if self.conf is None else self.conf
        with torch.no_grad():
            return [d.boxes for d in self.detector.detect(images, conf=conf)]

    def box_mask(self, images: torch.Tensor, boxes: Sequence[torch.Tensor] | None) -> torch.Tensor:
        """(B, 1, H, W) float mask, 1 inside any person box."""
        b, _, h, w = images.shape
        mask = torch.zeros(b, 1, h, w, device=images.device)
        for i, bx in enumerate(self.person_boxes(images, boxes)):
            for x1, y1, x2, y2 in bx.tolist():
                mask[i, :, max(0, math.floor(y1)) : math.ceil(y2), max(0, math.floor(x1)) : math.ceil(x2)] = 1
        return mask


class DetectBlur(DetectThenAnonymise):
    name, paper_strength, stronger, integer = "detect_blur", 25, "higher", True
    none_strength = 1
    sweep = (5, 9, 25, 51, 101)

    def snap(self, strength: float) -> float:
        return float(odd_kernel(strength))

    def apply(self, images, boxes=None):
        mask = self.box_mask(images, boxes)
        return images * (1 - mask) + blur(images, self.strength) * mask


class DetectMask(DetectThenAnonymise):
    name, paper_strength, stronger = "detect_mask", 1.0, "higher"
    none_strength = 0.0
    sweep = (0.1, 0.25, 0.5, 0.75, 1.0)

    def apply(self, images, boxes=None):
        alpha = min(max(self.strength, 0.0), 1.0) * self.box_mask(images, boxes)
        return images * (1 - alpha) + 0.5 * alpha


@BASELINES.register("gaussian_blur")
def gaussian_blur(strength: float | None = None) -> GaussianBlur:
    return GaussianBlur(strength)


@BASELINES.register("noise")
def noise(strength: float | None = None, seed: int = 0) -> Noise:
    return Noise(strength, seed)


@BASELINES.register("quantisation")
def quantisation(strength: float | None = None) -> Quantisation:
    return Quantisation(strength)


@BASELINES.register("pixelation")
def pixelation(strength: float | None = None) -> Pixelation:
    return Pixelation(strength)


@BASELINES.register("grey")
def grey(strength: float | None = None) -> GreyBaseline:
    return GreyBaseline(strength)


@BASELINES.register("downsample")
def downsample(strength: float | None = None) -> DownsampleBaseline:
    return DownsampleBaseline(strength)


@BASELINES.register("grey_downsample")
def grey_downsample(strength: float | None = None) -> GreyDownsampleBaseline:
    return GreyDownsampleBaseline(strength)


@BASELINES.register("detect_blur")
def detect_blur(detector=None, strength: float | None = None, conf: float | None = None) -> DetectBlur:
    return DetectBlur(detector, strength, conf)


@BASELINES.register("detect_mask")
def detect_mask(detector=None, strength: float | None = None, conf: float | None = None) -> DetectMask:
    return DetectMask(detector, strength, conf)


def exportable() -> list[str]:
    """Baselines with an export path (``Baseline.module``)."""
    return [n for n in BASELINES.names() if type(BASELINES.build(n)).module is not Baseline.module]
