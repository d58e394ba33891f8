"""Malformed uploads get a 4xx with a message, never a 500; then a hypothesis fuzz run from the OpenAPI spec."""

import io
import json
import os

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.cloud.conftest import clip_frames


@pytest.fixture(scope="module")
def frame(clip) -> np.ndarray:
    return clip_frames(clip)[5]


def encoded(image: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt)
    return buf.getvalue()


def post(server, tokens, body, content_type="image/jpeg", camera="cam1"):
    headers = {"Authorization": f"Bearer {tokens[1]['cam1']}", "Content-Type": content_type}
    return httpx.post(f"{server.url}/v1/cameras/{camera}/frames", content=body, headers=headers, timeout=60)


def assert_client_error(response, status, fragment):
    assert response.status_code == status, response.text
    assert fragment in response.json()["detail"]


def test_garbage_bytes(server, tokens):
    assert_client_error(post(server, tokens, b"\x00garbage" * 100), 400, "not a JPEG image")


@pytest.mark.parametrize("fmt, content_type", [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp")])
def test_truncated_image(server, tokens, frame, fmt, content_type):
    body = encoded(frame, fmt)
    assert post(server, tokens, body, content_type).status_code == 200  # the whole image is fine
    assert_client_error(post(server, tokens, body[: len(body) // 2], content_type), 400, f"corrupt {fmt}")


def test_empty_body(server, tokens):
    assert_client_error(post(server, tokens, b""), 400, "empty body")


def test_oversized_body(server, tokens):
    assert_client_error(post(server, tokens, os.urandom(500_000)), 413, "over the limit of 400000 bytes")


def test_oversized_chunked_body(server, tokens):
    chunks = iter([b"\xff\xd8\xff" + b"\0" * 200_000, b"\0" * 300_000])  # no Content-Length: counted as it comes
    assert_client_error(post(server, tokens, chunks), 413, "over the limit of 400000 bytes")


def test_too_many_pixels(server, tokens):
    big = encoded(np.zeros((1100, 1000, 3), np.uint8), "PNG")  # small file, 1.1 M pixels > 1 M limit
    assert len(big) < 400_000
    assert_client_error(post(server, tokens, big, "image/png"), 413, "over the limit of 1000000 pixels")


@pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream", "image/gif", ""])
def test_wrong_content_type(server, tokens, frame, content_type):
    assert_client_error(post(server, tokens, encoded(frame, "JPEG"), content_type), 415, "content type must be")


def test_mislabelled_image(server, tokens, frame):
    assert_client_error(post(server, tokens, encoded(frame, "PNG"), "image/jpeg"), 400, "not a JPEG image")


def test_bad_camera_name(server, tokens, frame):
    r = post(server, tokens, encoded(frame, "JPEG"), camera="bad%20name")
    assert r.status_code == 422  # FastAPI's validation of the spec's path pattern


def test_openapi_spec_and_health(server):
    spec = httpx.get(f"{server.url}/openapi.json").json()
    body = spec["paths"]["/v1/cameras/{camera}/frames"]["post"]["requestBody"]
    assert body["required"] and set(body["content"]) == {"image/jpeg", "image/webp", "image/png"}
    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"


FUZZ_CASES = 120


def test_fuzz_upload_from_openapi_spec(server, tokens, frame, record_property):
    """Hypothesis draws requests from the service's own spec (types, camera pattern) and mutates valid images."""
    spec = httpx.get(f"{server.url}/openapi.json").json()
    operation = spec["paths"]["/v1/cameras/{camera}/frames"]["post"]
    media_types = sorted(operation["requestBody"]["content"])
    camera_param = next(p for p in operation["parameters"] if p["name"] == "camera")
    valid = {t: encoded(frame, {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}[t])
             for t in media_types}

    @st.composite
    def bodies(draw, content_type):
        base = valid.get(content_type) or valid["image/jpeg"]
        kind = draw(st.sampled_from(["random", "truncated", "flipped", "valid", "prefix"]))
        if kind == "random":
            return draw(st.binary(max_size=4096))
        if kind == "truncated":
            return base[: draw(st.integers(0, len(base) - 1))]
        if kind == "prefix":  # a correct signature followed by noise
            return base[:16] + draw(st.binary(max_size=2048))
        data = bytearray(base)
        if kind == "flipped":
            for _ in range(draw(st.integers(1, 8))):
                data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)

    # Mostly the spec's types, so most draws get past the content-type check to the decoder.
    content_types = st.sampled_from([*media_types * 3, None]).flatmap(
        lambda t: st.just(t) if t else st.text(max_size=30))
    seen: dict[int, int] = {}

    @settings(max_examples=FUZZ_CASES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(content_type=content_types, data=st.data(),
           # mostly the token's camera: the others cost a (deliberately slow) scrypt for their 403
           camera=st.sampled_from(["cam1"] * 9 + [None]).flatmap(
               lambda c: st.just(c) if c else st.from_regex(camera_param["schema"]["pattern"], fullmatch=True)))
    def case(content_type, data, camera):
        body = data.draw(bodies(content_type))
        headers = {"Authorization": f"Bearer {tokens[1]['cam1']}"}
        if content_type.isprintable() and content_type.isascii():
            headers["Content-Type"] = content_type
        r = httpx.post(f"{server.url}/v1/cameras/{camera}/frames", content=body, headers=headers, timeout=60)
        seen[r.status_code] = seen.get(r.status_code, 0) + 1
        assert r.status_code < 500, r.text
        payload = r.json()
        if r.status_code == 200:
            assert payload["people"] == len(payload["detections"])
        else:
            assert isinstance(payload["detail"], str | list) and payload["detail"]

    case()
    total = sum(seen.values())
    record_property("fuzz_cases", total)
    print(f"fuzzed {total} requests from the OpenAPI spec: {json.dumps(dict(sorted(seen.items())))}")
    assert total == FUZZ_CASES
    assert 200 in seen and 400 in seen and 415 in seen  # the draws reached the detector and both refusals
