"""`veil obfuscate` refusals through the real CLI: one error line, and the user's files untouched."""

import shutil
import subprocess
import sys

import pytest

from tests.deployment.cli import assert_one_error_line, run_veil


def snapshot(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def photos(tmp_path, short_clip):
    """A user's folder: a video and a text file they care about."""
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(short_clip, folder / "gate.avi")
    (folder / "notes.txt").write_text("my notes")
    return folder


@pytest.mark.parametrize(("source", "output", "fragment"), [
    ("photos/gate.avi", "photos/gate.avi", "is the source itself"),
    ("photos", "photos", "is the source itself"),
    ("photos", "photos/obfuscated", "inside the source folder"),
    ("photos", ".", "contains the source"),
    ("photos/gate.avi", "photos/gate.avi/../gate.avi", "is the source itself"),
])
def test_output_overlapping_the_source_is_refused(monkeypatch, capsys, small_checkpoint, photos, source, output,
                                                   fragment):
    monkeypatch.chdir(photos.parent)
    before = snapshot(photos.parent)
    result = run_veil(monkeypatch, capsys, "obfuscate", small_checkpoint, source, output, "--overwrite")
    assert_one_error_line(result, fragment)
    assert snapshot(photos.parent) == before


def test_existing_output_needs_overwrite(monkeypatch, capsys, small_checkpoint, photos, tmp_path):
    existing = tmp_path / "obfuscated.mp4"
    existing.write_bytes(b"the user's earlier video")
    result = run_veil(monkeypatch, capsys, "obfuscate", small_checkpoint, photos / "gate.avi", existing)
    assert_one_error_line(result, "already exists (pass --overwrite")
    assert existing.read_bytes() == b"the user's earlier video"


def test_overwrite_never_replaces_a_folder_veil_did_not_write(monkeypatch, capsys, small_checkpoint, photos, tmp_path):
    theirs = tmp_path / "holiday"
    (theirs / "2024").mkdir(parents=True)
    (theirs / "2024" / "beach.jpg").write_bytes(b"\xff\xd8 a user's photo")
    before = snapshot(theirs)
    result = run_veil(monkeypatch, capsys, "obfuscate", small_checkpoint, photos, theirs, "--overwrite")
    assert_one_error_line(result, "was not written by veil obfuscate")
    assert snapshot(theirs) == before


def test_keep_audio_refused_on_a_stream(monkeypatch, capsys, small_checkpoint, tmp_path):
    result = run_veil(monkeypatch, capsys, "obfuscate", small_checkpoint, "rtsp://127.0.0.1:9/cam", tmp_path / "o.mp4",
                      "--keep-audio")
    assert_one_error_line(result, "--keep-audio works on video files")


def test_unreachable_stream(monkeypatch, capsys, small_checkpoint, tmp_path):
    result = run_veil(monkeypatch, capsys, "obfuscate", small_checkpoint, "rtsp://127.0.0.1:9/cam", tmp_path / "o.mp4")
    assert_one_error_line(result, "cannot open rtsp://127.0.0.1:9/cam")
    assert list(tmp_path.iterdir()) == []


def test_keep_audio_warns_once_in_a_real_process(small_checkpoint, clip_with_audio, tmp_path):
    out = tmp_path / "obf.mp4"
    run = subprocess.run([sys.executable, "-m", "veil.cli.main", "obfuscate", str(small_checkpoint),
                          str(clip_with_audio), str(out), "--keep-audio"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    warnings = [line for line in run.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "identify people" in warnings[0]
    assert out.is_file()
