"""Reconstruction attack: a fresh U-Net trained to invert an obfuscator (O(x) -> x).

Unlike the training-time deobfuscator D, this adversary is trained after the obfuscator is
frozen, for as long as the audit allows, on (O(x), x) pairs of the train split; its skip
connections let it copy any spatial detail O leaves in. Quality is PSNR / SSIM on the test
split, and the audit attacks its reconstructions with the same attackers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops.misc import Conv2dNormActivation

from veil.adversaries.registry import DEOBFUSCATORS
from veil.obfuscators.ops import pad_to_multiple


def _double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(Conv2dNormActivation(c_in, c_out, 3), Conv2dNormActivation(c_out, c_out, 3))


class UNet(nn.Module):
    """Ronneberger et al. 2015 U-Net (BN, bilinear upsampling), RGB in, RGB in [0, 1] out."""

    def __init__(self, channels: tuple[int, ...] = (16, 32, 64, 128)) -> None:
        super().__init__()
        self.stride = 2 ** (len(channels) - 1)
        self.down = nn.ModuleList([_double_conv(3, channels[0])])
        self.down.extend(_double_conv(a, b) for a, b in zip(channels[:-1], channels[1:]))
        rev = channels[::-1]
        self.up = nn.ModuleList(_double_conv(a + b, b) for a, b in zip(rev[:-1], rev[1:]))
        self.out = nn.Conv2d(channels[0], 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.stride)
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for block, skip in zip(self.up, skips[-2::-1]):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], 1))
        return torch.sigmoid(self.out(x))[..., :h, :w]


@DEOBFUSCATORS.register("unet")
def unet(width: float = 1.0) -> UNet:
    """The audit's reconstruction adversary."""
    return UNet(tuple(max(8, int(round(c * width))) for c in (16, 32, 64, 128)))


def _float(x: torch.Tensor) -> torch.Tensor:
    return x.float().div(255) if x.dtype == torch.uint8 else x.float()


def train_inverse(
    obfuscated: torch.Tensor, original: torch.Tensor, steps: int = 300, crop: int = 96, batch_size: int = 8,
    lr: float = 2e-3, width: float = 1.0, seed: int = 0, device: str | torch.device = "cpu",
) -> UNet:
    """Train a fresh U-Net to map ``obfuscated`` frames to ``original`` ones (both (F, 3, H, W),
    uint8 or float in [0, 1], aligned) on random ``crop`` x ``crop`` patches with MSE."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = unet(width).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    n, _, h, w = original.shape
    crop = min(crop, h, w)
    for _ in range(steps):
        fi = torch.randint(0, n, (batch_size,), generator=gen)
        ys = torch.randint(0, h - crop + 1, (batch_size,), generator=gen)
        xs = torch.randint(0, w - crop + 1, (batch_size,), generator=gen)
        src = torch.stack([obfuscated[f, :, y : y + crop, x : x + crop] for f, y, x in zip(fi, ys, xs)])
        dst = torch.stack([original[f, :, y : y + crop, x : x + crop] for f, y, x in zip(fi, ys, xs)])
        loss = F.mse_loss(model(_float(src).to(device)), _float(dst).to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


@torch.no_grad()
def reconstruct(model: nn.Module, frames: torch.Tensor, batch_size: int = 4) -> torch.Tensor:
    """``model`` applied to uint8 or float frames; uint8 (F, 3, H, W) out."""
    device = next(model.parameters()).device
    outs = [model(_float(frames[i : i + batch_size]).to(device)).clamp(0, 1).mul(255).round().byte().cpu()
            for i in range(0, len(frames), batch_size)]
    return torch.cat(outs) if outs else frames.new_zeros(frames.shape, dtype=torch.uint8)


@torch.no_grad()
def reconstruction_quality(reconstructed: torch.Tensor, original: torch.Tensor) -> dict[str, float]:
    """Mean per-frame PSNR (dB) and SSIM (data range 1) of reconstructions against originals."""
    # imported here: torchmetrics takes ~2 s to import, and every command that builds a checkpoint's
    # models imports this module (veil obfuscate, veil export), most of them never measuring similarity
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    psnr, ssim = [], []
    for a, b in zip(reconstructed, original):
        a, b = _float(a)[None], _float(b)[None]
        psnr.append(float(peak_signal_noise_ratio(a, b, data_range=1.0)))
        # (typed Tensor | tuple: it is a tuple only with return_full_image / return_contrast_sensitivity)
        ssim.append(float(structural_similarity_index_measure(a, b, data_range=1.0)))  # type: ignore[arg-type]
    n = max(len(psnr), 1)
    return {"psnr": sum(psnr) / n, "ssim": sum(ssim) / n}
