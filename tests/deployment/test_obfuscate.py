import cv2
import pytest
import torch

from veil.data.video import read_video
from veil.deployment.obfuscate import obfuscate_media
from veil.errors import VeilError
from veil.training.config import TrainConfig
from veil.training.state import build_models, save_models


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    config = TrainConfig()
    obfuscator, deobfuscator = build_models(config)
    path = tmp_path_factory.mktemp("ck") / "obfuscator.safetensors"
    save_models(path, config, obfuscator, deobfuscator, {"frame_size": [320, 240]})
    return path


def test_video_in_video_out(checkpoint, vtest_clip, tmp_path):
    out = tmp_path / "obf.mp4"
    n = obfuscate_media(checkpoint, vtest_clip, out)
    frames = list(read_video(out))
    assert n == 300 and len(frames) == 300
    assert frames[0].image.shape == (240, 320, 3)
    source = cv2.resize(next(read_video(vtest_clip)).image, (320, 240))
    assert abs(frames[0].image.astype(float) - source).mean() > 5  # it changed the pixels


def test_image_folder_in_folder_out(checkpoint, vtest_clip, tmp_path):
    src = tmp_path / "imgs"
    src.mkdir()
    for f in read_video(vtest_clip, fps=1):
        if f.index < 30:
            cv2.imwrite(str(src / f"f{f.index:03d}.jpg"), cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR))
    assert obfuscate_media(checkpoint, src, tmp_path / "out") == 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["f000.png", "f010.png", "f020.png"]


def test_corrupt_video_leaves_no_output(checkpoint, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x01 not a video" * 100)
    with pytest.raises(VeilError):
        obfuscate_media(checkpoint, bad, tmp_path / "out.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4"]
