"""JournalFile: the server's append-only journal file (header written at creation).

Appends go straight to the file descriptor (``os.write``, no user-space buffer), so what was
appended survives a killed process; ``sync()`` (fsync) makes it survive a power loss too.
Errors (a full disk, a file size limit) are raised as OSError for the caller to stop on.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mediasrv import _core
from mediasrv.recording.journal import encode_header


class JournalFile:
    def __init__(self, path: Path, metadata: Mapping[str, Any]) -> None:
        self.path = path
        self.size = 0
        self._lock = threading.Lock()  # fsync in a thread never meets a closed or reused fd
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o640)
        try:
            self.append(encode_header(metadata))
        except BaseException:
            self.close()
            raise

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def append(self, data: bytes) -> None:
        """Write all of data at the end of the file (a short write is continued)."""
        if self._fd < 0:
            raise OSError("the journal file is closed")
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            if written <= 0:
                raise OSError(f"wrote nothing of {len(view)} bytes")
            view = view[written:]
            self.size += written

    def append_from(self, sink: _core.JournalSink) -> int:
        """Write a journal sink's records straight from the data plane's buffer (no copy in
        Python); the bytes written."""
        if self._fd < 0:
            raise OSError("the journal file is closed")
        written = sink.write_to(self._fd)
        self.size += written
        return written

    def sync(self) -> None:
        """fsync (from any thread; a file closed meanwhile is left alone)."""
        with self._lock:
            if self._fd >= 0:
                os.fsync(self._fd)

    def finish(self) -> None:
        """fsync and close: the journal is complete on disk."""
        with self._lock:
            if self._fd >= 0:
                fd, self._fd = self._fd, -1
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                fd, self._fd = self._fd, -1
                os.close(fd)
