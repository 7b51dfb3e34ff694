"""A small progress bar on stderr (no dependency): bytes of journal read out of the total."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``advance(n)`` as work is done; redraws at most ten times a second; ``close()`` ends the
    line. A disabled bar does nothing."""

    def __init__(
        self, total: int, label: str, *, enabled: bool, stream: TextIO | None = None
    ) -> None:
        self.total = max(total, 1)
        self.label = label
        self.enabled = enabled
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._started = time.monotonic()
        self._drawn = 0.0
        self._visible = False

    def set_label(self, label: str) -> None:
        self.label = label
        self._draw(force=True)

    def advance(self, amount: int) -> None:
        self.done = min(self.total, self.done + amount)
        self._draw(force=False)

    def _draw(self, *, force: bool) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._drawn < 0.1:
            return
        self._drawn = now
        fraction = self.done / self.total
        width = 30
        filled = int(fraction * width)
        elapsed = now - self._started
        eta = f" {elapsed / fraction - elapsed:4.0f}s left" if 0.02 < fraction < 1 else ""
        bar = "#" * filled + "-" * (width - filled)
        self._stream.write(f"\r{self.label:<12.12} [{bar}] {fraction:4.0%}{eta}  ")
        self._stream.flush()
        self._visible = True

    def close(self) -> None:
        if self.enabled and self._visible:
            self.done = self.total
            self._draw(force=True)
            self._stream.write("\n")
            self._stream.flush()
            self._visible = False
