"""nginx in front of several ``veil serve`` workers: the config, and a foreground runner.

:func:`nginx_config` is the configuration the README shows (round-robin over the workers,
the body size limit, keep-alive to the upstreams). :func:`run_nginx` starts Debian's nginx
with it in the foreground (no daemon, everything in one temporary folder) for the load
benchmark and the tests; production would put the same ``upstream``/``server`` blocks in
the system's nginx.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from veil.errors import VeilError


def nginx_config(listen: str, workers: list[str], prefix: str | Path, max_body: str = "8m",
                 tls: tuple[str | Path, str | Path] | None = None) -> str:
    """An nginx.conf balancing ``workers`` (``host:port``) behind ``listen`` (``host:port``).

    With ``tls=(certificate, key)`` nginx terminates TLS (HTTPS on ``listen``, HSTS on every answer).
    """
    prefix = Path(prefix)
    ssl = (f"""
        ssl_certificate {tls[0]};
        ssl_certificate_key {tls[1]};
        ssl_protocols TLSv1.2 TLSv1.3;
        add_header Strict-Transport-Security "max-age=31536000" always;""" if tls else "")
    upstreams = "\n".join(f"        server {w} max_fails=1 fail_timeout=2s;" for w in workers)
    temp = "\n".join(f"    {kind}_temp_path {prefix / kind};" for kind in ("client_body", "proxy", "fastcgi",
                                                                               "uwsgi", "scgi"))
    return f"""worker_processes 1;
daemon off;
error_log {prefix / "error.log"} warn;
pid {prefix / "nginx.pid"};
events {{ worker_connections 512; }}
http {{
    access_log off;
{temp}
    client_max_body_size {max_body};
    client_body_buffer_size {max_body};  # frames stay in memory, never in a temp file
    upstream veil {{
{upstreams}
        keepalive 32;
    }}
    server {{
        listen {listen}{" ssl" if tls else ""};{ssl}
        location / {{
            proxy_pass http://veil;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_next_upstream error timeout http_502 http_503;
            proxy_read_timeout 60s;  # the live stream sends a comment every 15 s, so it stays open
        }}
    }}
}}
"""


@contextlib.contextmanager
def run_nginx(port: int, workers: list[str], timeout: float = 20.0,
              tls: tuple[str | Path, str | Path] | None = None) -> Iterator[str]:
    """Run nginx on ``127.0.0.1:port`` in front of ``workers``; yield its URL; stop it on exit."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).is_file():
        raise VeilError("nginx is not installed (apt-get install -y nginx-light)")
    with tempfile.TemporaryDirectory(prefix="veil-nginx-") as prefix:
        conf = Path(prefix) / "nginx.conf"
        conf.write_text(nginx_config(f"127.0.0.1:{port}", workers, prefix, tls=tls))
        process = subprocess.Popen([binary, "-p", prefix, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    assert process.stderr is not None  # stderr=PIPE above
                    raise VeilError(f"nginx exited: {process.stderr.read().decode().strip()}")
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
                if time.monotonic() > deadline:
                    raise VeilError(f"nginx did not listen on port {port} within {timeout:g} s")
                time.sleep(0.05)
            yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        finally:
            process.terminate()  # SIGTERM: nginx's fast shutdown
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
