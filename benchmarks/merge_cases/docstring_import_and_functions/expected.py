"""Database helpers (SQLite; UUID keys are stored as text)."""

import contextlib
import sqlite3


def connect(path):
    return sqlite3.connect(path)


def ensure_schema(db, sql):
    db.executescript(sql)


@contextlib.contextmanager
def transaction(db):
    with db:
        yield db
