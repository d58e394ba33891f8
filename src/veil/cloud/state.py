"""The state that all workers share: each camera's latest result and its people-count history.

Workers are stateless processes (uvicorn ``--workers``, or separate hosts' processes behind
a load balancer on one machine), so a frame that worker A analysed must show on the
dashboard that worker B serves. The simplest shared store that needs no extra service is
one SQLite file in ``--state-dir``: the standard library has it, every write is an atomic
transaction, WAL mode lets readers and one writer work at once, and a busy timeout makes
concurrent writers wait instead of failing. Several hosts would swap this for a real
database; nothing else changes.

What it keeps: per camera, the latest *obfuscated* frame (the dashboard shows it; pass
``keep_frames=False`` to keep none) and at most ``history`` (time, count) points.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS latest (
    camera TEXT PRIMARY KEY, ts REAL NOT NULL, people INTEGER NOT NULL,
    width INTEGER NOT NULL, height INTEGER NOT NULL, detections TEXT NOT NULL,
    media_type TEXT, image BLOB, frames INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counts (camera TEXT NOT NULL, ts REAL NOT NULL, people INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS counts_camera_ts ON counts (camera, ts);
"""


class SharedState:
    """One SQLite file that every worker opens; one connection per thread."""

    def __init__(self, folder: str | Path, history: int = 600, keep_frames: bool = True) -> None:
        self.path = Path(folder) / "state.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.history = history
        self.keep_frames = keep_frames
        self._local = threading.local()
        with self._connect() as db:
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30.0)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def record(self, camera: str, people: int, width: int, height: int, detections: list[dict],
               image: bytes | None, media_type: str | None, ts: float | None = None) -> None:
        """Store one analysed frame: it becomes the camera's latest, and a point of its history."""
        ts = time.time() if ts is None else ts
        if not self.keep_frames:
            image, media_type = None, None
        row = (ts, people, width, height, json.dumps(detections), media_type, image)
        with self._connect() as db:  # one transaction: readers see all of it or none
            db.execute("INSERT INTO latest (camera, ts, people, width, height, detections, media_type, image, frames) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT (camera) DO NOTHING", (camera, *row))
            db.execute("UPDATE latest SET frames = frames + 1 WHERE camera = ?", (camera,))
            # Workers finish out of order: an older frame counts, but never replaces a newer one.
            db.execute("UPDATE latest SET ts = ?, people = ?, width = ?, height = ?, detections = ?, media_type = ?, "
                       "image = ? WHERE camera = ? AND ts <= ?", (*row, camera, ts))
            db.execute("INSERT INTO counts (camera, ts, people) VALUES (?, ?, ?)", (camera, ts, people))
            db.execute("DELETE FROM counts WHERE camera = ? AND ts < (SELECT ts FROM counts WHERE camera = ? "
                       "ORDER BY ts DESC LIMIT 1 OFFSET ?)", (camera, camera, self.history - 1))

    def cameras(self) -> list[dict]:
        rows = self._connect().execute(
            "SELECT camera, ts, people, width, height, frames, image IS NOT NULL FROM latest ORDER BY camera")
        return [{"camera": c, "ts": ts, "people": n, "width": w, "height": h, "frames": f, "has_image": bool(i)}
                for c, ts, n, w, h, f, i in rows]

    def latest(self, camera: str) -> dict | None:
        row = self._connect().execute(
            "SELECT ts, people, width, height, detections, frames FROM latest WHERE camera = ?", (camera,)).fetchone()
        if row is None:
            return None
        ts, people, width, height, detections, frames = row
        return {"camera": camera, "ts": ts, "people": people, "width": width, "height": height,
                "detections": json.loads(detections), "frames": frames}

    def latest_image(self, camera: str) -> tuple[bytes, str] | None:
        row = self._connect().execute(
            "SELECT image, media_type FROM latest WHERE camera = ? AND image IS NOT NULL", (camera,)).fetchone()
        return (bytes(row[0]), row[1]) if row else None

    def history_of(self, camera: str, limit: int | None = None) -> list[dict]:
        rows = self._connect().execute(
            "SELECT ts, people FROM (SELECT ts, people FROM counts WHERE camera = ? ORDER BY ts DESC LIMIT ?) "
            "ORDER BY ts", (camera, limit or self.history))
        return [{"ts": ts, "people": n} for ts, n in rows]
