"""``veil serve`` and ``veil edge`` bad input through the real CLI: one ``error:`` line, exit 2."""

import subprocess

import pytest

from tests.cli.test_bad_input import assert_one_line_error
from tests.cloud.conftest import veil_command, veil_env


def veil(*args, **kwargs):
    return subprocess.run(veil_command(*args), capture_output=True, text=True, env=veil_env(), timeout=600, **kwargs)


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tok") / "state"
    r = veil("serve", "token", "add", "door", "--state", folder)
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert len(token) >= 50 and token.split(".")[1].encode() not in (folder / "state.sqlite").read_bytes()
    return folder


def test_token_lifecycle(state):
    viewer = veil("serve", "token", "add", "--role", "viewer", "--camera", "door", "--camera", "hall",
                  "--expires", "2h", "--state", state)
    admin = veil("serve", "token", "add", "--role", "admin", "--state", state)
    assert viewer.returncode == admin.returncode == 0, viewer.stderr + admin.stderr
    ids = {out.stdout.split(".")[0] for out in (viewer, admin)}
    listing = veil("serve", "token", "list", "--state", state)
    assert listing.returncode == 0 and "3 token(s)" in listing.stderr
    lines = {line.split()[0]: line for line in listing.stdout.splitlines()}
    assert ids <= set(lines) and "door,hall" in lines[viewer.stdout.split(".")[0]]
    assert "expires never" not in lines[viewer.stdout.split(".")[0]] and "expires never" in lines[admin.stdout[:12]]
    for token_id in ids:
        assert veil("serve", "token", "remove", token_id, "--state", state).returncode == 0
    assert "1 token(s)" in veil("serve", "token", "list", "--state", state).stderr


def test_token_add_bad_input(state):
    assert_one_line_error(veil("serve", "token", "add", "no/slash", "--state", state), "camera name must be")
    assert_one_line_error(veil("serve", "token", "add", "--role", "viewer", "--state", state), "needs the cameras")
    assert_one_line_error(veil("serve", "token", "add", "door", "--expires", "soon", "--state", state), "duration")
    assert_one_line_error(veil("serve", "token", "add", "door"), "--state is required")
    assert_one_line_error(veil("serve", "token", "remove", "nosuch", "--state", state), "no token id or camera")
    assert_one_line_error(veil("serve", "token", "add", "door", "--state", "mysql://x/y"), "--state must be")


def test_retention_shows_and_sets(tmp_path):
    r = veil("serve", "retention", "--state", tmp_path / "s", "--latest-frame", "2m", "--store-size", "1000")
    assert r.returncode == 0, r.stderr
    assert "latest_frame_s = 120" in r.stdout and "store_bytes = 1000" in r.stdout and "history_s = 604800" in r.stdout
    assert "latest_frame_s = 120" in veil("serve", "retention", "--state", tmp_path / "s").stdout  # kept


@pytest.mark.parametrize("state_arg, fragment", [(None, "--state is required"), ("empty", "holds no token yet"),
                                                 ("file", "--state must be a folder"),
                                                 ("postgresql://veil@127.0.0.1:9/x", "cannot open the state")])
def test_serve_bad_state(tmp_path, state_arg, fragment):
    (tmp_path / "file").write_text("not a folder")
    args = ["serve"] + (["--state", state_arg if "://" in state_arg else tmp_path / state_arg] if state_arg else [])
    assert_one_line_error(veil(*args), fragment)


def test_serve_unknown_detector(state):
    assert_one_line_error(veil("serve", "--state", state, "--detector", "nope"), "unknown detector 'nope'")


@pytest.mark.parametrize("change, fragment", [
    ({"--source": "missing.avi"}, "source not found"),
    ({"--server": "ftp://example"}, "--server must be an http(s) URL"),
    ({"--token": ""}, "no camera token"),
    ({"--format": "gif"}, "--format must be one of jpeg, webp"),
    ({"--obfuscator": "missing.onnx"}, "obfuscator not found"),
])
def test_edge_bad_input(clip, tmp_path, change, fragment):
    options = {"--source": str(clip), "--server": "http://127.0.0.1:9", "--token": "t",
               "--obfuscator": "missing.onnx", **change}
    if "--obfuscator" not in change:
        (tmp_path / "model.onnx").write_bytes(b"not onnx")
        options["--obfuscator"] = str(tmp_path / "model.onnx")
    args = [a for k, v in options.items() for a in (k, v)]
    env = {k: v for k, v in veil_env().items() if k != "VEIL_TOKEN"}
    result = subprocess.run(veil_command("edge", *args), capture_output=True, text=True, env=env, timeout=600,
                            cwd=tmp_path)
    assert_one_line_error(result, fragment)


def test_edge_unreachable_server_gives_up(clip, onnx_obfuscator):
    r = veil("edge", "--source", clip, "--server", "http://127.0.0.1:9", "--token", "t", "--obfuscator",
             onnx_obfuscator, "--retry-for", "1", "--max-frames", "2")
    assert_one_line_error(r, "gave up after 1 s: cannot reach http://127.0.0.1:9")
