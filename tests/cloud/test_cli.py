"""``veil serve`` and ``veil edge`` bad input through the real CLI: one ``error:`` line, exit 2."""

import json
import subprocess

import pytest

from tests.cli.test_bad_input import assert_one_line_error
from tests.cloud.conftest import veil_command, veil_env


def veil(*args, **kwargs):
    return subprocess.run(veil_command(*args), capture_output=True, text=True, env=veil_env(), timeout=600, **kwargs)


@pytest.fixture(scope="module")
def token_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "tokens.json"
    r = veil("serve", "token", "add", "door", "--tokens", path)
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert len(token) >= 40 and token not in path.read_text()
    assert list(json.loads(path.read_text())["cameras"]) == ["door"]
    return path


def test_token_add_twice_and_bad_name(token_file):
    assert_one_line_error(veil("serve", "token", "add", "door", "--tokens", token_file), "already has a token")
    assert_one_line_error(veil("serve", "token", "add", "no/slash", "--tokens", token_file), "camera name must be")


@pytest.mark.parametrize("tokens, fragment", [(None, "--tokens FILE is required"), ("missing.json", "not found"),
                                              ("bad.json", "not valid JSON")])
def test_serve_bad_tokens_file(tmp_path, tokens, fragment):
    (tmp_path / "bad.json").write_text("{not json")
    args = ["serve"] + (["--tokens", tmp_path / tokens] if tokens else [])
    assert_one_line_error(veil(*args), fragment)


def test_serve_unknown_detector(token_file):
    assert_one_line_error(veil("serve", "--tokens", token_file, "--detector", "nope"), "unknown detector 'nope'")


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
