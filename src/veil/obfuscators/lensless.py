"""A differentiable lensless (FlatCam / coded-aperture) camera with a learned mask, then a decoder.

Forward model (nagahara; Nguyen Canh & Nagahara 2019, 2023):

1. **Optics**: the scene is convolved with the learned mask's point-spread function, the same
   for each RGB channel: ``F.conv2d`` of the zero-padded scene with the non-negative mask
   normalised to sum 1 (so the measurement stays in [0, 1]), a same-size image (see
   :meth:`LenslessCamera.optical_image`). The mask is ``sigmoid(logits)``, a transmission in
   [0, 1]; with ``binary=True`` it is thresholded at 0.5 in the forward pass, with the
   sigmoid's gradient (straight-through estimator), as a printed binary mask would be.
2. **Sensor**: Gaussian read noise (training only, ``noise`` = its sigma) and 8-bit
   quantisation (straight-through): :meth:`LenslessCamera.measure`.
3. **Decoder**: a small learned network (``mobilenet_ae``'s encoder-decoder) whose output, a
   3-channel image in [0, 1], is what the frozen detector reads.

The raw measurement never leaves the camera in this model: the decoder runs on the camera and
its output is transmitted, so the audit attacks the decoder's output and the privacy claim is
about that output, not about the measurement.

``regulariser()`` adds the talk's optional mask losses, each weighted by an argument (0 by
default). Being a property of the mask only, each is computed on the mask, not on images:

* ``similarity``: ``||H - H_open||^2``, distance to the fully open aperture (the most blurring
  mask) — the image-free form of ``sum_i ||H * x_i - I_m * x_i||^2``;
* ``tv``: ``-(||dx H||_1 + ||dy H||_1)``, as in the talk (negative total variation);
* ``invertibility``: ``-mean log(|FFT(H)|^2 + eps)``: low when the mask's spectrum has no
  near-zeros, i.e. the blur can be inverted;
* ``rip``: ``-||H||_2^2``, which is exactly ``-E ||H * x||^2 / ||x||^2`` over white-noise
  scenes x (the talk's RIP loss in expectation).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from veil.obfuscators.autoencoder import MobileNetAutoencoder
from veil.obfuscators.base import Obfuscator
from veil.obfuscators.ops import round_ste
from veil.obfuscators.registry import OBFUSCATORS


class LenslessCamera(Obfuscator):
    """Learned coded-aperture optics, a noisy 8-bit sensor and a small decoder (module docstring).

    Args:
        mask_size: side of the square mask / PSF in pixels.
        binary: a binary (0/1) mask through a straight-through estimator.
        noise: sigma of the sensor's Gaussian read noise during training (in [0, 1] units).
        bits: sensor bit depth.
        width: width multiplier of the decoder.
        similarity, tv, invertibility, rip: weights of the mask losses in ``regulariser()``.
        seed: seed of the mask's random initialisation (a random pattern, as FlatCam starts from).
    """

    transmitted = "the decoder's output image (the raw sensor measurement never leaves the camera)"
    attacked = "the decoder's output image: privacy is measured after the decoder, not on the raw measurement"

    def __init__(
        self,
        mask_size: int = 32,
        binary: bool = False,
        noise: float = 0.01,
        bits: int = 8,
        width: float = 1.0,
        similarity: float = 0.0,
        tv: float = 0.0,
        invertibility: float = 0.0,
        rip: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if mask_size < 1:
            raise ValueError(f"the mask size must be >= 1, got {mask_size}")
        self.mask_size = mask_size
        self.binary = binary
        self.noise = noise
        self.levels = 2**bits
        self.weights = {"similarity": similarity, "tv": tv, "invertibility": invertibility, "rip": rip}
        gen = torch.Generator().manual_seed(seed)
        self.mask_logits = nn.Parameter(torch.randn(mask_size, mask_size, generator=gen))
        self.decoder = MobileNetAutoencoder(width=width)

    def mask(self) -> torch.Tensor:
        """The aperture's transmission in [0, 1], (mask_size, mask_size)."""
        soft = torch.sigmoid(self.mask_logits)
        if not self.binary:
            return soft
        return soft + ((soft > 0.5).to(soft.dtype) - soft).detach()

    def psf(self) -> torch.Tensor:
        """The mask normalised to sum 1: the kernel the scene is convolved with."""
        m = self.mask()
        return m / m.sum().clamp_min(1e-6)

    def optical_image(self, x: torch.Tensor) -> torch.Tensor:
        """The image on the sensor, same size as ``x``: ``F.conv2d`` with the PSF, zero padding."""
        s = self.mask_size
        lo, hi = (s - 1) // 2, s // 2
        x = F.pad(x, (lo, hi, lo, hi))
        return F.conv2d(x, self.psf().expand(x.shape[1], 1, s, s), groups=x.shape[1])

    def measure(self, x: torch.Tensor) -> torch.Tensor:
        """The raw sensor measurement: the optical image plus read noise (training), quantised."""
        y = self.optical_image(x)
        if self.training and self.noise > 0:
            y = y + self.noise * torch.randn_like(y)
        return round_ste(y, self.levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.measure(x))

    def regulariser(self) -> torch.Tensor:
        h = self.psf()
        terms: dict[str, Callable[[], torch.Tensor]] = {
            "similarity": (h - 1 / h.numel()).square().sum,
            "tv": lambda: -((h[1:] - h[:-1]).abs().sum() + (h[:, 1:] - h[:, :-1]).abs().sum()),
            "invertibility": lambda: -torch.log(torch.fft.rfft2(h).abs().square() + 1e-8).mean(),
            "rip": lambda: -h.square().sum(),
        }
        total = torch.zeros((), device=h.device)
        for name, weight in self.weights.items():
            if weight:
                total = total + weight * terms[name]()
        return total


@OBFUSCATORS.register("lensless")
def lensless(mask_size: int = 32, binary: bool = False, noise: float = 0.01, bits: int = 8, width: float = 1.0,
             similarity: float = 0.0, tv: float = 0.0, invertibility: float = 0.0, rip: float = 0.0,
             seed: int = 0) -> LenslessCamera:
    """Coded-aperture camera with a learned 32x32 mask and a mobilenet_ae-sized decoder."""
    return LenslessCamera(mask_size, binary, noise, bits, width, similarity, tv, invertibility, rip, seed)
