"""A temporal obfuscator on video: ``veil obfuscate`` and the exported ONNX model see each frame
with the frames before it, exactly as a clip-wise application (``FrameStream``) does."""

import json

import numpy as np
import pytest
import torch

from tests.deployment.cli import run_veil
from tests.temporal import register
from veil.data.video import read_video, resize
from veil.deployment.export import output_paths
from veil.deployment.obfuscate import apply
from veil.deployment.runtime import ClipWindow, load_onnx_obfuscator
from veil.obfuscators import FrameStream
from veil.training.config import TrainConfig
from veil.training.state import build_models, load_models, save_models

SIZE = (160, 120)


@pytest.fixture
def temporal_checkpoint(tmp_path, monkeypatch):
    name = register(monkeypatch)
    torch.manual_seed(0)
    config = TrainConfig(obfuscator=name, obfuscator_args={"gain": 8.0})
    path = tmp_path / "temporal.safetensors"
    save_models(path, config, *build_models(config), {"frame_size": list(SIZE), "epoch": 0, "detector": "yolo"})
    return path


def _frames(video, n=None):
    return [resize(f.image, SIZE) for f in read_video(video)][:n]


@torch.no_grad()
def _clip_wise(obfuscator, frames):
    """The contract's reference: each frame's clip through FrameStream, one frame at a time."""
    stream = FrameStream(obfuscator)
    out = []
    for frame in frames:
        x = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255
        out.append(stream(x)[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy())
    return out


def test_veil_obfuscate_streams_a_temporal_obfuscator_like_its_clips(temporal_checkpoint, short_clip, tmp_path,
                                                                    monkeypatch, capsys):
    obfuscator = load_models(temporal_checkpoint)[0]
    frames = _frames(short_clip)
    expected = _clip_wise(obfuscator, frames)
    # batches of 8 carry the previous frame across batch boundaries
    window = ClipWindow(2)
    batched = [y for i in range(0, len(frames), 8) for y in apply(obfuscator, frames[i : i + 8], window=window)]
    assert max(int(np.abs(a.astype(int) - b).max()) for a, b in zip(batched, expected)) <= 1
    stills = apply(obfuscator, frames)  # each frame alone: what a frame-by-frame pipeline would get

    out = tmp_path / "obf.avi"
    code, _, err = run_veil(monkeypatch, capsys, "obfuscate", temporal_checkpoint, short_clip, out)
    assert code == 0, err
    written = np.stack([f.image for f in read_video(out)]).astype(float)
    assert len(written) == len(frames) == 30
    expected, stills = np.stack(expected).astype(float), np.stack(stills).astype(float)
    assert np.abs(written - expected).mean() < 4  # MJPEG's loss only
    # where the motion changes the output, the video follows the clips, not frame-by-frame stills
    moved = np.abs(expected - stills) > 40
    assert moved.sum() > 1000
    to_clips, to_stills = np.abs(written - expected)[moved].mean(), np.abs(written - stills)[moved].mean()
    assert to_clips < to_stills / 2, (to_clips, to_stills)  # seen: 19 (MJPEG blurs moving edges) vs 55


def test_export_of_a_temporal_obfuscator_takes_clips_and_streams(temporal_checkpoint, short_clip, tmp_path,
                                                                 monkeypatch, capsys):
    out = tmp_path / "temporal.onnx"
    code, _, err = run_veil(monkeypatch, capsys, "export", temporal_checkpoint, "--out", out)
    assert code == 0, err
    card = json.loads(output_paths(out)["card"].read_text())
    assert card["input"]["layout"] == "NTCHW" and card["input"]["clip"] == 2
    assert card["model"]["clip"] == 2 and card["model"]["arguments"] == {"gain": 8.0}
    assert card["model"]["transmitted"] == "a learned mix of each frame and its motion"
    assert card["parity"]["max_abs_diff"] <= card["parity"]["tolerance"]

    model = load_onnx_obfuscator(out)
    frames = _frames(short_clip, 10)
    expected = _clip_wise(load_models(temporal_checkpoint)[0], frames)
    streamed = [model(frame) for frame in frames]  # one frame per call, as a camera sends them
    assert max(int(np.abs(a.astype(int) - b).max()) for a, b in zip(streamed, expected)) <= 1
    model.reset()  # a new stream: its first frame's clip is that frame repeated
    still = apply(load_models(temporal_checkpoint)[0], [frames[5]])[0]
    assert int(np.abs(model(frames[5]).astype(int) - still).max()) <= 1
