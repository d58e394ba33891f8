"""A seeded slice of bench/fuzz_service.py against the package's server: schemathesis cases of every
operation (positive and negative) and raw requests with path tricks, huge headers and bad tokens."""

import cv2

from bench.fuzz_service import Tally, fuzz_raw, fuzz_schema, tracebacks
from tests.cloud.conftest import clip_frames


def test_fuzz_slice_gets_no_5xx_and_only_documented_statuses(server, tokens, clip):
    jpeg = cv2.imencode(".jpg", cv2.cvtColor(clip_frames(clip)[0], cv2.COLOR_RGB2BGR))[1].tobytes()
    chosen = {name: tokens[1][name] for name in ("cam1", "viewer", "viewer-all", "admin")}
    tally = Tally()
    fuzz_schema(server.url, chosen, examples=4, seed_=1, tally=tally)
    fuzz_raw(server.url, chosen, jpeg, count=120, seed_=1, tally=tally)
    assert tally.sent >= 150, tally.as_json()
    assert tally.server_errors == [], tally.server_errors
    assert not tally.undocumented, tally.undocumented  # every status is in the schema for its operation
    assert {200, 401, 403, 404}.issubset(tally.statuses)  # the draws reached allowed and refused answers
    assert tracebacks(server.log) == []
