"""Per-camera bearer tokens, hashed at rest and compared in constant time.

A tokens file is JSON: ``{"format": "veil-tokens", "cameras": {NAME: {"salt", "hash", "n", "r", "p"}}}``
with an scrypt hash of each token, never the token itself. ``add_token`` prints a fresh
256-bit token once; losing it means adding a new one (``replace=True``).

scrypt costs tens of milliseconds, too much for every frame, so each worker remembers the
tokens it has verified as an HMAC under a key that lives only in that process's memory, and
compares that with ``hmac.compare_digest`` too. The file is re-read when it changes, so a
token added or replaced while the service runs takes effect without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
from pathlib import Path

from veil.errors import VeilError
from veil.io import read_json, write_json
from veil.names import check_camera_name

FORMAT = "veil-tokens"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def _hash(token: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(token.encode(), salt=salt, n=n, r=r, p=p, dklen=32, maxmem=128 * 1024 * 1024)


def read_tokens(path: str | os.PathLike) -> dict[str, dict]:
    """The cameras of a tokens file; VeilError if it is missing or not a tokens file."""
    data = read_json(path)
    cameras = data.get("cameras") if isinstance(data, dict) and data.get("format") == FORMAT else None
    if not isinstance(cameras, dict):
        raise VeilError(f"not a Veil tokens file: {path}")
    for name, entry in cameras.items():
        try:
            bytes.fromhex(entry["salt"]), bytes.fromhex(entry["hash"])
            int(entry["n"]), int(entry["r"]), int(entry["p"])
        except (KeyError, TypeError, ValueError):
            raise VeilError(f"tokens file {path}: camera {name!r} has a malformed entry") from None
    return cameras


def add_token(path: str | os.PathLike, camera: str, replace: bool = False) -> str:
    """Create (or with ``replace``, renew) ``camera``'s token in ``path``; return the token."""
    check_camera_name(camera)
    path = Path(path)
    cameras = read_tokens(path) if path.exists() else {}
    if camera in cameras and not replace:
        raise VeilError(f"camera {camera!r} already has a token in {path}: pass --replace to issue a new one")
    token = secrets.token_urlsafe(32)
    salt = os.urandom(16)
    cameras[camera] = {"salt": salt.hex(), "hash": _hash(token, salt, **_SCRYPT).hex(), **_SCRYPT}
    write_json(path, {"format": FORMAT, "cameras": cameras})
    os.chmod(path, 0o600)
    return token


def remove_token(path: str | os.PathLike, camera: str) -> None:
    cameras = read_tokens(path)
    if camera not in cameras:
        raise VeilError(f"camera {camera!r} has no token in {path}")
    del cameras[camera]
    write_json(path, {"format": FORMAT, "cameras": cameras})


class TokenVerifier:
    """Checks ``(camera, token)`` pairs against a tokens file, re-reading it when it changes."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._key = os.urandom(32)  # process-local: the verified-token cache is useless elsewhere
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._cameras: dict[str, dict] = {}
        self._verified: dict[str, bytes] = {}
        self._reload()

    def _reload(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            raise VeilError(f"tokens file not found: {self.path}") from None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            cameras = read_tokens(self.path)
            with self._lock:
                self._cameras, self._verified, self._stamp = cameras, {}, stamp

    def verify(self, camera: str, token: str) -> bool:
        """True if ``token`` is ``camera``'s; an unknown camera costs the same as a wrong token."""
        try:
            self._reload()
        except VeilError:
            return False  # a file broken mid-edit refuses everyone rather than crashing a request
        mac = hmac.new(self._key, f"{camera}\0{token}".encode(), hashlib.sha256).digest()
        remembered = self._verified.get(camera)
        if remembered is not None and hmac.compare_digest(remembered, mac):
            return True
        entry = self._cameras.get(camera)
        if entry is None:
            # Spend the same scrypt time, so response timing does not reveal which cameras exist.
            _hash(token, b"\0" * 16, **_SCRYPT)
            return False
        expected = bytes.fromhex(entry["hash"])
        actual = _hash(token, bytes.fromhex(entry["salt"]), int(entry["n"]), int(entry["r"]), int(entry["p"]))
        if not hmac.compare_digest(expected, actual):
            return False
        with self._lock:
            self._verified[camera] = mac
        return True
