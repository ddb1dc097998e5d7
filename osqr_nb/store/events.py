"""The append-only event log: one SQLite database per repository, in WAL mode.

Every change of state is appended here before anything reacts to it, so a
run's state can always be rebuilt by folding its events (see engine/state.py).
"""

from __future__ import annotations

import atexit
import hashlib
import itertools
import json
import os
import reprlib
import sqlite3
import threading
import time
import warnings
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

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


class LogError(ValueError):
    """The event log cannot be opened or written; the message says why and what to do."""


BUSY_TIMEOUT = 0.02      # seconds an append on the kernel's loop may wait for another writer's lock
IDLE = 2.0               # seconds a writer with nothing to write lives on
GROUP_END = "#end\n"      # in a journal, after the lines of one append
_LOCKED = ("locked", "busy")


class EventLog:
    """Appends and reads events; safe to share between runs of one repository.

    An append is durable before it returns, and is never a commit on the kernel's
    loop: the events go to a journal beside the database (one write of whole JSON
    lines, which a killed process cannot lose: the kernel holds it), and a writer
    thread commits them to SQLite in order, a batch a transaction, as soon as it
    can (at once, or when another process lets go of the database's lock). SQLite
    commits on the loop were a quarter of the loop's time in a run of a thousand
    tasks. Readers in this process see committed and journalled events alike, in
    order; another process sees an event once it is committed, milliseconds later.
    Opening a log first commits what a dead process left in its journal, skipping
    what was committed already (a kill between a commit and the journal's reset).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise LogError(f"{self.path.parent} is a file, but osqr-nb keeps its log and the agents' "
                           f"worktrees in a folder of that name; move the file away") from None
        self._lock = threading.Lock()          # the journal, the pending events and bodies
        self._db_lock = threading.Lock()       # the database: a read never sees a batch twice
        self._pending: list[Event] = []        # appended, journalled, not yet in SQLite
        self._payloads: dict[int, str] = {}    # id(pending event) -> its data as JSON, encoded once
        self._wake = threading.Event()
        self._writer: threading.Thread | None = None   # started by an append, gone when idle
        self._journal_fd: int | None = None
        self._closed = False
        self._parked_blobs: dict[str, str] = {}        # bodies journalled, not yet in SQLite
        self._unwritten_blobs: dict[str, str] = {}     # bodies the next append writes, ahead of its events
        self.malformed: list[tuple[int, str]] = []    # (seq, why) of rows that could not be read
        try:
            self._db = self._connect(BUSY_TIMEOUT * 50)
        except sqlite3.DatabaseError as exc:
            raise LogError(f"cannot open the event log {self.path}: {exc}") from None
        self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
        self._recover_journals()
        self._journal = self.path.with_name(f"{self.path.name}.pending-{os.getpid()}-{next(_instances)}")
        _open_instances.add(self)

    def _connect(self, timeout: float) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=timeout)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA)
        return db

    def append(self, event: Event) -> Event:
        """Write the event durably and return it."""
        return self.append_all([event])[0]

    def append_all(self, events: list[Event]) -> list[Event]:
        """Write events that belong together: after a crash, all of them or none (one write to
        the journal, then one transaction). Bodies stored since the last append (`put_blob`)
        go first, with them. The events come back without a `seq`: SQLite numbers them when
        the writer commits them (`read` returns them numbered)."""
        if not events:
            return []
        if self._closed:
            raise LogError(f"the event log {self.path} is closed")
        with self._lock:
            self._journal_rows(self._take_blobs() + events)
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_batches, name="osqr-log-writer", daemon=True)
                self._writer.start()
        self._wake.set()
        return events

    def _take_blobs(self) -> list[Event]:
        blobs = [Event("", "_blob", None, {"hash": digest, "body": body})
                 for digest, body in self._unwritten_blobs.items()]
        self._unwritten_blobs.clear()
        return blobs

    def _journal_rows(self, rows: list[Event]) -> None:
        """One write of whole lines and an end mark (the lock held): a kill can cut a write
        short (Linux stops a large write at a page when the process is killed), and a
        group without its end mark is left out when the journal is read back, whole."""
        payloads = [to_json(e.data) for e in rows]
        data = ("".join(_line(e, p) for e, p in zip(rows, payloads)) + GROUP_END).encode("utf-8")
        if self._journal_fd is None:
            _live_journals.add(self._journal.name)
            self._journal_fd = os.open(self._journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        while data:
            data = data[os.write(self._journal_fd, data):]
        self._parked_blobs.update((b.data["hash"], b.data["body"]) for b in rows if b.type == "_blob")
        self._pending.extend(rows)
        self._payloads.update((id(e), p) for e, p in zip(rows, payloads))

    def _write_batches(self) -> None:
        """The writer: everything journalled, in order, one transaction a batch; the journal
        starts over once nothing is pending. Idle for IDLE seconds, it ends (an append starts
        another), so logs nobody writes to hold no thread and no second connection. Its wait
        for another process's lock is short and repeated, so a read here never waits long."""
        db = self._connect(BUSY_TIMEOUT)
        try:
            while True:
                woken = self._wake.wait(IDLE)
                self._wake.clear()
                while self._commit_pending(db):
                    pass
                with self._lock:
                    if self._closed or (not woken and not self._pending and not self._wake.is_set()):
                        self._writer = None
                        return
        finally:
            db.close()

    def _commit_pending(self, db: sqlite3.Connection) -> bool:
        """Commit what is pending now; whether to go on (there was a batch, or it must wait)."""
        with self._lock:
            batch = list(self._pending)
        if not batch:
            return False
        with self._db_lock:
            try:
                _insert(db, batch, payloads=self._payloads)
                failure = None
            except sqlite3.OperationalError as exc:
                failure = exc
            else:
                self._drop_committed(batch)
        if failure is None:
            return True
        locked = any(word in str(failure) for word in _LOCKED)
        if not locked:
            warnings.warn(f"{self.path}: events wait in the journal: {failure}", RuntimeWarning)
        if self._closed:
            return False                      # left in the journal for the next opening
        time.sleep(0.05 if locked else 1.0)   # another process holds the lock: again, soon
        return True

    def _drop_committed(self, batch: list[Event]) -> None:
        with self._lock:
            del self._pending[:len(batch)]
            for row in batch:
                self._payloads.pop(id(row), None)
            for row in batch:
                if row.type == "_blob":
                    self._parked_blobs.pop(row.data["hash"], None)
            if not self._pending and self._journal_fd is not None:
                os.ftruncate(self._journal_fd, 0)     # all in SQLite: the journal starts over

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait (off the loop!) until every journalled event is in SQLite; False if still locked."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        while self._pending and time.monotonic() < deadline and self._writer is not None:
            time.sleep(0.002)
        return not self._pending

    def _recover_journals(self) -> None:
        """Commit the events that dead processes (or logs of this one never closed) journalled."""
        for journal in self.path.parent.glob(f"{self.path.name}.pending-*"):
            pid = journal.name.rsplit(".pending-", 1)[-1].split("-")[0]
            if journal.name in _live_journals or (
                    pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid))):
                continue
            events = _journalled(journal.read_text(encoding="utf-8", errors="replace"))
            try:
                _insert(self._db, events, skip_present=True)
            except sqlite3.OperationalError:
                continue           # still locked: the next opening tries again
            journal.unlink(missing_ok=True)

    def put_blob(self, body: str) -> str:
        """Store a large body once, by content hash (conversations repeat themselves).

        The body is written with the next append, in its transaction: the event that names
        it, which always follows, never lands without it, and a body costs no commit of its
        own (a commit on the kernel's loop is the log's whole cost)."""
        digest = hashlib.sha256(body.encode()).hexdigest()[:32]
        with self._lock:
            if digest not in self._parked_blobs:
                self._unwritten_blobs.setdefault(digest, body)
        return digest

    def get_blob(self, digest: str) -> str:
        with self._lock:
            for waiting in (self._unwritten_blobs, self._parked_blobs):
                if digest in waiting:
                    return waiting[digest]
        with self._db_lock:                   # dropped from the parked bodies only once committed
            row = self._db.execute("SELECT body FROM blobs WHERE hash = ?", (digest,)).fetchone()
        if row is None:
            raise KeyError(f"no stored body {digest!r} in {self.path}")
        return row[0]

    def read(self, run_id: str | None = None) -> Iterator[Event]:
        """The events in order, those still parked last; a row that cannot be read is skipped
        and reported (`malformed`, and a warning), so one bad row never hides the rest."""
        query = "SELECT seq, run_id, type, task_id, ts, data FROM events"
        args: tuple[Any, ...] = ()
        if run_id is not None:
            query += " WHERE run_id = ?"
            args = (run_id,)
        with self._db_lock, self._lock:
            rows = self._db.execute(query + " ORDER BY seq", args).fetchall()
            parked = [e for e in self._pending if e.type != "_blob" and run_id in (None, e.run_id)]
        for seq, run, type_, task, ts, data in rows:
            try:
                payload = json.loads(data)
                if not isinstance(payload, dict) or not isinstance(type_, str):
                    raise ValueError("its data is not a JSON object")
            except (ValueError, TypeError) as exc:
                self._report(seq, str(exc))
                continue
            yield Event(run, type_, task, payload, ts, seq)
        yield from parked

    def _report(self, seq: int, why: str) -> None:
        if (seq, why) not in self.malformed:
            self.malformed.append((seq, why))
            warnings.warn(f"{self.path}: event row {seq} cannot be read ({why}); it is skipped",
                          RuntimeWarning, stacklevel=3)

    def run_ids(self) -> list[str]:
        with self._db_lock, self._lock:
            rows = self._db.execute(
                "SELECT run_id FROM events GROUP BY run_id ORDER BY MIN(seq)").fetchall()
            parked = [e.run_id for e in self._pending if e.type != "_blob"]
        ids = [r[0] for r in rows]
        return ids + [r for r in dict.fromkeys(parked) if r not in ids]

    def close(self) -> None:
        """Commit what is journalled (waiting while another process holds the lock), then stop
        the writer; what could not be committed stays in the journal for the next opening."""
        if self._closed:
            return
        with self._lock:
            blobs = self._take_blobs()
            if blobs:
                self._journal_rows(blobs)
        self.flush()
        writer = self._writer
        self._closed = True
        self._wake.set()
        if writer is not None:
            writer.join(5)
        with self._lock:
            if self._journal_fd is not None:
                os.close(self._journal_fd)
                self._journal_fd = None
                if not self._pending:
                    self._journal.unlink(missing_ok=True)
                    _live_journals.discard(self._journal.name)
        with self._db_lock:
            self._db.close()
        _open_instances.discard(self)


def to_json(value: Any, default: Any = str, sort_keys: bool = False) -> str:
    """JSON that SQLite and a UTF-8 file can always store: what a model sent may hold a lone
    surrogate (escaped then, and read back the same) or nest deeper than json can walk."""
    try:
        text = json.dumps(value, default=default, ensure_ascii=False, sort_keys=sort_keys)
    except RecursionError:
        return json.dumps({"unloggable": "nested too deeply to log", "preview": reprlib.repr(value)})
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, default=default, ensure_ascii=True, sort_keys=sort_keys)
    return text


def _from_row(row: dict[str, Any]) -> Event:
    return Event(row["run_id"], row["type"], row["task_id"], row["data"], row["ts"])


def _line(event: Event, payload: str) -> str:
    """The journal's line of an event whose data is already JSON (`payload`)."""
    head = to_json({"run_id": event.run_id, "type": event.type, "task_id": event.task_id, "ts": event.ts})
    return f'{head[:-1]}, "data": {payload}}}\n'


def _insert(db: sqlite3.Connection, events: list[Event], skip_present: bool = False,
            payloads: Mapping[int, str] | None = None) -> list[Event]:
    """One transaction; `skip_present` leaves out events already there (a journal replayed twice).
    A lone event is one statement, which SQLite commits as its own transaction."""
    alone = len(events) == 1 and not skip_present
    written = []
    if not alone:
        db.execute("BEGIN IMMEDIATE")
    try:
        for event in events:
            if event.type == "_blob":
                db.execute("INSERT OR IGNORE INTO blobs (hash, body) VALUES (?, ?)",
                           (event.data["hash"], event.data["body"]))
                continue
            payload = payloads.get(id(event)) if payloads else None
            if payload is None:
                payload = to_json(event.data)
            if skip_present and db.execute(
                    "SELECT 1 FROM events WHERE run_id = ? AND type = ? AND ts = ? AND data = ?",
                    (event.run_id, event.type, event.ts, payload)).fetchone():
                continue
            cur = db.execute("INSERT INTO events (run_id, type, task_id, ts, data) VALUES (?, ?, ?, ?, ?)",
                             (event.run_id, event.type, event.task_id, event.ts, payload))
            written.append(Event(event.run_id, event.type, event.task_id, event.data, event.ts, cur.lastrowid))
        if not alone:
            db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return written


def _journalled(text: str) -> list[Event]:
    """The events of a journal's whole groups, in order (one written before end marks existed:
    its whole lines)."""
    events: list[Event] = []
    group: list[Event] = []
    marked = GROUP_END in text
    for line in text.splitlines(keepends=True):
        if line == GROUP_END:
            events.extend(group)
            group = []
            continue
        try:
            group.append(_from_row(json.loads(line)))
        except (ValueError, KeyError, TypeError):
            break                   # a line a kill cut short: its append never returned
    return events if marked else events + group


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_open_logs: dict[Path, EventLog] = {}
_instances = itertools.count()
_live_journals: set[str] = set()               # this process's journals in use: never recovered by it
_open_instances: "weakref.WeakSet[EventLog]" = weakref.WeakSet()


@atexit.register
def _commit_on_exit() -> None:
    """A clean exit commits what is journalled (a kill leaves it to the next opening)."""
    for log in list(_open_instances):
        log.flush(5.0)


def open_log(repo: str | Path) -> EventLog:
    """The shared `EventLog` of a repository (one connection per process and file)."""
    path = log_path(repo).resolve()
    if path not in _open_logs:
        _open_logs[path] = EventLog(path)
    return _open_logs[path]
