"""The U-Net reconstruction adversary."""

from __future__ import annotations

import torch

from veil.adversaries import DEOBFUSCATORS
from veil.adversaries.unet import reconstruct, reconstruction_quality, train_inverse


def test_unet_is_registered_and_keeps_any_size():
    net = DEOBFUSCATORS.build("unet", width=0.5).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, 37, 51))
    assert out.shape == (2, 3, 37, 51) and out.min() >= 0 and out.max() <= 1


def test_unet_learns_to_invert_a_simple_obfuscation():
    torch.manual_seed(0)
    # smooth random "frames" and an invertible obfuscation (colour inversion)
    original = torch.nn.functional.interpolate(torch.rand(4, 3, 12, 16), size=(96, 128), mode="bilinear")
    original = (original * 255).round().byte()
    obfuscated = 255 - original
    before = reconstruction_quality(obfuscated, original)["psnr"]
    model = train_inverse(obfuscated, original, steps=60, crop=48, batch_size=4, width=0.5, lr=5e-3)
    after = reconstruction_quality(reconstruct(model, obfuscated), original)
    assert after["psnr"] > before + 5
    assert 0 < after["ssim"] <= 1
