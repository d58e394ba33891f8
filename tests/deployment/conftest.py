"""Fixtures for deployment: a small-frame checkpoint and a real clip with audio and metadata."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from veil.training.config import TrainConfig
from veil.training.state import build_models, save_models

# What a phone or an IP camera writes into a container: all of it identifies time and place.
SOURCE_TAGS = {"title": "Gate 3 camera", "comment": "device: Axis P1448 serial 00408C123456",
               "location": "+48.8584+002.2945/", "creation_time": "2024-05-01T10:00:00Z", "artist": "J. Doe"}


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory) -> Path:
    """An untrained obfuscator checkpoint at 160x120 (speed; training does not change the plumbing)."""
    torch.manual_seed(0)
    config = TrainConfig()
    obfuscator, deobfuscator = build_models(config)
    path = tmp_path_factory.mktemp("ck") / "obfuscator.safetensors"
    save_models(path, config, obfuscator, deobfuscator, {"frame_size": [160, 120], "epoch": 0, "detector": "yolo"})
    return path


def ffmpeg() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        pytest.fail("these tests need Debian's ffmpeg (apt-get install ffmpeg): make test installs it")
    return path


def probe(path: Path) -> dict:
    """ffprobe's view of a file: streams (type, rate, frame count, tags) and container tags."""
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_entries",
                          "stream=codec_type,r_frame_rate,nb_read_frames:stream_tags:format_tags", "-of", "json",
                          str(path)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def rate(stream: dict) -> float:
    num, den = stream["r_frame_rate"].split("/")
    return int(num) / int(den)


@pytest.fixture(scope="session")
def clip_with_audio(vtest, tmp_path_factory) -> Path:
    """3 s of real vtest footage at 29.97 fps (NTSC, a non-integer rate), a sine audio track, and tags."""
    path = tmp_path_factory.mktemp("av") / "camera.mp4"
    tags = [arg for key, value in SOURCE_TAGS.items() for arg in ("-metadata", f"{key}={value}")]
    subprocess.run([ffmpeg(), "-v", "error", "-nostdin", "-i", str(vtest), "-f", "lavfi", "-i",
                    "sine=frequency=440:sample_rate=16000", "-t", "1", "-r", "30000/1001", "-s", "320x240",
                    "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", *tags, str(path)], check=True)
    info = probe(path)
    assert [s["codec_type"] for s in info["streams"]] == ["video", "audio"]
    assert SOURCE_TAGS["location"] in info["format"]["tags"].values()
    return path
