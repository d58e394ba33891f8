"""The one source rule (veil.data.sources) over every kind of source: real files, folders, URLs."""

import cv2
import pytest

from veil.data.sources import list_images, open_stream, parse_source
from veil.data.video import read_image_folder
from veil.errors import VeilError


@pytest.fixture
def image_folder(short_clip, tmp_path):
    """A real folder of stills: 5 vtest frames as JPEG, and a text file that is not footage."""
    folder = tmp_path / "stills"
    folder.mkdir()
    for i, image in enumerate(open_stream(short_clip)):
        if i == 5:
            break
        assert cv2.imwrite(str(folder / f"frame{i}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_vtest_and_a_video_file_are_files_not_live(vtest, short_clip):
    for given, path, frames in (("vtest", vtest, 795), (str(short_clip), short_clip, 30)):
        source = parse_source(given)
        assert (source.kind, source.path, source.live) == ("file", path, False)
        stream = open_stream(source)
        assert (stream.total, stream.fps, stream.live) == (frames, 10.0, False)
        assert sum(1 for _ in stream) == frames


def test_a_folder_of_images_is_a_folder_not_live(image_folder):
    source = parse_source(str(image_folder))
    assert (source.kind, source.live) == ("folder", False)
    assert [p.name for p in list_images(image_folder)] == [f"frame{i}.jpg" for i in range(5)]
    stills = list(read_image_folder(image_folder))
    assert len(stills) == 5 and stills[0].image.shape == (576, 768, 3) and stills[0].image.std() > 20
    with pytest.raises(VeilError, match="is a folder: pass one video, webcam or stream"):
        open_stream(source)


@pytest.mark.parametrize(("given", "kind", "name"), [
    ("0", "webcam", "webcam 0"),
    ("12", "webcam", "webcam 12"),
    ("rtsp://127.0.0.1:8554/cam", "url", "rtsp://127.0.0.1:8554/cam"),
    ("RTSPS://camera.example:322/stream1", "url", "RTSPS://camera.example:322/stream1"),
    # Camera URLs carry credentials: they are used to connect, never printed.
    ("rtsp://admin:s3cret@10.0.0.7:554/h264", "url", "rtsp://admin:***@10.0.0.7:554/h264"),
    ("http://127.0.0.1:8080/video.mjpg", "url", "http://127.0.0.1:8080/video.mjpg"),
])
def test_webcams_and_stream_urls_are_live(given, kind, name):
    source = parse_source(given)
    assert (source.kind, source.live, source.path, source.name) == (kind, True, None, name)


@pytest.mark.parametrize(("given", "fragment"), [
    ("rstp://127.0.0.1/cam", "unsupported stream URL rstp://127.0.0.1/cam"),
    ("file:///tmp/clip.mp4", "unsupported stream URL"),
    ("rtsp:///cam", "stream URL without a host"),
    ("ftp://admin:pw@cam/x", "unsupported stream URL ftp://admin:***@cam/x"),
    ("no/such/clip.mp4", "source not found: no/such/clip.mp4"),
    ("  ", "empty source"),
])
def test_bad_sources_are_one_clear_error(given, fragment):
    with pytest.raises(VeilError) as info:
        parse_source(given)
    message = str(info.value)
    assert fragment in message and "\n" not in message and "pw" not in message


def test_a_path_object_is_never_a_webcam_or_vtest(tmp_path, short_clip):
    (tmp_path / "0").write_bytes(short_clip.read_bytes())
    assert parse_source(tmp_path / "0").kind == "file"
    with pytest.raises(VeilError, match="source not found"):
        parse_source(tmp_path / "vtest")


def test_an_unreachable_stream_is_a_clear_error():
    with pytest.raises(VeilError, match=r"^cannot open rtsp://127\.0\.0\.1:9/cam$"):
        open_stream("rtsp://127.0.0.1:9/cam")
