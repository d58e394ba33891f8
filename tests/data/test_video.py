import numpy as np
import pytest

from veil.data.video import parse_size, read_video, write_video
from veil.errors import VeilError


def test_vtest_decodes_as_real_cctv(vtest):
    frames = list(read_video(vtest))
    assert len(frames) == 795
    assert frames[0].image.shape == (576, 768, 3) and frames[0].image.dtype == np.uint8
    assert frames[0].image.std() > 20  # real content, not a blank frame


def test_sampling_at_lower_fps_keeps_time_order(vtest_clip):
    frames = list(read_video(vtest_clip, fps=2.5))
    assert len(frames) == 75  # 300 frames at 10 fps -> every 4th
    assert [f.index for f in frames[:3]] == [0, 4, 8]
    assert all(a.time < b.time for a, b in zip(frames, frames[1:]))


def test_write_then_read_round_trip(tmp_path):
    frames = [np.full((64, 96, 3), v, np.uint8) for v in (10, 120, 240)]
    assert write_video(tmp_path / "c.avi", iter(frames), fps=5) == 3
    back = list(read_video(tmp_path / "c.avi"))
    assert len(back) == 3 and abs(int(back[1].image.mean()) - 120) < 6


@pytest.mark.parametrize("content", [b"", b"RIFF0000AVI not really a video" * 50])
def test_empty_or_corrupt_video_is_a_clear_error(tmp_path, content):
    bad = tmp_path / "bad.avi"
    bad.write_bytes(content)
    with pytest.raises(VeilError, match="decode"):
        list(read_video(bad))


def test_missing_video(tmp_path):
    with pytest.raises(VeilError, match="not found"):
        list(read_video(tmp_path / "nope.mp4"))


@pytest.mark.parametrize("text", ["0x480", "640x-1", "100000x10", "640", "axb"])
def test_impossible_sizes_are_refused(text):
    with pytest.raises(VeilError):
        parse_size(text)


def test_size_parses():
    assert parse_size("640x480") == (640, 480)
