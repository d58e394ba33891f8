"""What each new family promises beyond the contract: BDQ's quantiser, the lensless forward model,
low resolution's bottleneck, the U-Net's skips."""

import pytest
import torch
import torch.nn.functional as F

from veil.obfuscators import OBFUSCATORS
from veil.obfuscators.bdq import LearnedQuantiser


# --- BDQ -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("levels", [2, 16])
def test_bdq_quantiser_is_monotone_with_exactly_its_levels(levels):
    torch.manual_seed(0)
    q = LearnedQuantiser(levels)
    with torch.no_grad():  # learned, uneven thresholds
        q.bin_logits.add_(torch.randn(levels))
    q.eval()
    u = torch.linspace(-0.1, 1.1, 20001)
    y = q(u)
    assert torch.all(y[1:] >= y[:-1])
    values = torch.unique(y)
    assert len(values) == levels
    torch.testing.assert_close(values, torch.arange(levels) / (levels - 1))


def test_bdq_quantiser_anneals_towards_the_hard_one():
    q = LearnedQuantiser(16)
    u = torch.rand(5000)
    hard = q.eval()(u)
    q.train()
    gaps = []
    for temperature in (1.0, 10.0, 100.0):
        q.temperature = temperature
        soft = q(u)
        assert torch.all(soft[u.argsort()].diff() >= -1e-6)  # monotone at every temperature
        gaps.append((soft - hard).abs().mean().item())
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 0.01


def test_bdq_set_progress_anneals_the_temperature():
    model = OBFUSCATORS.build("bdq", variant="frame+motion", temperature_start=2.0, temperature_end=200.0)
    model.set_progress(0.0)
    assert model.motion_quantiser.temperature == pytest.approx(2.0)
    model.set_progress(0.5)
    assert model.frame_quantiser.temperature == pytest.approx(20.0)
    model.set_progress(1.0)
    assert model.motion_quantiser.temperature == pytest.approx(200.0)


def test_bdq_motion_output_has_levels_values_and_is_grey_without_motion():
    model = OBFUSCATORS.build("bdq", levels=16).eval()
    ramp = torch.linspace(0, 1, 256).expand(1, 3, 32, 256)
    still = torch.stack([ramp, ramp], 1)
    with torch.no_grad():
        grey = torch.unique(model(still))  # no motion: one level, the middle one (16 levels: 7/15 or 8/15)
        assert len(grey) == 1 and round(grey.item() * 15) in (7, 8)
        moving = torch.stack([1 - ramp, ramp], 1)  # difference sweeps -1 .. 1 across the width
        y = model(moving)
    assert len(torch.unique(y)) == 16
    torch.testing.assert_close(torch.unique(y), torch.arange(16) / 15)


def test_bdq_output_does_not_depend_on_the_batch_even_while_training():
    """The released code's min/max normalisation over the batch would fail this."""
    model = OBFUSCATORS.build("bdq", variant="frame+motion").train()
    torch.manual_seed(0)
    clip = torch.rand(1, 2, 3, 24, 32) * 0.2 + 0.4  # a low-contrast clip
    with torch.no_grad():
        alone = model(clip)
        for other in (torch.zeros_like(clip), torch.ones_like(clip), torch.rand(3, 2, 3, 24, 32)):
            torch.testing.assert_close(model(torch.cat([clip, other]))[:1], alone, atol=1e-6, rtol=0)


def test_bdq_has_a_few_dozen_parameters_and_reads_frames_t_and_t_minus_k():
    for variant in ("motion", "frame+motion"):
        assert sum(p.numel() for p in OBFUSCATORS.build("bdq", variant=variant).parameters()) <= 36
    model = OBFUSCATORS.build("bdq", k=3).eval()
    assert model.clip == 4
    clip = torch.rand(1, 4, 3, 16, 16)
    changed = clip.clone()
    changed[:, 1:3] = torch.rand(1, 2, 3, 16, 16)  # frames between t-k and t do not matter
    with torch.no_grad():
        torch.testing.assert_close(model(changed), model(clip))
        changed[:, 0] = 1 - changed[:, 0]
        assert not torch.equal(model(changed), model(clip))


def test_bdq_refuses_unknown_variants_and_wrong_clips():
    with pytest.raises(ValueError, match="variant"):
        OBFUSCATORS.build("bdq", variant="difference")
    with pytest.raises(ValueError, match="clips"):
        OBFUSCATORS.build("bdq")(torch.rand(1, 3, 16, 16))


# --- lensless --------------------------------------------------------------------------------------
@pytest.mark.parametrize("mask_size", [32, 7])
def test_lensless_forward_model_is_a_convolution_with_the_mask(mask_size):
    model = OBFUSCATORS.build("lensless", mask_size=mask_size).eval()
    x = torch.rand(2, 3, 45, 61)
    psf = model.psf().detach()
    assert psf.min() >= 0 and psf.sum().item() == pytest.approx(1.0)
    lo, hi = (mask_size - 1) // 2, mask_size // 2
    expected = F.conv2d(F.pad(x, (lo, hi, lo, hi)), psf.expand(3, 1, mask_size, mask_size), groups=3)
    with torch.no_grad():
        torch.testing.assert_close(model.optical_image(x), expected)
        measured = model.measure(x)
    torch.testing.assert_close(measured, torch.round(expected * 255) / 255)  # 8-bit, no noise at eval
    assert torch.equal(measured * 255, (measured * 255).round())


def test_lensless_point_source_images_the_mask():
    """A point of light lands on the sensor as the (flipped) mask: the coded-aperture camera's PSF."""
    model = OBFUSCATORS.build("lensless").eval()
    s, i, j = 32, 40, 50
    x = torch.zeros(1, 3, 80, 100)
    x[..., i, j] = 1
    with torch.no_grad():
        y = model.optical_image(x)[0, 0]
    lo = (s - 1) // 2
    patch = y[i + lo - s + 1 : i + lo + 1, j + lo - s + 1 : j + lo + 1].flip(0, 1)
    torch.testing.assert_close(patch, model.psf().detach())
    assert y.sum().item() == pytest.approx(1.0, abs=1e-5)  # all the light, nowhere else


def test_lensless_binary_mask_and_sensor_noise():
    model = OBFUSCATORS.build("lensless", binary=True, noise=0.05)
    assert set(torch.unique(model.mask().detach()).tolist()) <= {0.0, 1.0}
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        assert not torch.equal(model.train().measure(x), model.train().measure(x))  # noise while training
        assert torch.equal(model.eval().measure(x), model.eval().measure(x))  # none at inference


def test_lensless_mask_losses():
    def with_mask(open_: bool, **weights):
        model = OBFUSCATORS.build("lensless", mask_size=8, **weights)
        with torch.no_grad():
            model.mask_logits.fill_(10.0 if open_ else -10.0)
            if not open_:
                model.mask_logits[4, 4] = 10.0  # a pinhole
        return model

    assert with_mask(True).regulariser().item() == 0  # all weights 0 by default
    # similarity to the open aperture: 0 for it, positive for a pinhole
    assert with_mask(True, similarity=1).regulariser().item() == pytest.approx(0, abs=1e-9)
    assert with_mask(False, similarity=1).regulariser().item() > 0.5
    # RIP: -||H||^2 prefers the energy-spreading open mask to the pinhole
    assert with_mask(False, rip=1).regulariser() < with_mask(True, rip=1).regulariser()
    # TV (negative, as in the talk): the flat open mask has none; invertibility: a pinhole's flat
    # spectrum inverts better than the open mask's (near-zeros off DC)
    assert with_mask(True, tv=1).regulariser().item() == pytest.approx(0, abs=1e-6)
    assert with_mask(False, tv=1).regulariser() < 0
    assert with_mask(False, invertibility=1).regulariser() < with_mask(True, invertibility=1).regulariser()
    model = OBFUSCATORS.build("lensless", similarity=1, tv=1, invertibility=1, rip=1)
    model.regulariser().backward()
    assert model.mask_logits.grad.abs().sum() > 0


# --- lowres ----------------------------------------------------------------------------------------
def test_lowres_output_is_a_function_of_the_low_resolution_image_only():
    model = OBFUSCATORS.build("lowres").double().eval()
    with torch.no_grad():  # a learned (not area) downsampler
        model.down.weight.add_(0.002 * torch.randn_like(model.down.weight))
    w = model.down.weight.detach().reshape(3, -1)  # one 3x16x16 block -> 3 values
    r = torch.randn(w.shape[1], dtype=torch.float64)
    null = r - w.T @ torch.linalg.solve(w @ w.T, w @ r)  # invisible to the downsampler
    block = (0.1 * null / null.abs().max()).reshape(1, 3, 16, 16)
    x1 = 0.3 + 0.4 * torch.rand(2, 3, 48, 64, dtype=torch.float64)
    x2 = x1 + block.repeat(1, 1, 3, 4)
    assert (x2 - x1).abs().max() > 0.05
    with torch.no_grad():
        torch.testing.assert_close(model.downsample(x2), model.downsample(x1))
        torch.testing.assert_close(model(x2), model(x1), atol=1e-9, rtol=0)
        x3 = x1.clone()
        x3[..., :16, :16] = 1 - x3[..., :16, :16]  # a change the low-res image sees does show
        assert not torch.allclose(model(x3), model(x1))


def test_lowres_transmits_an_8_bit_image_a_sixteenth_of_each_side():
    model = OBFUSCATORS.build("lowres").eval()
    with torch.no_grad():
        low = model.downsample(torch.rand(2, 3, 77, 101))
        assert low.shape == (2, 3, 5, 7)
        assert torch.equal(low * 255, (low * 255).round())
        x = torch.rand(1, 3, 32, 32)
        area = F.avg_pool2d(x, 16)  # initialised as area averaging
        torch.testing.assert_close(model.downsample(x), torch.round(area * 255) / 255)


# --- unet ------------------------------------------------------------------------------------------
def test_unet_refuses_skips_that_could_carry_pixels():
    for bad in ([2], [1], [16]):  # stride 1-2, or the bottom (which is not a skip)
        with pytest.raises(ValueError, match="stride >= 4"):
            OBFUSCATORS.build("unet", skip_from=bad)
    model = OBFUSCATORS.build("unet", width=2.0)
    for s, projection in model.project.items():
        assert projection[0].out_channels <= 3 * int(s) ** 2 // 2  # fewer numbers than the pixels covered
    assert sum(p.numel() for p in model.parameters()) > sum(
        p.numel() for p in OBFUSCATORS.build("mobilenet_ae", width=2.0).parameters())
