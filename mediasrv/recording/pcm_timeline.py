"""Decoded audio placed on a sample timeline, read back in contiguous blocks.

Decoded chunks are put at the sample position their timestamp maps to. A chunk that lands
within `tolerance` samples of the end of the previous one is joined to it seamlessly (the
mapping of timestamps to time jitters by a few samples; audio must not click for that); a
larger jump forward is a gap of silence, a larger jump back overlaps and the overlapping samples
are dropped. Reads are zero-filled where nothing was put and must move forward.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import numpy.typing as npt

Samples = npt.NDArray[np.float32]
"""Audio samples, shape (count, channels), float32 in [-1, 1]."""


class PcmTimeline:
    def __init__(self, channels: int, tolerance: int = 960) -> None:
        self.channels = channels
        self.tolerance = tolerance
        self._chunks: deque[tuple[int, Samples]] = deque()
        self.end: int | None = None
        """The sample position after the last sample put (None before the first put)."""
        self._read = 0

    def put(self, position: int, samples: Samples) -> None:
        """Put `samples` (shape (n, channels)) at sample `position`."""
        if self.end is not None:
            if abs(position - self.end) <= self.tolerance:
                position = self.end
            elif position < self.end:
                samples = samples[self.end - position :]
                position = self.end
        if position < self._read:  # before what was read already: drop that part
            samples = samples[self._read - position :]
            position = self._read
        if len(samples) == 0:
            return
        self._chunks.append((position, samples))
        self.end = position + len(samples)

    def read(self, start: int, count: int) -> Samples:
        """Samples [start, start + count), zero where none were put; consumes them."""
        out = np.zeros((count, self.channels), dtype=np.float32)
        stop = start + count
        chunks = self._chunks
        while chunks:
            position, samples = chunks[0]
            if position >= stop:
                break
            end = position + len(samples)
            lo = max(position, start)
            hi = min(end, stop)
            if hi > lo:
                out[lo - start : hi - start] = samples[lo - position : hi - position]
            if end <= stop:
                chunks.popleft()
            else:
                break
        self._read = max(self._read, stop)
        return out
