import functools
import http.server
import threading

import cv2
import numpy as np
import pytest

from tests.deployment.conftest import SOURCE_TAGS, probe, rate
from veil.data.video import read_video, write_video
from veil.deployment.obfuscate import obfuscate_media
from veil.deployment.outputs import MARKER
from veil.errors import VeilError


def test_video_keeps_rate_and_length(small_checkpoint, short_clip, tmp_path):
    out = tmp_path / "obf.mp4"
    n = obfuscate_media(small_checkpoint, short_clip, out)
    source, result = probe(short_clip)["streams"][0], probe(out)["streams"][0]
    assert n == 30 and int(result["nb_read_frames"]) == int(source["nb_read_frames"]) == 30
    assert rate(result) == rate(source) == 10.0
    first = next(read_video(out)).image
    assert first.shape == (120, 160, 3)
    original = cv2.resize(next(read_video(short_clip)).image, (160, 120), interpolation=cv2.INTER_AREA)
    assert np.abs(first.astype(float) - original).mean() > 5  # it changed the pixels


def _source_tag_values(info: dict) -> set[str]:
    tags = dict(info["format"].get("tags", {}))
    for stream in info["streams"]:
        tags.update(stream.get("tags", {}))
    return {v for v in tags.values() if any(v.startswith(t[:10]) for t in SOURCE_TAGS.values())}


def test_audio_and_metadata_dropped_by_default(small_checkpoint, clip_with_audio, tmp_path):
    out = tmp_path / "obf.mp4"
    obfuscate_media(small_checkpoint, clip_with_audio, out)
    source, result = probe(clip_with_audio), probe(out)
    assert [s["codec_type"] for s in result["streams"]] == ["video"]
    assert _source_tag_values(source) and not _source_tag_values(result)
    assert result["streams"][0]["nb_read_frames"] == source["streams"][0]["nb_read_frames"] == "30"
    assert rate(result["streams"][0]) == pytest.approx(rate(source["streams"][0]), rel=1e-4)  # 29.97 kept


def test_keep_audio_keeps_only_the_audio(small_checkpoint, clip_with_audio, tmp_path):
    out = tmp_path / "obf.mp4"
    warnings: list[str] = []
    obfuscate_media(small_checkpoint, clip_with_audio, out, keep_audio=True, warn=warnings.append)
    result = probe(out)
    assert [s["codec_type"] for s in result["streams"]] == ["video", "audio"]
    assert result["streams"][0]["nb_read_frames"] == "30"
    assert not _source_tag_values(result)  # the location, device and time still go
    assert len(warnings) == 1 and "identify people" in warnings[0]


def _tree(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_folder_recursion_mirrors_names_and_overwrite_spares_user_files(small_checkpoint, short_clip, tmp_path):
    src = tmp_path / "site"
    frames = [f.image for f in read_video(short_clip) if f.index < 6]
    (src / "gate" / "evening").mkdir(parents=True)
    (src / ".thumbs").mkdir()
    cv2.imwrite(str(src / "a.jpg"), cv2.cvtColor(frames[0], cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(src / "gate" / "b.png"), cv2.cvtColor(frames[1], cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(src / ".thumbs" / "skip.jpg"), frames[2])
    write_video(src / "gate" / "evening" / "clip.avi", iter(frames[2:6]), fps=10.0)
    (src / "notes.txt").write_text("not media")

    out = tmp_path / "obfuscated"
    assert obfuscate_media(small_checkpoint, src, out) == 2 + 4
    assert _tree(out) == [MARKER, "a.jpg", "gate/b.png", "gate/evening/clip.avi"]
    assert cv2.imread(str(out / "gate" / "b.png")).shape == (120, 160, 3)
    assert int(probe(out / "gate" / "evening" / "clip.avi")["streams"][0]["nb_read_frames"]) == 4

    with pytest.raises(VeilError, match="already exists"):
        obfuscate_media(small_checkpoint, src, out)
    # The user adds their own file to the output; a new run with --overwrite must spare it.
    (out / "gate" / "mine.txt").write_text("user notes")
    (src / "a.jpg").unlink()
    first_b = (out / "gate" / "b.png").read_bytes()
    obfuscate_media(small_checkpoint, src, out, overwrite=True)
    assert _tree(out) == [MARKER, "gate/b.png", "gate/evening/clip.avi", "gate/mine.txt"]  # stale a.jpg removed
    assert (out / "gate" / "mine.txt").read_text() == "user notes"
    assert (out / "gate" / "b.png").read_bytes() == first_b  # deterministic

    # A same-named file Veil did not write is never replaced.
    (out / "gate" / "b.png").unlink()
    (out / "gate" / "b.png").write_bytes(b"the user's own picture")
    with pytest.raises(VeilError, match="not written by veil"):
        obfuscate_media(small_checkpoint, src, out, overwrite=True)
    assert (out / "gate" / "b.png").read_bytes() == b"the user's own picture"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *_args) -> None:
        pass


def test_stream_url_from_a_real_http_server(small_checkpoint, short_clip, tmp_path):
    handler = functools.partial(_QuietHandler, directory=str(short_clip.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{short_clip.name}"
        out = tmp_path / "live.mp4"
        assert obfuscate_media(small_checkpoint, url, out, max_frames=20) == 20
    finally:
        server.shutdown()
    stream = probe(out)["streams"][0]
    assert stream["nb_read_frames"] == "20" and rate(stream) == 10.0


def test_corrupt_video_leaves_no_output(small_checkpoint, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x01 not a video" * 100)
    with pytest.raises(VeilError):
        obfuscate_media(small_checkpoint, bad, tmp_path / "out.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4"]
