"""Where chat messages live: the ChatStore interface and its SQLite implementation."""

from __future__ import annotations

import json
import sqlite3
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any


@dataclass
class StoredMessage:
    id: int  # the server id: monotonic per store, so also the order within a room
    room: str
    kind: str  # "message" or "system"
    sender: str  # who may edit it (identity subject, or "name:<display name>"); "" for system
    peer_id: str
    display_name: str
    client_id: str
    text: str
    ts: int  # ms since the epoch
    edited: int | None = None
    deleted: bool = False
    extra: str = ""  # system messages: JSON object of extra fields


class ChatStore(ABC):
    """Every method is synchronous and returns once the change is durable."""

    @abstractmethod
    def add(self, message: StoredMessage) -> tuple[StoredMessage, bool]:
        """Store a message (its id is assigned); returns (the stored message, created). A
        message whose (room, client_id) is already stored is not stored again: the existing
        one is returned with created False."""

    @abstractmethod
    def get(self, message_id: int) -> StoredMessage | None: ...

    @abstractmethod
    def update(self, message_id: int, text: str, edited: int, deleted: bool) -> StoredMessage: ...

    @abstractmethod
    def since(self, room: str, since: int, limit: int) -> list[StoredMessage]:
        """Messages of the room with id > since, oldest first, at most limit."""

    @abstractmethod
    def purge(self, room: str | None, before_ts: int, exclude: tuple[str, ...] = ()) -> int:
        """Delete messages older than before_ts (of one room, or of every room not in
        exclude); returns how many."""

    def attachment(self, room: str, sha256: str) -> dict[str, Any] | None:
        """The attachment (sha256, name, size, mime) of a message not deleted in the room with
        this content address, or None."""
        raise NotImplementedError

    @abstractmethod
    def close(self) -> None: ...


_COLUMNS = (
    "id, room, kind, sender, peer_id, display_name, client_id, text, ts, edited, deleted, extra"
)


class SqliteChatStore(ChatStore):
    """SQLite in WAL mode with synchronous=FULL: a commit is on disk when it returns."""

    def __init__(self, path: str) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS messages ("
            " id INTEGER PRIMARY KEY AUTOINCREMENT, room TEXT NOT NULL, kind TEXT NOT NULL,"
            " sender TEXT NOT NULL, peer_id TEXT NOT NULL, display_name TEXT NOT NULL,"
            " client_id TEXT NOT NULL, text TEXT NOT NULL, ts INTEGER NOT NULL,"
            " edited INTEGER, deleted INTEGER NOT NULL DEFAULT 0, extra TEXT NOT NULL DEFAULT '')"
        )
        self._db.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS messages_client ON messages (room, client_id)"
            " WHERE client_id != ''"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS messages_room ON messages (room, id)")
        self._db.execute("CREATE INDEX IF NOT EXISTS messages_ts ON messages (ts)")

    @staticmethod
    def _row(row: tuple[Any, ...]) -> StoredMessage:
        return StoredMessage(
            id=row[0],
            room=row[1],
            kind=row[2],
            sender=row[3],
            peer_id=row[4],
            display_name=row[5],
            client_id=row[6],
            text=row[7],
            ts=row[8],
            edited=row[9],
            deleted=bool(row[10]),
            extra=row[11],
        )

    def add(self, message: StoredMessage) -> tuple[StoredMessage, bool]:
        with self._lock:
            if message.client_id:
                row = self._db.execute(
                    f"SELECT {_COLUMNS} FROM messages WHERE room = ? AND client_id = ?",
                    (message.room, message.client_id),
                ).fetchone()
                if row is not None:
                    return self._row(row), False
            cursor = self._db.execute(
                "INSERT INTO messages (room, kind, sender, peer_id, display_name, client_id,"
                " text, ts, edited, deleted, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    message.room,
                    message.kind,
                    message.sender,
                    message.peer_id,
                    message.display_name,
                    message.client_id,
                    message.text,
                    message.ts,
                    message.edited,
                    int(message.deleted),
                    message.extra,
                ),
            )
            assert cursor.lastrowid is not None
            message.id = cursor.lastrowid
            return message, True

    def get(self, message_id: int) -> StoredMessage | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE id = ?", (message_id,)
            ).fetchone()
        return None if row is None else self._row(row)

    def update(self, message_id: int, text: str, edited: int, deleted: bool) -> StoredMessage:
        with self._lock:
            self._db.execute(
                "UPDATE messages SET text = ?, edited = ?, deleted = ? WHERE id = ?",
                (text, edited, int(deleted), message_id),
            )
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE id = ?", (message_id,)
            ).fetchone()
        return self._row(row)

    def since(self, room: str, since: int, limit: int) -> list[StoredMessage]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE room = ? AND id > ? ORDER BY id LIMIT ?",
                (room, since, limit),
            ).fetchall()
        return [self._row(row) for row in rows]

    def purge(self, room: str | None, before_ts: int, exclude: tuple[str, ...] = ()) -> int:
        with self._lock:
            if room is not None:
                cursor = self._db.execute(
                    "DELETE FROM messages WHERE room = ? AND ts < ?", (room, before_ts)
                )
            else:
                marks = ", ".join("?" for _ in exclude)
                cursor = self._db.execute(
                    f"DELETE FROM messages WHERE ts < ? AND room NOT IN ({marks})",
                    (before_ts, *exclude),
                )
            return cursor.rowcount

    def attachment(self, room: str, sha256: str) -> dict[str, Any] | None:
        with self._lock:
            rows = self._db.execute(
                "SELECT extra FROM messages WHERE room = ? AND kind = 'message' AND deleted = 0"
                " AND extra LIKE ? ORDER BY id LIMIT 20",
                (room, f"%{sha256}%"),
            ).fetchall()
        for (extra,) in rows:
            found = json.loads(extra).get("attachment")
            if isinstance(found, dict) and found.get("sha256") == sha256:
                return found
        return None

    def close(self) -> None:
        with self._lock:
            self._db.close()
