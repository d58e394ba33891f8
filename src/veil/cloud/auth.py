"""Bearer tokens with roles, hashed at rest in the shared state, checked on every request.

A token reads ``ID.SECRET``: ``ID`` (12 hex digits) names its row in the shared state's
``tokens`` table, ``SECRET`` is 256 random bits of which only a salted scrypt hash is kept.
It is printed once when issued; losing it means issuing another.

Roles:

* ``camera``: uploads frames to its one camera, reads nothing;
* ``viewer``: reads the cameras it was granted (``*``: all), uploads nothing;
* ``admin``: reads every camera, the metrics, the access log, and lists or revokes tokens.

Every request looks up its token's row (one primary-key read), so a token removed or expired
fails on the very next request on every worker and host, with no restart and no cache to
wait out. scrypt costs tens of milliseconds, too much for every frame, so each process
remembers the secrets it has verified as an HMAC (under a key that lives only in its memory)
bound to the row's hash: a renewed row needs scrypt again. Comparisons are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass

from veil.cloud.state import SharedState
from veil.errors import VeilError
from veil.names import check_camera_name

ROLES = ("camera", "viewer", "admin")
ALL = "*"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_ID = re.compile(r"[0-9a-f]{12}")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _hash(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, dklen=32, maxmem=128 * 1024 * 1024)


def parse_duration(text: str) -> float:
    """Seconds in ``30d``, ``12h``, ``90m``, ``45s`` or ``2w``; VeilError otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if not match or float(match[1]) <= 0:
        raise VeilError(f"a duration must be a positive number with s, m, h, d or w (like 30d or 12h), got {text!r}")
    return float(match[1]) * _UNITS[match[2]]


@dataclass(frozen=True)
class Principal:
    """Who a verified token speaks for."""

    token_id: str
    role: str
    cameras: frozenset[str]

    def can_read(self, camera: str) -> bool:
        return self.role == "admin" or (self.role == "viewer" and (ALL in self.cameras or camera in self.cameras))

    def can_upload(self, camera: str) -> bool:
        return self.role == "camera" and camera in self.cameras


def issue_token(state: SharedState, role: str, cameras: list[str] | None = None,
                expires_in: float | None = None) -> tuple[str, str]:
    """Store a new token's hash; return ``(id, token)`` (the token is not kept anywhere)."""
    cameras = list(dict.fromkeys(cameras or []))
    if role not in ROLES:
        raise VeilError(f"--role must be one of {', '.join(ROLES)}, got {role!r}")
    if role == "camera" and len(cameras) != 1:
        raise VeilError("a camera token is for exactly one camera: give its name")
    if role == "viewer" and not cameras:
        raise VeilError("a viewer token needs the cameras it may read: --camera NAME (repeatable) or --camera '*'")
    if role == "admin" and cameras:
        raise VeilError("an admin token reads every camera: give no --camera")
    for camera in cameras:
        if not (camera == ALL and role == "viewer"):
            check_camera_name(camera)
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    salt = os.urandom(16)
    now = time.time()
    state.add_token({"id": token_id, "role": role, "cameras": json.dumps(cameras), "salt": salt.hex(),
                     "hash": _hash(secret, salt, **_SCRYPT).hex(), **_SCRYPT, "created": now,
                     "expires": now + expires_in if expires_in else None})
    return token_id, f"{token_id}.{secret}"


def token_rows(state: SharedState) -> list[dict]:
    """Every token's public part (id, role, cameras, created, expires): never salt or hash."""
    return [{"id": r["id"], "role": r["role"], "cameras": json.loads(r["cameras"]), "created": r["created"],
             "expires": r["expires"]} for r in state.tokens()]


def revoke(state: SharedState, which: str) -> list[str]:
    """Remove token ``which`` (an id), or every camera token of camera ``which``; the ids removed."""
    if _ID.fullmatch(which):
        if state.remove_token(which):
            return [which]
        raise VeilError(f"no token with id {which!r}")
    ids = [r["id"] for r in token_rows(state) if r["role"] == "camera" and r["cameras"] == [which]]
    if not ids:
        raise VeilError(f"no token id or camera named {which!r} (see 'veil serve token list')")
    for token_id in ids:
        state.remove_token(token_id)
    return ids


class Authenticator:
    """Turns a bearer token into a :class:`Principal`, or None; safe to share between threads."""

    def __init__(self, state: SharedState) -> None:
        self.state = state
        self._key = os.urandom(32)  # process-local: the verified-secret cache is useless elsewhere
        self._lock = threading.Lock()
        self._verified: dict[str, bytes] = {}

    def authenticate(self, token: str) -> Principal | None:
        token_id, dot, secret = token.partition(".")
        if not dot or not _ID.fullmatch(token_id) or not 20 <= len(secret) <= 128:
            return None
        row = self.state.token(token_id)  # every request: a removed token fails now, on every host
        if row is None or (row["expires"] is not None and row["expires"] <= time.time()):
            return None
        mac = hmac.new(self._key, f"{row['hash']}\0{secret}".encode(), hashlib.sha256).digest()
        remembered = self._verified.get(token_id)
        if remembered is None or not hmac.compare_digest(remembered, mac):
            actual = _hash(secret, bytes.fromhex(row["salt"]), int(row["n"]), int(row["r"]), int(row["p"]))
            if not hmac.compare_digest(bytes.fromhex(row["hash"]), actual):
                return None
            with self._lock:
                self._verified[token_id] = mac
        return Principal(token_id, row["role"], frozenset(json.loads(row["cameras"])))
