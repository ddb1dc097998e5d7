"""Database helpers."""

import contextlib
import sqlite3


def connect(path):
    return sqlite3.connect(path)


@contextlib.contextmanager
def transaction(db):
    with db:
        yield db
