"""When each frame happened: RTP timestamps mapped to the server's clock.

The first pass over a journal (:func:`scan_timing`) collects its sender reports and the
smallest difference between arrival time and RTP time. Then :class:`StreamClock` maps an
extended RTP timestamp to server time in seconds:

* with sender reports: ``ntp(ts) = ntp_sr + (ts - ts_sr) / clock_rate`` using the latest SR at
  or before `ts` (the first SR for frames before it), which is the publisher's wallclock; plus
  the publisher's clock offset to the server, ``min(arrival - ntp)`` over all sender reports of
  that publisher. All streams of one publisher share that offset, so audio and video of one
  peer are aligned exactly as the publisher's sender reports say (lip sync); different
  publishers, whose clocks may differ, are aligned by when their reports reached the server.
* without sender reports: ``ts / clock_rate + min(arrival - ts / clock_rate)`` over all packets
  of the stream, the arrival time of the least delayed packet (a warning says so).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from mediasrv.recording.journal import JournalReader
from mediasrv.recording.rtp_stream import RtpPacket, SenderReport, StreamStats, read_stream

FRAMES_FOR_INTERVAL = 64


@dataclass(slots=True)
class StreamTiming:
    """What the first pass learnt about one journal."""

    path: Path
    metadata: dict[str, Any]
    size: int
    reports: list[SenderReport] = field(default_factory=list)
    arrival_offset: float = math.inf
    """min(arrival - ts / clock rate) over the packets, seconds (inf without packets)."""
    packets: int = 0
    first_arrival_us: int | None = None
    last_arrival_us: int | None = None
    damage: str | None = None
    frame_interval: float | None = None
    """The typical time between frames at the start, seconds (median of the first ones)."""

    @property
    def clock_rate(self) -> int:
        return int(self.metadata["clockRate"])


def scan_timing(path: Path, progress: Callable[[int], None] | None = None) -> StreamTiming:
    """The first pass over a journal (JournalError/OSError when its header is unreadable)."""
    with JournalReader(path) as reader:
        timing = StreamTiming(path, reader.metadata, reader.size)
        rate = timing.clock_rate
        offset = math.inf
        first = last = None
        count = 0
        done = 0
        stamps: set[int] = set()
        for item in read_stream(reader, StreamStats()):
            if type(item) is RtpPacket:
                if len(stamps) < FRAMES_FOR_INTERVAL:
                    stamps.add(item.ts)
                arrival = item.arrival_us
                candidate = arrival / 1e6 - item.ts / rate
                if candidate < offset:
                    offset = candidate
                if first is None:
                    first = arrival
                last = arrival
                count += 1
                if progress is not None and count & 0x3FF == 0:
                    progress(reader.position - done)
                    done = reader.position
            elif type(item) is SenderReport:
                timing.reports.append(item)
        if progress is not None:
            progress(reader.size - done)
        timing.arrival_offset = offset
        timing.packets = count
        timing.first_arrival_us = first
        timing.last_arrival_us = last
        timing.damage = reader.damage
        timing.frame_interval = _median_interval(sorted(stamps), rate)
        return timing


def _median_interval(stamps: list[int], rate: int) -> float | None:
    gaps = sorted(b - a for a, b in pairwise(stamps))
    return gaps[len(gaps) // 2] / rate if gaps else None


def publisher_offset(timings: Sequence[StreamTiming]) -> float | None:
    """Server time minus the publisher's NTP time, seconds: the smallest ``arrival - ntp`` over
    the sender reports of all the publisher's streams (None when none has any)."""
    offsets = [r.arrival_us / 1e6 - r.ntp for t in timings for r in t.reports]
    return min(offsets) if offsets else None


class StreamClock:
    """Extended RTP timestamp of one stream → server time in seconds."""

    def __init__(self, timing: StreamTiming, publisher: float | None) -> None:
        self.rate = timing.clock_rate
        reports = sorted(timing.reports, key=lambda r: r.ts)
        self.uses_reports = bool(reports) and publisher is not None
        self._sr_ts = [r.ts for r in reports]
        self._sr_ntp = [r.ntp for r in reports]
        self._publisher = publisher if publisher is not None else 0.0
        self._arrival_offset = (
            timing.arrival_offset if math.isfinite(timing.arrival_offset) else 0.0
        )

    def time(self, ts: int) -> float:
        if self.uses_reports:
            i = bisect.bisect_right(self._sr_ts, ts) - 1
            if i < 0:
                i = 0
            return self._sr_ntp[i] + (ts - self._sr_ts[i]) / self.rate + self._publisher
        return ts / self.rate + self._arrival_offset
