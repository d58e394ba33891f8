"""The edge's codecs on real vtest frames: what the audit measures after, and the bytes it reports."""

from __future__ import annotations

import pytest
import torch

from tests.frames import vtest_frames
from veil.data.codec import bytes_per_frame, decode, encode, parse_codec, round_trip
from veil.errors import VeilError


@pytest.fixture(scope="module")
def frames(vtest) -> torch.Tensor:
    return vtest_frames(vtest, [100, 140]).mul(255).round().byte()


def test_a_spec_names_a_codec_and_its_quality():
    assert parse_codec("jpeg@85") == ("jpeg", 85)
    assert parse_codec("WebP@60") == ("webp", 60)
    assert parse_codec("jpeg") == ("jpeg", 85)  # the edge agent's default quality
    for bad, fragment in (("png", "codec must be one of"), ("jpeg@0", "1-100"), ("jpeg@high", "whole number")):
        with pytest.raises(VeilError, match=fragment):
            parse_codec(bad)


@pytest.mark.parametrize("spec", ["jpeg@85", "webp@80"])
def test_the_round_trip_is_what_the_cloud_decodes_and_costs_what_the_edge_sends(frames, spec):
    decoded, sent = round_trip(frames, spec)
    assert decoded.shape == frames.shape and decoded.dtype == torch.uint8
    assert not torch.equal(decoded, frames)  # lossy
    error = (decoded.float() - frames.float()).abs().mean()
    assert 0 < error < 6  # close at this quality: a few grey levels on average
    name, quality = parse_codec(spec)
    image = frames[0].permute(1, 2, 0).contiguous().numpy()
    data = encode(image, name, quality)
    assert torch.equal(torch.from_numpy(decode(data, name)).permute(2, 0, 1), decoded[0])
    assert sent == pytest.approx(sum(len(encode(f.permute(1, 2, 0).contiguous().numpy(), name, quality))
                                     for f in frames) / len(frames))
    assert bytes_per_frame(frames, spec) == pytest.approx(sent)


def test_lower_quality_and_smoother_frames_cost_fewer_bytes(frames):
    assert bytes_per_frame(frames, "jpeg@30") < bytes_per_frame(frames, "jpeg@85")
    blurred = torch.nn.functional.avg_pool2d(frames.float(), 9, 1, 4).round().byte()
    assert bytes_per_frame(blurred, "jpeg@85") < bytes_per_frame(frames, "jpeg@85")
