"""veil data prepare, veil obfuscate and veil edge classify their source by the one rule of veil.data.sources."""

from tests.deployment.cli import assert_one_error_line, run_veil


def test_the_three_commands_share_the_rule(monkeypatch, capsys, small_checkpoint, short_clip, tmp_path):
    """data prepare, obfuscate and edge refuse the same bad source with the same line, and each
    refuses, in one line, the kind of source it cannot use."""
    folder = tmp_path / "footage"
    folder.mkdir()
    (folder / "gate.avi").write_bytes(short_clip.read_bytes())
    edge = ("edge", "--server", "http://127.0.0.1:9", "--token", "t", "--obfuscator", small_checkpoint, "--source")
    for command in (("data", "prepare", "rstp://cam/1", "--out", tmp_path / "ds"),
                    ("obfuscate", small_checkpoint, "rstp://cam/1", tmp_path / "o.mp4"),
                    (*edge, "rstp://cam/1")):
        assert_one_error_line(run_veil(monkeypatch, capsys, *command), "unsupported stream URL rstp://cam/1")
    assert_one_error_line(run_veil(monkeypatch, capsys, "data", "prepare", "rtsp://cam/1", "--out", tmp_path / "ds"),
                          "reads footage on disk")
    assert_one_error_line(run_veil(monkeypatch, capsys, *edge, folder), "streams one source, not the folder")
    assert not (tmp_path / "ds").exists() and not (tmp_path / "o.mp4").exists()
