"""The SQLite event log: every beat, alert, link event and quality change.

One file holds any number of sessions (one per start of ``beatguard run``);
the schema is the ``SCHEMA`` table below and ``device/EVENTLOG.md``.

Durability. The file is in WAL mode with ``synchronous=FULL``: each commit
appends to the write-ahead log and fsyncs it before returning, so a row
whose commit returned survives a killed process *and* a power cut (with
``NORMAL`` a power cut may undo the last commits, which for a device worn
on the body whose battery can run flat is the case that matters). The cost
is one fsync per commit; the runtime commits once per processed chunk, a
few times a second, not once per row.

Failures. A full disk or a file that turns read-only does not stop the
runtime: the failed rows stay in a bounded in-memory queue, one clear line
is logged, and writing is retried every ``retry_s`` seconds; once the disk
has room again the queue is written in order. Rows that never made it
(still queued at ``close``, or dropped from a full queue) are counted in
``lost_rows``, and ``loss`` says it in one line for the caller to report
(``beatguard run`` prints it last and exits with status 1). Opening a file
that cannot be written raises ``EventLogError`` naming the file and the
reason.
"""

from __future__ import annotations

import collections
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from beatguard.device.errors import EventLogError

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1

# Every column of every table: (table, column, SQL type, meaning). The DDL
# below is built from this table, and EVENTLOG.md repeats it for readers.
SCHEMA: tuple[tuple[str, str, str, str], ...] = (
    ("sessions", "id", "INTEGER PRIMARY KEY", "session number, 1, 2, ..."),
    ("sessions", "started_wall_s", "REAL NOT NULL", "start, Unix time (s, UTC)"),
    ("sessions", "started_mono_s", "REAL NOT NULL", "start, monotonic clock (s)"),
    ("sessions", "ended_wall_s", "REAL", "clean end, Unix time; NULL if killed"),
    ("sessions", "ended_mono_s", "REAL", "clean end, monotonic clock (s)"),
    (
        "sessions",
        "end_reason",
        "TEXT",
        "stopped, end of stream, port lost, link error, error (run failed)",
    ),
    ("sessions", "port", "TEXT", "serial port or URL read"),
    ("sessions", "fs_hz", "REAL", "stream sample rate (Hz)"),
    ("sessions", "model_dir", "TEXT", "model bundle folder"),
    ("sessions", "model_sha256", "TEXT", "SHA-256 of model.tflite"),
    ("sessions", "threshold", "REAL", "anomaly threshold on the score"),
    ("sessions", "settings_json", "TEXT", "all runtime settings, JSON"),
    ("sessions", "version", "TEXT", "beatguard version"),
    ("beats", "id", "INTEGER PRIMARY KEY", "row number"),
    ("beats", "session", "INTEGER NOT NULL REFERENCES sessions(id)", "session"),
    ("beats", "sample", "INTEGER NOT NULL", "R peak, stream index since start"),
    (
        "beats",
        "score",
        "REAL",
        "anomaly score (the bundle decision: shape z + timing); NULL if not scored",
    ),
    ("beats", "anomalous", "INTEGER NOT NULL", "1 if score > threshold, else 0"),
    ("beats", "quality", "INTEGER NOT NULL", "Quality flags at the beat (0 good)"),
    ("beats", "rr_before_s", "REAL", "seconds since the previous beat"),
    ("beats", "rr_avg_s", "REAL", "mean of recent RR intervals (s)"),
    ("beats", "emitted_at_sample", "INTEGER NOT NULL", "sample that completed it"),
    ("beats", "wall_s", "REAL NOT NULL", "when logged, Unix time (s)"),
    ("beats", "mono_s", "REAL NOT NULL", "when logged, monotonic clock (s)"),
    ("alerts", "id", "INTEGER PRIMARY KEY", "row number"),
    ("alerts", "session", "INTEGER NOT NULL REFERENCES sessions(id)", "session"),
    ("alerts", "kind", "TEXT NOT NULL", "run, burden, low_hr, high_hr, pause"),
    ("alerts", "sample", "INTEGER NOT NULL", "stream index where it was met"),
    ("alerts", "message", "TEXT NOT NULL", "one line for a person"),
    ("alerts", "details_json", "TEXT", "figures behind it, JSON"),
    ("alerts", "wall_s", "REAL NOT NULL", "when logged, Unix time (s)"),
    ("alerts", "mono_s", "REAL NOT NULL", "when logged, monotonic clock (s)"),
    ("link_events", "id", "INTEGER PRIMARY KEY", "row number"),
    ("link_events", "session", "INTEGER NOT NULL REFERENCES sessions(id)", "session"),
    ("link_events", "kind", "TEXT NOT NULL", "announce, corrupt, gap, ..."),
    ("link_events", "sample", "INTEGER NOT NULL", "stream index where it happened"),
    ("link_events", "message", "TEXT NOT NULL", "one line for a person"),
    ("link_events", "lost_samples", "INTEGER NOT NULL", "samples lost (gap)"),
    ("link_events", "corrupt_frames", "INTEGER NOT NULL", "frames dropped"),
    ("link_events", "details_json", "TEXT", "extras, JSON"),
    ("link_events", "wall_s", "REAL NOT NULL", "when logged, Unix time (s)"),
    ("link_events", "mono_s", "REAL NOT NULL", "when logged, monotonic clock (s)"),
    ("quality_events", "id", "INTEGER PRIMARY KEY", "row number"),
    ("quality_events", "session", "INTEGER NOT NULL REFERENCES sessions(id)", "id"),
    ("quality_events", "sample", "INTEGER NOT NULL", "stream index it starts at"),
    ("quality_events", "quality", "INTEGER NOT NULL", "Quality flags (0 good)"),
    ("quality_events", "description", "TEXT NOT NULL", "flags in words"),
    ("quality_events", "wall_s", "REAL NOT NULL", "when logged, Unix time (s)"),
    ("quality_events", "mono_s", "REAL NOT NULL", "when logged, monotonic clock (s)"),
)

TABLES = ("sessions", "beats", "alerts", "link_events", "quality_events")


def schema_sql() -> str:
    """The ``CREATE TABLE`` statements built from ``SCHEMA``."""
    statements = []
    for table in TABLES:
        cols = ",\n    ".join(f"{c} {t}" for tb, c, t, _ in SCHEMA if tb == table)
        statements.append(f"CREATE TABLE IF NOT EXISTS {table} (\n    {cols}\n);")
    statements.append(
        "CREATE INDEX IF NOT EXISTS beats_session_sample ON beats(session, sample);"
    )
    return "\n".join(statements)


def schema_markdown() -> str:
    """The schema as Markdown tables, one per SQLite table."""
    parts = []
    for table in TABLES:
        parts.append(f"### `{table}`\n\n| column | type | meaning |\n|---|---|---|")
        parts += [f"| `{c}` | {t} | {m} |" for tb, c, t, m in SCHEMA if tb == table]
        parts.append("")
    return "\n".join(parts)


def _columns(table: str) -> tuple[str, ...]:
    return tuple(c for tb, c, _, _ in SCHEMA if tb == table and c != "id")


@dataclass(frozen=True)
class _Row:
    table: str
    values: dict[str, Any]


class EventLog:
    """An SQLite event log, one session per instance.

    Parameters
    ----------
    path : str or Path
        The database file; created with its folder if absent. Existing
        files are appended to: a new session row is added on open.
    session_info : dict, optional
        Values for the ``sessions`` columns (``port``, ``fs_hz``,
        ``model_dir``, ``model_sha256``, ``threshold``, ``settings_json``,
        ``version``).
    clock : callable, optional
        ``() -> (wall_s, mono_s)``; defaults to ``time.time`` and
        ``time.monotonic``.
    retry_s : float
        Seconds between attempts to write rows that failed (full disk).
    max_pending_rows : int
        Rows kept in memory while the file cannot be written; beyond this
        the oldest are dropped and counted.
    max_size_bytes : int, optional
        Cap on the file size (SQLite ``max_page_count``), e.g. to leave room
        on a small SD card; reaching it behaves exactly like a full disk.

    Raises
    ------
    EventLogError
        The file cannot be created, opened or written, or is not a beatguard
        event log (the message names the file and the SQLite reason).

    Examples
    --------
    >>> with EventLog("events.sqlite", {"port": "/dev/beatguard"}) as log:
    ...     log.add_beat(1234, 0.02, False, 0, 0.8, 0.81, 1414)
    ...     log.commit()
    """

    def __init__(
        self,
        path: str | Path,
        session_info: dict | None = None,
        clock: Callable[[], tuple[float, float]] | None = None,
        retry_s: float = 5.0,
        max_pending_rows: int = 100_000,
        max_size_bytes: int | None = None,
    ) -> None:
        self.path = Path(path)
        self._clock = clock or (lambda: (time.time(), time.monotonic()))
        self.retry_s = float(retry_s)
        self._pending: collections.deque[_Row] = collections.deque()
        self._max_pending = int(max_pending_rows)
        self.dropped_rows = 0
        self.failed = False
        self.write_error = ""  # why the last write failed
        self._retry_at_mono = 0.0
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._db = self._open()
        if max_size_bytes is not None:
            page_bytes = self._db.execute("PRAGMA page_size").fetchone()[0]
            pages = max(1, int(max_size_bytes) // page_bytes)
            self._db.execute(f"PRAGMA max_page_count={pages}")
        self.session = self._start_session(session_info or {})

    # Opening ---------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False
            )
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise EventLogError(
                    f"event log {self.path}: schema version {version}, this "
                    f"beatguard writes version {SCHEMA_VERSION}"
                )
            db.executescript(
                "BEGIN;\n"
                + schema_sql()
                + f"\nPRAGMA user_version={SCHEMA_VERSION};\nCOMMIT;"
            )
        except sqlite3.DatabaseError as err:
            raise EventLogError(
                f"event log {self.path}: cannot open for writing ({err})"
            ) from err
        except FileExistsError as err:
            # mkdir's word when a file stands where the folder has to be
            raise EventLogError(
                f"event log {self.path}: cannot create (Not a directory)"
            ) from err
        except OSError as err:
            raise EventLogError(
                f"event log {self.path}: cannot create ({err.strerror})"
            ) from err
        if str(mode).lower() != "wal":
            logger.warning("event log %s: WAL mode refused, using %s", self.path, mode)
        return db

    def _start_session(self, info: dict) -> int:
        wall_s, mono_s = self._clock()
        values = {"started_wall_s": wall_s, "started_mono_s": mono_s, **info}
        unknown = set(values) - set(_columns("sessions"))
        if unknown:
            raise EventLogError(f"event log: unknown session fields {sorted(unknown)}")
        cols = ", ".join(values)
        marks = ", ".join("?" * len(values))
        try:
            cur = self._db.execute(
                f"INSERT INTO sessions ({cols}) VALUES ({marks})", list(values.values())
            )
        except sqlite3.DatabaseError as err:
            raise EventLogError(
                f"event log {self.path}: cannot start a session ({err})"
            ) from err
        return int(cur.lastrowid)

    def update_session(self, **values: Any) -> None:
        """Fill in session fields learnt after the start (e.g. ``fs_hz``).

        Failures are logged, not raised: the session row is a summary.
        """
        unknown = set(values) - set(_columns("sessions"))
        if unknown:
            raise EventLogError(f"event log: unknown session fields {sorted(unknown)}")
        if self._db is None or not values:
            return
        sets = ", ".join(f"{k}=?" for k in values)
        try:
            self._db.execute(
                f"UPDATE sessions SET {sets} WHERE id=?",
                [*values.values(), self.session],
            )
        except sqlite3.DatabaseError as err:
            logger.error("event log %s: cannot update the session (%s)", self.path, err)

    # Adding rows (kept until commit) --------------------------------------

    def _add(self, table: str, values: dict[str, Any]) -> None:
        wall_s, mono_s = self._clock()
        stamped = {"session": self.session, **values}
        row = _Row(table, {**stamped, "wall_s": wall_s, "mono_s": mono_s})
        with self._lock:
            self._pending.append(row)
            while len(self._pending) > self._max_pending:
                self._pending.popleft()
                self.dropped_rows += 1

    def add_beat(
        self,
        sample: int,
        score: float | None,
        anomalous: bool,
        quality: int,
        rr_before_s: float,
        rr_avg_s: float,
        emitted_at_sample: int,
    ) -> None:
        """Queue one beat row; it is written by the next ``commit``.

        Parameters
        ----------
        sample : int
            R peak, stream index since the session started.
        score : float or None
            Anomaly score (the bundle decision), or None when not scored.
        anomalous : bool
        quality : int
            ``Quality`` flags in force at the beat.
        rr_before_s, rr_avg_s : float
            Seconds (NaN is stored as NULL).
        emitted_at_sample : int
            Stream index of the sample that completed the beat.
        """
        self._add(
            "beats",
            {
                "sample": int(sample),
                "score": None if score is None else float(score),
                "anomalous": int(bool(anomalous)),
                "quality": int(quality),
                "rr_before_s": _real(rr_before_s),
                "rr_avg_s": _real(rr_avg_s),
                "emitted_at_sample": int(emitted_at_sample),
            },
        )

    def add_alert(self, kind: str, sample: int, message: str, details: dict) -> None:
        """Queue one alert row."""
        self._add(
            "alerts",
            {
                "kind": kind,
                "sample": int(sample),
                "message": message,
                "details_json": json.dumps(details, sort_keys=True),
            },
        )

    def add_link_event(
        self,
        kind: str,
        sample: int,
        message: str,
        lost_samples: int = 0,
        corrupt_frames: int = 0,
        details: dict | None = None,
    ) -> None:
        """Queue one link event row (announce, corrupt frames, gap, ...)."""
        self._add(
            "link_events",
            {
                "kind": kind,
                "sample": int(sample),
                "message": message,
                "lost_samples": int(lost_samples),
                "corrupt_frames": int(corrupt_frames),
                "details_json": json.dumps(details or {}, sort_keys=True, default=str),
            },
        )

    def add_quality_event(self, sample: int, quality: int, description: str) -> None:
        """Queue one signal-quality change."""
        self._add(
            "quality_events",
            {
                "sample": int(sample),
                "quality": int(quality),
                "description": description,
            },
        )

    # Writing ----------------------------------------------------------------

    @property
    def pending_rows(self) -> int:
        """Rows queued and not yet committed."""
        return len(self._pending)

    def commit(self, force: bool = False) -> bool:
        """Write every queued row in one transaction, durable on return.

        After a failure, attempts wait ``retry_s`` seconds unless ``force``.

        Returns
        -------
        bool
            True when the queue is empty (everything is on disk).
        """
        if self._db is None:
            return not self._pending
        with self._lock:
            rows = list(self._pending)
        if not rows:
            return True
        if self.failed and not force and time.monotonic() < self._retry_at_mono:
            return False
        try:
            self._write(rows)
        except sqlite3.DatabaseError as err:
            self._note_failure(err)
            return False
        with self._lock:
            for _ in rows:
                self._pending.popleft()
        if self.failed:
            logger.warning(
                "event log %s: writable again, %d queued rows written",
                self.path,
                len(rows),
            )
            self.failed = False
        return not self._pending

    def _write(self, rows: list[_Row]) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for row in rows:
                cols = ", ".join(row.values)
                marks = ", ".join("?" * len(row.values))
                db.execute(
                    f"INSERT INTO {row.table} ({cols}) VALUES ({marks})",
                    list(row.values.values()),
                )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _note_failure(self, err: sqlite3.DatabaseError) -> None:
        self._retry_at_mono = time.monotonic() + self.retry_s
        self.write_error = str(err)
        if not self.failed:
            logger.error(
                "event log %s: cannot write (%s); %d rows kept in memory, "
                "retrying every %g s; alerts still sound",
                self.path,
                err,
                len(self._pending),
                self.retry_s,
            )
        self.failed = True

    # Closing ----------------------------------------------------------------

    @property
    def lost_rows(self) -> int:
        """Rows never written: dropped from a full queue, or still queued at close."""
        unwritten = len(self._pending) if self._db is None else 0
        return self.dropped_rows + unwritten

    @property
    def loss(self) -> str | None:
        """One line saying how many rows were lost and why; None if none."""
        if not self.lost_rows:
            return None
        return (
            f"event log {self.path}: {self.lost_rows} rows could not be written "
            f"({self.write_error})"
        )

    def close(self, end_reason: str = "stopped") -> None:
        """Write what is queued, mark the session ended and close the file.

        May be called more than once. Rows that still cannot be written are
        counted in ``lost_rows`` (and said by ``loss``), not logged: the
        caller reports them; the session row then keeps a NULL end.
        """
        if self._db is None:
            return
        self.commit(force=True)
        wall_s, mono_s = self._clock()
        try:
            self._db.execute(
                "UPDATE sessions SET ended_wall_s=?, ended_mono_s=?, end_reason=? "
                "WHERE id=?",
                (wall_s, mono_s, end_reason, self.session),
            )
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.DatabaseError as err:
            # After a failure already said, the same cause again is no news.
            level = logging.DEBUG if self.failed else logging.ERROR
            logger.log(
                level, "event log %s: cannot close the session (%s)", self.path, err
            )
        self._db.close()
        self._db = None

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _real(value: float) -> float | None:
    value = float(value)
    return None if value != value else value


def read_beats(path: str | Path, session: int | None = None) -> list[sqlite3.Row]:
    """Read the ``beats`` rows of a log (of one session, or of all).

    Only reads (``query_only``), so it may be called while a runtime writes.

    Raises
    ------
    EventLogError
        The file is missing or not an event log.
    """
    return read_table(path, "beats", session)


def _read(path: str | Path, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
    path = Path(path)
    if not path.exists():
        raise EventLogError(f"event log {path}: no such file")
    try:
        # Not mode=ro: a read-only last connection cannot checkpoint, so
        # SQLite would leave the -wal and -shm files next to the log.
        db = sqlite3.connect(path)
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA query_only=ON")
            return db.execute(sql, params).fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError as err:
        raise EventLogError(f"event log {path}: cannot read ({err})") from err


def read_table(
    path: str | Path, table: str, session: int | None = None
) -> list[sqlite3.Row]:
    """Read every row of one table (``TABLES``), optionally of one session."""
    if table not in TABLES:
        raise EventLogError(f"event log {path}: no table {table!r}")
    where = ""
    params: tuple = ()
    if session is not None:
        where = " WHERE " + ("id" if table == "sessions" else "session") + "=?"
        params = (session,)
    return _read(path, f"SELECT * FROM {table}{where} ORDER BY id", params)
