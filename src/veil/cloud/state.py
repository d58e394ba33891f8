"""The state that every worker and every host shares: results, history, tokens, limits, the access log.

Workers are stateless processes (uvicorn ``--workers``, or ``veil serve`` on several hosts
behind a load balancer), so a frame that worker A analysed must show on the dashboard that
worker B serves, and a token revoked through one host must fail on the next request to any
other. Everything of that kind lives here, in one database behind SQLAlchemy Core:

* SQLite (the embedded default, ``--state FOLDER``): one file, WAL mode, a busy timeout so
  concurrent writers wait instead of failing. Good for one host and any number of workers.
* PostgreSQL (``--state postgresql://user@host/db``, psycopg 3): for several hosts. A
  dropped connection (a database restart) is detected before use (``pool_pre_ping``) and
  a request that still hits one gets a 503 from the app, which clients retry.

The service creates the schema and migrates it (``schema_version`` in ``settings``): old
single-host SQLite files from before the token and retention tables open unchanged.

What it keeps, each bounded by :class:`Retention` (stored here too, so every host applies
the same limits): per camera the latest result and, while fresh, its obfuscated frame and
boxes; the people-count history; token hashes (never tokens); failed-authentication marks
for rate limiting; and who read which camera when.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import ArgumentError

from veil.errors import VeilError

SCHEMA_VERSION = 2
metadata = MetaData()
latest = Table(
    "latest", metadata,
    Column("camera", String(64), primary_key=True), Column("ts", Float, nullable=False),
    Column("people", Integer, nullable=False), Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False), Column("detections", Text),  # NULL once expired
    Column("media_type", String(32)), Column("image", LargeBinary), Column("frames", Integer, nullable=False))
counts = Table(
    "counts", metadata,
    Column("camera", String(64), nullable=False), Column("ts", Float, nullable=False),
    Column("people", Integer, nullable=False),
    Column("frame", BigInteger),  # the client's X-Veil-Frame, so a client can check nothing it was told got lost
    Index("counts_camera_ts", "camera", "ts"))
tokens = Table(
    "tokens", metadata,
    Column("id", String(32), primary_key=True), Column("role", String(16), nullable=False),
    Column("cameras", Text, nullable=False),  # JSON list of names, or ["*"] for every camera
    Column("salt", String(64), nullable=False), Column("hash", String(128), nullable=False),
    Column("n", Integer, nullable=False), Column("r", Integer, nullable=False), Column("p", Integer, nullable=False),
    Column("created", Float, nullable=False), Column("expires", Float))
auth_failures = Table(
    "auth_failures", metadata,
    Column("client", String(64), nullable=False), Column("ts", Float, nullable=False),
    Index("auth_failures_client_ts", "client", "ts"))
access_log = Table(
    "access_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True), Column("ts", Float, nullable=False),
    Column("token_id", String(32), nullable=False), Column("camera", String(64), nullable=False),
    Column("path", String(200), nullable=False), Column("client", String(64)),
    Index("access_log_ts", "ts"))
settings = Table("settings", metadata, Column("key", String(64), primary_key=True), Column("value", Text))


@dataclass
class Retention:
    """How long (seconds) and how much the service keeps; privacy-minded defaults."""

    latest_frame_s: float = 300.0  # a camera's latest frame and boxes, after its last upload
    history_s: float = 7 * 86400.0  # people-count points
    history_count: int = 10_000  # points per camera
    store_s: float = 86400.0  # --store files
    store_bytes: int = 1 << 30  # --store folder, per host
    store_files: int = 100_000
    access_log_s: float = 90 * 86400.0
    auth_failure_s: float = 3600.0  # failed-authentication marks (the rate limit looks at a shorter window)

    @classmethod
    def from_json(cls, text_: str | None) -> Retention:
        data = json.loads(text_) if text_ else {}
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _engine_url(location: str) -> str:
    """SQLAlchemy URL of ``location``: a PostgreSQL/SQLite URL, or a folder holding ``state.sqlite``."""
    if location.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        rest = location.split("://", 1)[1]
        return f"postgresql+psycopg://{rest}"
    if location.startswith("sqlite:///"):
        return location
    if "://" in location:
        raise VeilError(f"--state must be a folder, sqlite:///FILE or postgresql://..., got {location.split('://')[0]}://")
    folder = Path(location)
    if folder.exists() and not folder.is_dir():
        raise VeilError(f"--state must be a folder (it will hold state.sqlite): {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'state.sqlite'}"


def describe(location: str) -> str:
    """``location`` for printing: a database URL without its password."""
    try:
        return make_url(_engine_url(location)).render_as_string(hide_password=True)
    except ArgumentError:
        return location


class SharedState:
    """The shared database; thread-safe (a connection pool), one instance per process."""

    def __init__(self, location: str | Path, keep_frames: bool = True) -> None:
        url = _engine_url(str(location))
        self.keep_frames = keep_frames
        try:
            if url.startswith("sqlite"):
                self.engine: Engine = create_engine(url, connect_args={"timeout": 30.0})
                event.listen(self.engine, "connect", _sqlite_pragmas)
            else:
                self.engine = create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8, pool_timeout=10,
                                            connect_args={"connect_timeout": 5})
        except ArgumentError as exc:
            raise VeilError(f"--state: bad database URL ({exc})") from None
        self.dialect = self.engine.dialect.name
        self.migrate()

    # -- schema ---------------------------------------------------------------------------------
    def migrate(self) -> None:
        """Create missing tables and bring an older schema up to :data:`SCHEMA_VERSION`."""
        with self.engine.begin() as db:
            if self.dialect == "postgresql":  # one migrating host at a time; the others wait here
                db.execute(text("SELECT pg_advisory_xact_lock(7331)"))
            metadata.create_all(db, checkfirst=True)
            row = db.execute(select(settings.c.value).where(settings.c.key == "schema_version")).first()
            version = int(row[0]) if row else 1
            if version < 2:
                # v1 (single-host SQLite) had no frame column in counts.
                if "frame" not in {c["name"] for c in inspect(db).get_columns("counts")}:
                    db.execute(text("ALTER TABLE counts ADD COLUMN frame BIGINT"))
                # ... and kept boxes NOT NULL, which expiry now clears: SQLite changes a constraint by copying.
                if not {c["name"]: c for c in inspect(db).get_columns("latest")}["detections"]["nullable"]:
                    db.execute(text("ALTER TABLE latest RENAME TO latest_v1"))
                    latest.create(db)
                    db.execute(text("INSERT INTO latest SELECT camera, ts, people, width, height, detections, "
                                    "media_type, image, frames FROM latest_v1"))
                    db.execute(text("DROP TABLE latest_v1"))
            if version != SCHEMA_VERSION:
                self._put(db, "schema_version", str(SCHEMA_VERSION))

    def _insert(self, table: Table):
        # Both dialects' INSERT has on_conflict_do_update; the generic one does not.
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as postgresql_insert
            return postgresql_insert(table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert
        return sqlite_insert(table)

    def _put(self, db: Connection, key: str, value: str) -> None:
        stmt = self._insert(settings).values(key=key, value=value)
        db.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value}))

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as db:
            yield db

    def close(self) -> None:
        self.engine.dispose()

    # -- results --------------------------------------------------------------------------------
    def record(self, camera: str, people: int, width: int, height: int, detections: list[dict],
               image: bytes | None, media_type: str | None, ts: float | None = None, frame: int | None = None,
               history_count: int | None = None) -> None:
        """Store one analysed frame: it becomes the camera's latest, and a point of its history."""
        ts = time.time() if ts is None else ts
        if not self.keep_frames:
            image, media_type = None, None
        values = {"ts": ts, "people": people, "width": width, "height": height,
                  "detections": json.dumps(detections), "media_type": media_type, "image": image}
        with self.engine.begin() as db:  # one transaction: readers see all of it or none
            db.execute(self._insert(latest).values(camera=camera, frames=0, **values)
                       .on_conflict_do_nothing(index_elements=["camera"]))
            db.execute(update(latest).where(latest.c.camera == camera).values(frames=latest.c.frames + 1))
            # Workers finish out of order: an older frame counts, but never replaces a newer one.
            db.execute(update(latest).where(latest.c.camera == camera, latest.c.ts <= ts).values(**values))
            db.execute(counts.insert().values(camera=camera, ts=ts, people=people, frame=frame))
            if history_count is not None:
                _trim_history(db, camera, history_count)

    def cameras(self, fresh_after: float) -> list[dict]:
        """Every camera's latest summary; ``has_image`` only for frames newer than ``fresh_after``."""
        with self.engine.connect() as db:
            rows = db.execute(select(latest.c.camera, latest.c.ts, latest.c.people, latest.c.width, latest.c.height,
                                     latest.c.frames, latest.c.image.is_not(None)).order_by(latest.c.camera)).all()
        return [{"camera": c, "ts": ts, "people": n, "width": w, "height": h, "frames": f,
                 "has_image": bool(i) and ts >= fresh_after} for c, ts, n, w, h, f, i in rows]

    def latest(self, camera: str, fresh_after: float) -> dict | None:
        """A camera's latest result; its boxes only while newer than ``fresh_after`` (else [])."""
        with self.engine.connect() as db:
            row = db.execute(select(latest.c.ts, latest.c.people, latest.c.width, latest.c.height,
                                    latest.c.detections, latest.c.frames).where(latest.c.camera == camera)).first()
        if row is None:
            return None
        ts, people, width, height, detections, frames = row
        fresh = detections is not None and ts >= fresh_after
        return {"camera": camera, "ts": ts, "people": people, "width": width, "height": height,
                "detections": json.loads(detections) if fresh else [], "frames": frames, "expired": not fresh}

    def latest_image(self, camera: str, fresh_after: float) -> tuple[bytes, str] | None:
        with self.engine.connect() as db:
            row = db.execute(select(latest.c.image, latest.c.media_type).where(
                latest.c.camera == camera, latest.c.image.is_not(None), latest.c.ts >= fresh_after)).first()
        return (bytes(row[0]), row[1]) if row else None

    def history_of(self, camera: str, since: float, limit: int = 600) -> list[dict]:
        """The last ``limit`` points newer than ``since``, oldest first."""
        with self.engine.connect() as db:
            rows = db.execute(select(counts.c.ts, counts.c.people)
                              .where(counts.c.camera == camera, counts.c.ts >= since)
                              .order_by(counts.c.ts.desc()).limit(limit)).all()
        return [{"ts": ts, "people": n} for ts, n in reversed(rows)]

    def frame_ids(self, camera: str) -> list[int]:
        """Every client frame id recorded for ``camera`` (the fault benchmark's loss check)."""
        with self.engine.connect() as db:
            return [r[0] for r in db.execute(select(counts.c.frame).where(counts.c.camera == camera,
                                                                           counts.c.frame.is_not(None)))]

    # -- tokens ---------------------------------------------------------------------------------
    def add_token(self, row: dict) -> None:
        with self.engine.begin() as db:
            db.execute(tokens.insert().values(**row))

    def token(self, token_id: str) -> dict | None:
        with self.engine.connect() as db:
            row = db.execute(select(tokens).where(tokens.c.id == token_id)).mappings().first()
        return dict(row) if row else None

    def tokens(self) -> list[dict]:
        with self.engine.connect() as db:
            return [dict(r) for r in db.execute(select(tokens).order_by(tokens.c.created)).mappings()]

    def remove_token(self, token_id: str) -> bool:
        with self.engine.begin() as db:
            return db.execute(delete(tokens).where(tokens.c.id == token_id)).rowcount > 0

    # -- failed authentication ------------------------------------------------------------------
    def note_failure(self, client: str, ts: float | None = None) -> None:
        with self.engine.begin() as db:
            db.execute(auth_failures.insert().values(client=client[:64], ts=time.time() if ts is None else ts))

    def failures(self, client: str, since: float) -> int:
        with self.engine.connect() as db:
            return db.execute(select(func.count()).select_from(auth_failures).where(
                auth_failures.c.client == client[:64], auth_failures.c.ts >= since)).scalar_one()

    # -- access log -----------------------------------------------------------------------------
    def log_access(self, token_id: str, cameras: list[str], path: str, client: str | None) -> None:
        if not cameras:
            return
        now = time.time()
        with self.engine.begin() as db:
            db.execute(access_log.insert(), [{"ts": now, "token_id": token_id, "camera": c, "path": path[:200],
                                              "client": (client or "")[:64]} for c in cameras])

    def access_log(self, camera: str | None = None, limit: int = 1000) -> list[dict]:
        query = select(access_log.c.ts, access_log.c.token_id, access_log.c.camera, access_log.c.path,
                       access_log.c.client).order_by(access_log.c.id.desc()).limit(limit)
        if camera is not None:
            query = query.where(access_log.c.camera == camera)
        with self.engine.connect() as db:
            return [dict(r) for r in db.execute(query).mappings()]

    # -- retention ------------------------------------------------------------------------------
    def retention(self) -> Retention:
        with self.engine.connect() as db:
            row = db.execute(select(settings.c.value).where(settings.c.key == "retention")).first()
        return Retention.from_json(row[0] if row else None)

    def set_retention(self, retention: Retention) -> None:
        with self.engine.begin() as db:
            self._put(db, "retention", json.dumps(asdict(retention)))

    def sweep(self, retention: Retention, now: float | None = None) -> dict[str, int]:
        """Delete what ``retention`` no longer allows; return how many rows of each kind went."""
        now = time.time() if now is None else now
        gone = {}
        with self.engine.begin() as db:
            gone["frames"] = db.execute(
                update(latest).where(latest.c.ts < now - retention.latest_frame_s,
                                     (latest.c.image.is_not(None)) | (latest.c.detections.is_not(None)))
                .values(image=None, media_type=None, detections=None)).rowcount
            gone["history"] = db.execute(delete(counts).where(counts.c.ts < now - retention.history_s)).rowcount
            for (camera,) in db.execute(select(latest.c.camera)).all():
                gone["history"] += _trim_history(db, camera, retention.history_count)
            gone["access_log"] = db.execute(delete(access_log).where(
                access_log.c.ts < now - retention.access_log_s)).rowcount
            gone["auth_failures"] = db.execute(delete(auth_failures).where(
                auth_failures.c.ts < now - retention.auth_failure_s)).rowcount
        return gone


def _trim_history(db: Connection, camera: str, keep: int) -> int:
    """Keep ``camera``'s newest ``keep`` history points."""
    cutoff = select(counts.c.ts).where(counts.c.camera == camera).order_by(counts.c.ts.desc()) \
        .offset(max(keep, 1) - 1).limit(1).scalar_subquery()
    return db.execute(delete(counts).where(counts.c.camera == camera, counts.c.ts < cutoff)).rowcount


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
