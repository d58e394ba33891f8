"""TLS for the tests: a private CA and a server certificate (openssl), and nginx running deploy/nginx-tls.conf."""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "nginx-tls.conf"


@dataclass(frozen=True)
class Certificates:
    ca: Path  # what `veil edge --ca-file` trusts
    cert: Path  # the server's certificate, signed by the CA, for 127.0.0.1 and localhost
    key: Path


def openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def make_certificates(folder: Path, name: str = "Veil test CA") -> Certificates:
    """A private CA (as a city would run) and a server certificate it signs, valid for a day."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    cert, key, request = folder / "server.pem", folder / "server.key", folder / "server.csr"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-subj", f"/CN={name}", "-keyout", ca_key, "-out", ca)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", key, "-out", request)
    extensions = folder / "server.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n"
                          "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", request, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "1",
            "-extfile", extensions, "-out", cert)
    return Certificates(ca, cert, key)


@contextlib.contextmanager
def run_tls_nginx(port: int, upstream: str, certificates: Certificates, prefix: Path,
                  timeout: float = 20.0) -> Iterator[str]:
    """nginx with deploy/nginx-tls.conf on ``127.0.0.1:port`` in front of ``upstream``; yields its https URL."""
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    values = {"VEIL_PREFIX": prefix, "VEIL_LISTEN": f"127.0.0.1:{port}", "VEIL_CERT": certificates.cert,
              "VEIL_KEY": certificates.key, "VEIL_UPSTREAM": upstream}
    # What envsubst does with the template's list of names: only ${VEIL_...} changes, nginx's $host stays.
    conf.write_text(re.sub(r"\$\{(VEIL_[A-Z]+)\}", lambda m: str(values[m.group(1)]), TEMPLATE.read_text()))
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    # daemon off: in the foreground, so the test owns the process (the template leaves daemon to the caller).
    process = subprocess.Popen([binary, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"nginx exited: {process.stderr.read().decode().strip()}")  # type: ignore[union-attr]
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not listen on port {port} within {timeout:g} s")
            time.sleep(0.05)
        yield f"https://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
