"""A throwaway PostgreSQL server from Debian's package, for the tests and the benchmarks.

Like :func:`~veil.cloud.loadbalancer.run_nginx`: everything lives in one temporary folder
(data, socket, log), the server listens on 127.0.0.1 only, and it is stopped and removed at
the end. ``initdb`` refuses to run as root, so as root both it and the server run as the
``postgres`` user (``runuser``). Production points ``--state`` at its own database instead.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from veil.errors import VeilError


def _binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise VeilError("PostgreSQL is not installed (apt-get install -y postgresql)")
    return Path(found[-1]).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """One PostgreSQL server in ``root``; :meth:`restart` stops it and starts it on the same port and data."""

    def __init__(self, root: Path, port: int | None = None, options: dict[str, str] | None = None) -> None:
        self.bin = _binaries()
        self.root, self.port = root, port or free_port()
        self.data = root / "data"
        self.options = {"listen_addresses": "127.0.0.1", "unix_socket_directories": str(root),
                        "max_connections": "200", **(options or {})}
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"postgresql://veil@127.0.0.1:{self.port}/veil"

    def init(self) -> None:
        if self._as:
            shutil.chown(self.root, "postgres")
        subprocess.run([*self._as, str(self.bin / "initdb"), "-D", str(self.data), "-U", "veil", "--auth=trust",
                        "-E", "UTF8", "--no-sync"], check=True, capture_output=True, timeout=120)

    def start(self, timeout: float = 60.0) -> None:
        args = [a for k, v in self.options.items() for a in ("-c", f"{k}={v}")]
        with (self.root / "postgres.log").open("ab") as log:
            if self._as:
                shutil.chown(self.root / "postgres.log", "postgres")
            self.process = subprocess.Popen([*self._as, str(self.bin / "postgres"), "-D", str(self.data),
                                             "-p", str(self.port), *args], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while subprocess.run([str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
                             timeout=10).returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise VeilError(f"PostgreSQL did not start: {(self.root / 'postgres.log').read_text()[-2000:]}")
            time.sleep(0.1)

    def create_database(self, name: str = "veil") -> str:
        """Create database ``name``; return its URL."""
        subprocess.run([str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "veil", name],
                       check=True, capture_output=True, timeout=60)
        return f"postgresql://veil@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        """A fast shutdown (SIGINT): open connections are cut, committed data stays."""
        if self.process is not None and self.process.poll() is None:
            subprocess.run([*self._as, str(self.bin / "pg_ctl"), "-D", str(self.data), "stop", "-m", "fast", "-w"],
                           capture_output=True, timeout=90)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGKILL)
                self.process.wait(30)

    def restart(self) -> None:
        self.stop()
        self.start()


@contextlib.contextmanager
def run_postgres(options: dict[str, str] | None = None) -> Iterator[Postgres]:
    """A fresh PostgreSQL on a free loopback port with an empty database ``veil`` (see ``.url``)."""
    root = Path(tempfile.mkdtemp(prefix="veil-pg-"))
    server = Postgres(root, options=options)
    try:
        server.init()
        server.start()
        server.create_database()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
