"""Recording: one recording of a room — its directory, manifest and journals, and the flush
loop that moves the data plane's records to disk.

Started by :meth:`mediasrv.room.Room.start_recording` (the Python API, the signaling
``startRecording`` and the admin API all go there), after the plugins'
``authorize_recording`` gates. A whole-room recording also takes producers published later,
each after the gates again. A write error (a full disk, a size limit) stops the whole
recording with its reason; forwarding never notices.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from mediasrv.events import Emitter
from mediasrv.recording.journal_file import JournalFile
from mediasrv.recording.producer_recording import ProducerRecording
from mediasrv.tasks import spawn

if TYPE_CHECKING:
    from mediasrv.config import RecordingConfig
    from mediasrv.producer import Producer
    from mediasrv.router import Router

log = logging.getLogger("mediasrv.recording")

MANIFEST = "recording.json"


def room_directory(room_id: str) -> str:
    """A room id as one safe path component (percent-encoded; a long one cut and given a
    hash, so that it stays under the file systems' 255-byte name limit)."""
    name = quote(room_id, safe="")
    if name in ("", ".", ".."):
        name = f"room-{name.replace('.', '%2E')}"
    if len(name) > 200:
        digest = hashlib.sha256(room_id.encode("utf-8")).hexdigest()[:16]
        name = f"{name[:180].rstrip('%0123456789ABCDEF')}-{digest}"
    return name


def write_json_atomically(path: Path, value: Any) -> None:
    """Write, fsync, rename over the old file, fsync the directory: always a whole file."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as file:
        json.dump(value, file, indent=1)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _sync_all(files: list[JournalFile]) -> None:
    for file in files:
        file.sync()


def _name(work: Callable[[], object]) -> str:
    return getattr(work, "__name__", "file work").replace("<lambda>", "a write")


class RecordedPeer(Protocol):
    @property
    def display_name(self) -> str: ...


class RecordingCounters(Protocol):
    """Where recordings add up what they did, for the metrics (a MediaServer)."""

    @property
    def recording_totals(self) -> Counter[str]: ...

    @property
    def recordings_stopped(self) -> Counter[str]: ...


class RecordedRoom(Protocol):
    """What a recording needs of its room (a Room)."""

    @property
    def id(self) -> str: ...

    @property
    def router(self) -> Router: ...

    @property
    def peers(self) -> Mapping[str, RecordedPeer]: ...

    @property
    def server(self) -> RecordingCounters: ...


class Recording(Emitter):
    """Events: ``journal`` (a ProducerRecording started), ``journalstop`` (one ended),
    ``stop`` (reason)."""

    def __init__(
        self,
        room: RecordedRoom,
        config: RecordingConfig,
        *,
        whole_room: bool,
        started_by: str | None = None,
    ) -> None:
        super().__init__()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.id = f"{stamp}-{uuid.uuid4().hex[:8]}"
        self.room = room
        self.config = config
        self.whole_room = whole_room
        self.started_by = started_by
        self.started = time.time()
        self.stopped: float | None = None
        self.stop_reason: str | None = None
        self.directory = Path(config.directory) / room_directory(room.id) / self.id
        self.directory.mkdir(parents=True, exist_ok=False)
        self.journals: dict[str, ProducerRecording] = {}  # by producer id
        self.write_errors = 0
        self._synced_at = time.monotonic()
        # the server's totals (bytes, dropped, write_errors) for its metrics
        self.totals: Counter[str] = room.server.recording_totals
        # fsyncs, closes and manifest writes run in a thread, one after another, so that the
        # event loop (and the data plane on it) never waits for the disk
        self._io_lock = asyncio.Lock()
        self._io: set[asyncio.Task[None]] = set()
        self._save_manifest()
        self._task = spawn(self._run(), f"recording {self.id}", detached=True)

    @property
    def active(self) -> bool:
        return self.stopped is None

    @property
    def bytes(self) -> int:
        return sum(j.file.size for j in self.journals.values())

    # ---- journals ----

    def add(self, producer: Producer) -> ProducerRecording | None:
        """Record a producer too (once; None when stopped or already recorded)."""
        if not self.active or producer.closed or producer.id in self.journals:
            return None
        peer = self.room.peers.get(str(producer.app_data.get("peerId")))
        try:
            journal = ProducerRecording(
                self.id,
                self.room.id,
                producer,
                self.room.router,
                self.directory,
                self.config,
                display_name=peer.display_name if peer is not None else "",
            )
        except OSError as exc:
            self.write_errors += 1
            self.totals["write_errors"] += 1
            self.stop(f"write_error: {exc.strerror or exc}")
            return None
        self.journals[producer.id] = journal
        producer.on("close", lambda: self._journal_ended(journal, "producer_closed"))
        self._save_manifest()
        log.info(
            "recording %s: %s %s of peer %s", self.id, producer.kind, producer.id, journal.peer_id
        )
        self.emit("journal", journal)
        return journal

    def _journal_ended(self, journal: ProducerRecording, reason: str) -> None:
        if journal.stopped is None:
            self._stop_journal(journal, reason)
            self._save_manifest()
            self.emit("journalstop", journal)

    def _stop_journal(self, journal: ProducerRecording, reason: str) -> None:
        written, dropped = journal.file.size, journal.sink.dropped
        journal.stop(reason)  # the last records written (to the page cache) here
        self.totals["bytes"] += journal.file.size - written
        self.totals["dropped"] += journal.sink.dropped - dropped
        self._in_thread(journal.file.finish)  # fsync and close

    # ---- the disk, off the event loop ----

    def _in_thread(self, work: Callable[[], object]) -> None:
        """Run blocking file work in a thread, after the work scheduled before it."""

        async def run() -> None:
            async with self._io_lock:
                try:
                    await asyncio.to_thread(work)
                except OSError as exc:
                    self.write_errors += 1
                    self.totals["write_errors"] += 1
                    log.error("recording %s: %s failed: %s", self.id, _name(work), exc)
                    if self.active:
                        self.stop(f"write_error: {exc.strerror or exc}")

        task = spawn(run(), f"recording {self.id} io", detached=True)
        self._io.add(task)
        task.add_done_callback(self._io.discard)

    async def settled(self) -> None:
        """Wait until every fsync, close and manifest write scheduled so far is done."""
        while self._io:
            await asyncio.gather(*list(self._io), return_exceptions=True)

    # ---- writing ----

    async def _run(self) -> None:
        while self.active:
            await asyncio.sleep(self.config.flush_interval)
            if self.active:
                await self.flush()

    async def flush(self) -> None:
        """Records to the files now (and fsync them in a thread when configured)."""
        written = []
        for journal in list(self.journals.values()):
            if not journal.active:
                continue
            try:
                dropped = journal.sink.dropped
                self.totals["bytes"] += journal.flush()
                self.totals["dropped"] += journal.sink.dropped - dropped
            except OSError as exc:
                self.write_errors += 1
                self.totals["write_errors"] += 1
                log.error("recording %s: writing %s failed: %s", self.id, journal.file_name, exc)
                self.stop(f"write_error: {exc.strerror or exc}")
                return
            written.append(journal)
        interval = self.config.fsync_interval
        now = time.monotonic()
        if interval and written and now - self._synced_at >= interval:
            self._synced_at = now
            files = [journal.file for journal in written]
            self._in_thread(lambda: _sync_all(files))

    def _save_manifest(self) -> None:
        """The manifest as it is now, written (fsynced, renamed) in the file thread."""
        path, manifest = self.directory / MANIFEST, self.manifest()
        self._in_thread(lambda: write_json_atomically(path, manifest))

    def manifest(self) -> dict[str, Any]:
        return {
            "format": "mediasrv-recording",
            "version": 1,
            "recording": self.id,
            "room": self.room.id,
            "started": self.started,
            "stopped": self.stopped,
            "stopReason": self.stop_reason,
            "journals": [
                {k: v for k, v in j.stats().items() if k not in ("packets", "layer")}
                for j in self.journals.values()
            ],
        }

    # ---- the end ----

    def stop(self, reason: str = "stopped") -> None:
        """Stop every journal (the last records written and fsynced) and the recording."""
        if not self.active:
            return
        self.stopped = time.time()
        self.stop_reason = reason
        self._task.cancel()
        for journal in list(self.journals.values()):
            if journal.active:
                self._stop_journal(journal, reason)
        self.room.server.recordings_stopped[reason.split(":")[0]] += 1
        self._save_manifest()
        log.info("recording %s of room %r stopped: %s", self.id, self.room.id, reason)
        self.emit("stop", reason)

    def info(self) -> dict[str, Any]:
        """What peers are told (recordingState) and the APIs show."""
        return {
            "recording": self.active,
            "id": self.id,
            # as their publishers know them (a producer piped from another worker of a spread
            # room has an id of its own here)
            "producers": [
                j.producer.app_data.get("pipedFrom", pid)
                for pid, j in self.journals.items()
                if j.active
            ],
            "startedAt": self.started,
            "stoppedAt": self.stopped,
            "reason": self.stop_reason,
        }

    def stats(self) -> dict[str, Any]:
        return {
            **self.info(),
            "directory": str(self.directory),
            "bytes": self.bytes,
            "writeErrors": self.write_errors,
            "journals": [j.stats() for j in self.journals.values()],
        }
