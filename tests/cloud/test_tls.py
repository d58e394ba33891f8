"""veil edge over TLS: a real nginx running deploy/nginx-tls.conf, with a private CA's certificate.

With ``--ca-file`` the agent trusts that CA alone and its uploads arrive; without it, or with
another CA, it stops at the first request with one error line and nothing is uploaded.
"""

import pytest

from tests.cloud.conftest import free_port
from tests.cloud.tls import make_certificates, run_tls_nginx
from tests.deployment.cli import assert_one_error_line, run_veil


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_url(server, certificates, tmp_path_factory):
    with run_tls_nginx(free_port(), f"127.0.0.1:{server.port}", certificates, tmp_path_factory.mktemp("nginx")) as url:
        yield url


def stored(server, camera: str) -> int:
    folder = server.store / camera
    return len(list(folder.iterdir())) if folder.is_dir() else 0


def edge_args(tls_url, tokens, clip, onnx_obfuscator) -> list:
    return ["edge", "--source", clip, "--server", tls_url, "--token", tokens[1]["cam2"], "--camera", "cam2",
            "--obfuscator", onnx_obfuscator, "--max-frames", 4, "--threads", 1]


def test_edge_uploads_through_nginx_tls_with_its_ca(monkeypatch, capsys, server, tokens, clip, onnx_obfuscator,
                                                     certificates, tls_url):
    before = stored(server, "cam2")
    code, _, err = run_veil(monkeypatch, capsys, *edge_args(tls_url, tokens, clip, onnx_obfuscator),
                              "--ca-file", certificates.ca)
    assert code == 0, err
    assert "sent 4 obfuscated frames" in err and "Traceback" not in err
    assert stored(server, "cam2") == before + 4  # through nginx's TLS to the service's store


@pytest.mark.parametrize("trust", ["system CAs", "another CA"])
def test_edge_refuses_a_certificate_it_cannot_verify(monkeypatch, capsys, server, tokens, clip, onnx_obfuscator,
                                                     tls_url, tmp_path, trust):
    before = stored(server, "cam2")
    extra = [] if trust == "system CAs" else ["--ca-file", make_certificates(tmp_path, "Someone else's CA").ca]
    result = run_veil(monkeypatch, capsys, *edge_args(tls_url, tokens, clip, onnx_obfuscator), *extra)
    assert_one_error_line(result, f"the TLS certificate of {tls_url} failed verification: "
                                  "unable to get local issuer certificate")
    assert ("--ca-file" in result[2]) and stored(server, "cam2") == before


@pytest.mark.parametrize(("server_url", "ca", "fragment"), [
    ("http://127.0.0.1:9", "ca", "--ca-file verifies an https:// server"),
    ("https://127.0.0.1:9", "missing", "--ca-file not found"),
    ("https://127.0.0.1:9", "not-pem", "holds no PEM certificate"),
])
def test_bad_ca_file_is_one_error_line(monkeypatch, capsys, clip, onnx_obfuscator, certificates, tmp_path,
                                       server_url, ca, fragment):
    (tmp_path / "not-pem").write_text("not a certificate")
    path = {"ca": certificates.ca, "missing": tmp_path / "nope.pem", "not-pem": tmp_path / "not-pem"}[ca]
    result = run_veil(monkeypatch, capsys, "edge", "--source", clip, "--server", server_url, "--token", "t",
                      "--obfuscator", onnx_obfuscator, "--ca-file", path)
    assert_one_error_line(result, fragment)
