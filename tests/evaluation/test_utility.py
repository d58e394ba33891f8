import pytest
import torch

from veil.data.dataset import FrameDataset
from veil.evaluation.utility import detection_ap, evaluate_utility, image_similarity


class Identity(torch.nn.Module):
    def forward(self, x):
        return x


def test_identity_obfuscator_keeps_full_utility_and_similarity(dataset, yolo):
    test = FrameDataset(dataset, "val")
    result = evaluate_utility(yolo, test, Identity(), Identity())
    assert result["person_ap"]["original"] == pytest.approx(1.0, abs=0.02)
    assert result["relative_ap"]["obfuscated"] == pytest.approx(1.0)
    assert result["similarity_to_original"]["obfuscated"]["ssim"] == pytest.approx(1.0, abs=1e-4)
    assert result["similarity_to_original"]["reconstructed"]["psnr"] > 60


def test_destroying_the_image_destroys_utility(dataset, yolo):
    test = FrameDataset(dataset, "val")

    def noise(x):
        return torch.rand(x.shape, generator=torch.Generator().manual_seed(0))

    assert detection_ap(yolo, test, noise) < 0.05
    sim = image_similarity(test, noise)
    assert sim["ssim"] < 0.1 and sim["psnr"] < 12
