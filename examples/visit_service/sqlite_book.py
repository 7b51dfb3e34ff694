"""SqliteBook: the base of the visit service's SQLite stores (appointments, survey answers,
people): one connection in WAL mode with ``synchronous=FULL`` (what a call saved is on disk
when it returns), its schema created, used from any thread under one lock."""

from __future__ import annotations

import sqlite3
import threading


class SqliteBook:
    SCHEMA = ""

    def __init__(self, path: str) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(self.SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()
