"""Database helpers (SQLite; UUID keys are stored as text)."""

import sqlite3


def connect(path):
    return sqlite3.connect(path)


def ensure_schema(db, sql):
    db.executescript(sql)
