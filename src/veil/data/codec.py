"""The still-image codecs a camera uploads with (JPEG, WebP): encode as the edge agent does, decode as
the cloud does, and the round trip between them that the audit applies, so that it measures the frames
the cloud receives and the bytes each one costs.

A spec names a codec and its quality: ``jpeg@85`` (the edge agent's default), ``webp@80``, or ``jpeg``
(quality 85)."""

from __future__ import annotations

import io

import cv2
import numpy as np
import torch
from PIL import Image

from veil.errors import VeilError

#: name -> (file suffix, OpenCV quality flag, media type, PIL format)
ENCODINGS = {"jpeg": (".jpg", cv2.IMWRITE_JPEG_QUALITY, "image/jpeg", "JPEG"),
             "webp": (".webp", cv2.IMWRITE_WEBP_QUALITY, "image/webp", "WEBP")}
DEFAULT_QUALITY = 85  # the edge agent's --quality


def parse_codec(spec: str) -> tuple[str, int]:
    """``"jpeg@85"`` -> ``("jpeg", 85)``; one clear VeilError for anything else."""
    name, _, quality = spec.strip().lower().partition("@")
    if name not in ENCODINGS:
        raise VeilError(f"codec must be one of {', '.join(ENCODINGS)} (as NAME or NAME@QUALITY), got {spec!r}")
    try:
        q = int(quality) if quality else DEFAULT_QUALITY
    except ValueError:
        raise VeilError(f"a codec's quality is a whole number 1-100, as in jpeg@85; got {spec!r}") from None
    if not 1 <= q <= 100:
        raise VeilError(f"a codec's quality must be 1-100, got {q} in {spec!r}")
    return name, q


def encode(image: np.ndarray, encoding: str, quality: int) -> bytes:
    """``image`` (H, W, 3 RGB uint8) as JPEG or WebP bytes, as the edge agent sends it."""
    suffix, flag, _, _ = ENCODINGS[encoding]
    ok, buf = cv2.imencode(suffix, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [flag, quality])
    if not ok:
        raise VeilError(f"OpenCV cannot encode {encoding}")
    return buf.tobytes()


def decode(data: bytes, encoding: str) -> np.ndarray:
    """Bytes from :func:`encode` back to RGB uint8, with the decoder the cloud uses (Pillow)."""
    with Image.open(io.BytesIO(data), formats=[ENCODINGS[encoding][3]]) as img:
        return np.array(img.convert("RGB"))  # a writable copy


def _encoded(frames: torch.Tensor, spec: str) -> tuple[str, list[bytes]]:
    """Every frame of ``frames`` (N, 3, H, W) uint8 encoded by ``spec``, and the codec's name."""
    encoding, quality = parse_codec(spec)
    return encoding, [encode(np.ascontiguousarray(f.permute(1, 2, 0).numpy()), encoding, quality) for f in frames]


def round_trip(frames: torch.Tensor, spec: str) -> tuple[torch.Tensor, float]:
    """``frames`` (N, 3, H, W) uint8 after encoding and decoding by ``spec``, and the mean bytes per frame."""
    encoding, encoded = _encoded(frames, spec)
    out = torch.empty_like(frames)
    for i, data in enumerate(encoded):
        out[i] = torch.from_numpy(decode(data, encoding)).permute(2, 0, 1)
    return out, float(np.mean([len(d) for d in encoded])) if encoded else 0.0


def bytes_per_frame(frames: torch.Tensor, spec: str) -> float:
    """Mean encoded size of ``frames`` (N, 3, H, W) uint8 by ``spec``, without decoding them."""
    encoded = _encoded(frames, spec)[1]
    return float(np.mean([len(d) for d in encoded])) if encoded else 0.0
