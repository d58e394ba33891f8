"""Per-camera tokens against the real service: missing 401, wrong 403, right 200; hashed at rest."""

import httpx
import pytest

from tests.cloud.conftest import FRAME_SIZE
from veil.cloud.auth import TokenVerifier, add_token, read_tokens
from veil.errors import VeilError


@pytest.fixture(scope="module")
def jpeg(clip) -> bytes:
    import cv2

    from tests.cloud.conftest import clip_frames

    frame = clip_frames(clip)[0]
    assert frame.shape[:2] == FRAME_SIZE[::-1]
    return cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))[1].tobytes()


def post(server, camera, body, token=None, content_type="image/jpeg"):
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(f"{server.url}/v1/cameras/{camera}/frames", content=body, headers=headers, timeout=60)


def test_missing_token_is_401(server, jpeg):
    r = post(server, "cam1", jpeg)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert "missing camera token" in r.json()["detail"]


@pytest.mark.parametrize("camera, which", [("cam1", "wrong"), ("cam1", "cam2"), ("nosuchcam", "cam1")])
def test_wrong_token_is_403(server, tokens, jpeg, camera, which):
    token = "x" * 43 if which == "wrong" else tokens[1][which]
    r = post(server, camera, jpeg, token)
    assert r.status_code == 403
    assert "wrong token" in r.json()["detail"]


def test_right_token_gets_detections(server, tokens, jpeg):
    r = post(server, "cam1", jpeg, tokens[1]["cam1"])
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["camera"] == "cam1" and (result["width"], result["height"]) == FRAME_SIZE
    assert result["people"] == len(result["detections"]) > 0  # vtest frame 100 shows pedestrians
    for d in result["detections"]:
        x1, y1, x2, y2 = d["box"]
        assert 0 <= x1 < x2 <= FRAME_SIZE[0] and 0 <= y1 < y2 <= FRAME_SIZE[1] and 0 < d["score"] <= 1


def test_token_added_while_serving_is_accepted(server, tokens, jpeg):
    token = add_token(tokens[0], "late-camera")
    assert post(server, "late-camera", jpeg, token).status_code == 200


def test_tokens_are_hashed_at_rest(tmp_path):
    path = tmp_path / "tokens.json"
    token = add_token(path, "door")
    text = path.read_text()
    assert token not in text and token.encode().hex() not in text
    assert set(read_tokens(path)["door"]) == {"salt", "hash", "n", "r", "p"}
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    verifier = TokenVerifier(path)
    assert verifier.verify("door", token) and verifier.verify("door", token)  # second: the cached path
    assert not verifier.verify("door", token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert not verifier.verify("window", token)
    with pytest.raises(VeilError, match="already has a token"):
        add_token(path, "door")
    renewed = add_token(path, "door", replace=True)
    verifier = TokenVerifier(path)
    assert verifier.verify("door", renewed) and not verifier.verify("door", token)


@pytest.mark.parametrize("content", ["not json", '{"format": "other"}', '{"format": "veil-tokens", "cameras": '
                                                                           '{"a": {"salt": "zz"}}}'])
def test_bad_tokens_file(tmp_path, content):
    path = tmp_path / "tokens.json"
    path.write_text(content)
    with pytest.raises(VeilError):
        TokenVerifier(path)
