"""Classic baselines: paper strengths, and a monotone effect of strength on a real frame."""

from __future__ import annotations

import pytest
import torch
from torchmetrics.functional.image import structural_similarity_index_measure as ssim

from veil.obfuscators.baselines import BASELINES

EXPECTED = {"gaussian_blur", "noise", "quantisation", "pixelation", "detect_blur", "detect_mask", "grey", "downsample",
            "grey_downsample"}


@pytest.fixture(scope="module")
def frame(dataset):
    """One real vtest test frame (1, 3, 480, 640) in [0, 1] and its pseudo-label boxes."""
    from veil.data.dataset import FrameDataset

    images, targets = FrameDataset(dataset, "test").batch([0])
    assert len(targets[0].boxes) > 0
    return images, [targets[0].boxes]


def test_registry_holds_every_baseline_at_paper_strength():
    assert set(BASELINES.names()) >= EXPECTED
    assert BASELINES.build("gaussian_blur").strength == 9
    assert BASELINES.build("noise").strength == 0.075
    assert BASELINES.build("quantisation").strength == 8
    assert BASELINES.build("pixelation").strength == pytest.approx(1 / 3)
    for name in EXPECTED:
        assert BASELINES.build(name).stronger in ("higher", "lower")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_stronger_means_less_like_the_original(name, frame):
    images, boxes = frame
    baseline = BASELINES.build(name)
    strengths = baseline.sweep
    ordered = sorted(strengths, reverse=baseline.stronger == "lower")
    assert list(strengths) == ordered, "sweep must run from weak to strong"
    scores = []
    for s in strengths:
        out = baseline.with_strength(s)(images, boxes)
        assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
        scores.append(float(ssim(out, images, data_range=1.0)))
    assert all(a > b for a, b in zip(scores, scores[1:])), f"SSIM not decreasing with strength: {scores}"


def test_detect_then_anonymise_runs_the_detector_on_the_original(frame):
    images, boxes = frame

    class FakeDetector:
        pseudo_label_threshold = 0.5

        def __init__(self):
            self.calls = 0

        def detect(self, x, conf):
            from veil.detectors import Detections

            self.calls += 1
            assert conf == 0.5
            return [Detections(boxes[0], torch.ones(len(boxes[0])), torch.zeros(len(boxes[0])))] * len(x)

    det = FakeDetector()
    masked = BASELINES.build("detect_mask", detector=det)(images)
    assert det.calls == 1
    assert torch.allclose(masked, BASELINES.build("detect_mask")(images, boxes))
    x1, y1, x2, y2 = (int(v) for v in boxes[0][0].tolist())
    assert torch.allclose(masked[0, :, y1 + 1 : y2 - 1, x1 + 1 : x2 - 1], torch.tensor(0.5))
    # outside every box the frame is untouched
    outside = torch.ones(images.shape[-2:], dtype=torch.bool)
    for bx in boxes[0].tolist():
        outside[int(bx[1]) : int(bx[3]) + 2, int(bx[0]) : int(bx[2]) + 2] = False
    assert torch.equal(masked[0][:, outside], images[0][:, outside])


def test_noise_is_reproducible():
    x = torch.rand(1, 3, 32, 32)
    noise = BASELINES.build("noise")
    assert torch.equal(noise(x), noise(x))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_none_strength_returns_8bit_frames_unchanged(name, frame):
    """The sweep anchors every curve at the original frames; that holds only if the no-op
    strength really is one after the 8-bit round trip the audit applies."""
    images, boxes = frame
    baseline = BASELINES.build(name)
    out = baseline.with_strength(baseline.none_strength)(images, boxes)
    assert torch.equal(out.mul(255).round().byte(), images.mul(255).round().byte())
    weakest = baseline.with_strength(baseline.sweep[0])(images, boxes)
    assert not torch.equal(weakest.mul(255).round().byte(), images.mul(255).round().byte())


@pytest.mark.parametrize("name", ["gaussian_blur", "detect_blur"])
def test_blur_strengths_snap_to_odd_kernels(name):
    baseline = BASELINES.build(name)
    assert [baseline.snap(s) for s in (4.0, 5.4, 6.9, 12.0)] == [5.0, 5.0, 7.0, 13.0]


def test_noise_does_not_depend_on_batching():
    """A utility probe on a few frames must see the noise the full evaluation sees."""
    x = torch.rand(5, 3, 16, 16).mul(255).round().div(255)
    noise = BASELINES.build("noise")
    assert torch.equal(noise(x)[2:4], noise(x[2:4]))
    assert not torch.equal(noise(x)[0] - x[0], noise(x)[1] - x[1])


def test_grey_is_bt601_luma_in_three_identical_channels(frame):
    images, _ = frame
    out = BASELINES.build("grey")(images)
    luma = 0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2]
    for c in range(3):
        torch.testing.assert_close(out[:, c], luma, atol=1e-6, rtol=0)
    half = BASELINES.build("grey", strength=0.5)(images)
    torch.testing.assert_close(half, (images + out) / 2, atol=1e-6, rtol=0)


def test_downsample_is_area_down_and_bilinear_up(frame):
    import torch.nn.functional as F

    images, _ = frame  # 480 x 640: a multiple of 8, so area = an 8x8 mean
    out = BASELINES.build("downsample", strength=8)(images)
    small = F.interpolate(images, size=(60, 80), mode="area")
    expected = F.interpolate(small, size=(480, 640), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    assert BASELINES.build("downsample").strength == 4 and BASELINES.build("downsample").snap(5.4) == 5
    odd = BASELINES.build("downsample", strength=3)(images[..., :101, :77])  # not a multiple: edges replicated
    assert odd.shape == (1, 3, 101, 77)


def test_grey_downsample_is_both(frame):
    images, _ = frame
    out = BASELINES.build("grey_downsample", strength=4)(images)
    grey = BASELINES.build("grey")(images)
    torch.testing.assert_close(out, BASELINES.build("downsample", strength=4)(grey), atol=1e-6, rtol=0)
    assert torch.equal(out[:, 0], out[:, 2])


def test_only_camera_side_baselines_export():
    from veil.errors import VeilError
    from veil.obfuscators.baselines import exportable

    assert set(exportable()) == {"grey", "downsample", "grey_downsample", "quantisation"}
    with pytest.raises(VeilError, match="no export path"):
        BASELINES.build("detect_mask").module()
