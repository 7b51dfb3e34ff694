"""The waiting room of each visit: who is waiting, held (with a message from the professional),
admitted or denied. Professionals watch it and decide; clients watch their own entry.

Watchers get the whole snapshot after every change (a queue each, bounded: a watcher that
does not read loses old snapshots, never the latest)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

ACTIONS = ("admit", "deny", "hold")
MAX_MESSAGE = 300
MAX_WAITING = 50


class LobbyError(ValueError):
    """A refused waiting-room action; the message says why."""


@dataclass
class Entry:
    participantId: str
    name: str
    role: str
    actingFor: str
    state: str = "waiting"  # waiting | held | admitted | denied | left
    message: str = ""
    since: float = 0.0


class Lobby:
    def __init__(self, appointment_id: str) -> None:
        self.appointment_id = appointment_id
        self.entries: dict[str, Entry] = {}
        self._pages: Counter[str] = Counter()  # open waiting-room pages per participant
        self._subjects: dict[str, str] = {}  # who is on each seat (never sent to browsers)
        self._watchers: set[asyncio.Queue[list[dict[str, Any]] | None]] = set()

    def snapshot(self) -> list[dict[str, Any]]:
        return [asdict(e) for e in sorted(self.entries.values(), key=lambda e: e.since)]

    def _changed(self) -> None:
        snap = self.snapshot()
        for queue in self._watchers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(snap)

    def watch(self) -> asyncio.Queue[list[dict[str, Any]] | None]:
        queue: asyncio.Queue[list[dict[str, Any]] | None] = asyncio.Queue(maxsize=4)
        queue.put_nowait(self.snapshot())
        self._watchers.add(queue)
        return queue

    def unwatch(self, queue: asyncio.Queue[list[dict[str, Any]] | None]) -> None:
        self._watchers.discard(queue)

    def arrive(
        self, participant_id: str, name: str, role: str, acting_for: str = "", subject: str = ""
    ) -> Entry:
        """A participant enters (or comes back to) the waiting room. An admitted participant
        stays admitted (a reload or a dropped connection does not send them back); someone
        else on the same seat (a delegate after the client, or the other way round) waits
        anew: a decision is about a person, not a seat."""
        entry = self.entries.get(participant_id)
        if entry is not None and self._subjects.get(participant_id, "") != subject:
            entry = None
            self._pages.pop(participant_id, None)
        self._subjects[participant_id] = subject
        if entry is not None and entry.state in ("admitted", "denied", "held"):
            entry.name, entry.actingFor = name, acting_for
            self._pages[participant_id] += 1
            self._changed()
            return entry
        waiting = sum(1 for e in self.entries.values() if e.state in ("waiting", "held"))
        if entry is None and waiting >= MAX_WAITING:
            raise LobbyError("the waiting room is full")
        entry = Entry(participant_id, name, role, acting_for, "waiting", "", time.time())
        self.entries[participant_id] = entry
        self._pages[participant_id] += 1
        self._changed()
        return entry

    def left(self, participant_id: str) -> None:
        """A waiting-room page of the participant closed; when it was the last one (a reload
        opens the new page before the old one is noticed gone), they left."""
        self._pages[participant_id] -= 1
        if self._pages[participant_id] > 0:
            return
        del self._pages[participant_id]
        entry = self.entries.get(participant_id)
        if entry is not None and entry.state in ("waiting", "held"):
            entry.state = "left"
            self._changed()

    def decide(self, participant_id: str, action: str, message: str = "") -> Entry:
        entry = self.entries.get(participant_id)
        if entry is None or entry.state == "left":
            raise LobbyError("that participant is not in the waiting room")
        if action not in ACTIONS:
            raise LobbyError(f"action must be one of {', '.join(ACTIONS)}")
        if not isinstance(message, str) or len(message) > MAX_MESSAGE:
            raise LobbyError(f"the message is a text of at most {MAX_MESSAGE} characters")
        if action == "hold" and not message.strip():
            raise LobbyError("holding someone needs a message for them")
        entry.state = {"admit": "admitted", "deny": "denied", "hold": "held"}[action]
        entry.message = message.strip()
        self._changed()
        return entry

    def admitted(self, participant_id: str, subject: str | None = None) -> bool:
        """Whether the seat's person (``subject``, when given) was let in."""
        entry = self.entries.get(participant_id)
        if subject is not None and self._subjects.get(participant_id, "") != subject:
            return False
        return entry is not None and entry.state == "admitted"

    def close(self) -> None:
        """The visit ended: everyone still waiting is told."""
        for entry in self.entries.values():
            if entry.state in ("waiting", "held"):
                entry.state = "ended"
        self._changed()

    def hang_up(self) -> None:
        """The service stops: every watcher gets None (its stream ends)."""
        for queue in self._watchers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)


class Lobbies:
    def __init__(self) -> None:
        self._lobbies: dict[str, Lobby] = {}

    def get(self, appointment_id: str) -> Lobby:
        lobby = self._lobbies.get(appointment_id)
        if lobby is None:
            lobby = self._lobbies[appointment_id] = Lobby(appointment_id)
        return lobby

    def hang_up(self) -> None:
        for lobby in self._lobbies.values():
            lobby.hang_up()

    def drop(self, appointment_id: str) -> None:
        lobby = self._lobbies.pop(appointment_id, None)
        if lobby is not None:
            lobby.close()  # the last snapshot says "ended"
            lobby.hang_up()
