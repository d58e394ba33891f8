"""A short, bounded version of the load benchmark: real nginx in front of 2 real workers."""

import concurrent.futures

import httpx

from tests.cloud.conftest import Server, clip_frames, free_port
from veil.cloud.loadbalancer import run_nginx
from veil.data.codec import encode


def test_nginx_balances_two_stateless_workers(server, tokens, clip, onnx_obfuscator, tmp_path):
    from veil.deployment.edge import load_obfuscator

    obfuscate, _ = load_obfuscator(onnx_obfuscator, threads=1)
    bodies = [encode(obfuscate(f), "jpeg", 85) for f in clip_frames(clip)[:8]]
    # A second worker process sharing the first one's tokens and state folder.
    second = Server(tokens[0], tmp_path / "serve2.log").start()
    try:
        with run_nginx(free_port(), [f"127.0.0.1:{server.port}", f"127.0.0.1:{second.port}"]) as url:
            headers = {"Authorization": f"Bearer {tokens[1]['lb']}", "Content-Type": "image/jpeg"}

            def send(body):
                return httpx.post(f"{url}/v1/cameras/lb/frames", content=body, headers=headers, timeout=60)

            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                responses = list(pool.map(send, bodies))
            assert [r.status_code for r in responses] == [200] * len(bodies)
            workers = {r.json()["worker"] for r in responses}
            assert len(workers) == 2, workers  # both workers served requests
            # Whichever worker answers, the dashboard's data covers every frame (shared state).
            viewer = {"Authorization": f"Bearer {tokens[1]['viewer-all']}"}
            for _ in range(4):
                summary = {c["camera"]: c for c in httpx.get(f"{url}/v1/cameras", headers=viewer, timeout=30).json()}
                assert summary["lb"]["frames"] == len(bodies)
                assert len(httpx.get(f"{url}/v1/cameras/lb/history", headers=viewer, timeout=30).json()) == len(bodies)
    finally:
        second.stop()


def test_nginx_terminates_tls_with_a_verified_certificate(server, tokens, tmp_path):
    """The example's TLS: a self-signed certificate for 127.0.0.1, verified by the client; plain trust fails."""
    import ssl
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=veil-test",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert], check=True,
                   capture_output=True, timeout=60)
    with run_nginx(free_port(), [f"127.0.0.1:{server.port}"], tls=(cert, key)) as url:
        assert url.startswith("https://")
        verified = ssl.create_default_context(cafile=str(cert))
        r = httpx.get(f"{url}/v1/cameras", headers={"Authorization": f"Bearer {tokens[1]['admin']}"},
                      verify=verified, timeout=30)
        assert r.status_code == 200 and r.headers["strict-transport-security"].startswith("max-age=")
        try:
            httpx.get(f"{url}/health", timeout=30)  # the system's trust store does not know this certificate
            raise AssertionError("an unverified certificate was accepted")
        except httpx.ConnectError as exc:
            assert "CERTIFICATE_VERIFY_FAILED" in str(exc)
