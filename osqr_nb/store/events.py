"""The append-only event log: one SQLite database per repository, in WAL mode.

Every change of state is appended here before anything reacts to it, so a
run's state can always be rebuilt by folding its events (see engine/state.py).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id  TEXT NOT NULL,
    type    TEXT NOT NULL,
    task_id TEXT,
    ts      REAL NOT NULL,
    data    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_run ON events (run_id, seq);
CREATE TABLE IF NOT EXISTS blobs (
    hash TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Event:
    run_id: str
    type: str
    task_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    ts: float = field(default_factory=time.time)
    seq: int | None = None


def log_path(repo: str | Path) -> Path:
    return Path(repo) / ".osqr" / "osqr.db"


class EventLog:
    """Appends and reads events; safe to share between runs of one repository."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                   timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def append(self, event: Event) -> Event:
        """Write the event durably (committed) and return it with its sequence number."""
        payload = json.dumps(event.data, default=str, ensure_ascii=False)
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO events (run_id, type, task_id, ts, data) VALUES (?, ?, ?, ?, ?)",
                (event.run_id, event.type, event.task_id, event.ts, payload),
            )
        return Event(event.run_id, event.type, event.task_id, event.data, event.ts, cur.lastrowid)

    def put_blob(self, body: str) -> str:
        """Store a large body once, by content hash (conversations repeat themselves)."""
        digest = hashlib.sha256(body.encode()).hexdigest()[:32]
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO blobs (hash, body) VALUES (?, ?)", (digest, body))
        return digest

    def get_blob(self, digest: str) -> str:
        with self._lock:
            row = self._db.execute("SELECT body FROM blobs WHERE hash = ?", (digest,)).fetchone()
        if row is None:
            raise KeyError(f"no stored body {digest!r} in {self.path}")
        return row[0]

    def read(self, run_id: str | None = None) -> Iterator[Event]:
        query = "SELECT seq, run_id, type, task_id, ts, data FROM events"
        args: tuple[Any, ...] = ()
        if run_id is not None:
            query += " WHERE run_id = ?"
            args = (run_id,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY seq", args).fetchall()
        for seq, run, type_, task, ts, data in rows:
            yield Event(run, type_, task, json.loads(data), ts, seq)

    def run_ids(self) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT run_id FROM events GROUP BY run_id ORDER BY MIN(seq)").fetchall()
        return [r[0] for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


_open_logs: dict[Path, EventLog] = {}


def open_log(repo: str | Path) -> EventLog:
    """The shared `EventLog` of a repository (one connection per process and file)."""
    path = log_path(repo).resolve()
    if path not in _open_logs:
        _open_logs[path] = EventLog(path)
    return _open_logs[path]
