"""Frames from ordered RTP packets: the codec-independent part of depacketization.

A video frame is the run of packets with one timestamp. It is complete when its first packet
is a frame start (by the codec's payload format), no sequence number inside it is missing, and
it ends with the marker bit (or the next packet follows it without a gap). Incomplete frames
are dropped; after any loss, frames are dropped until the next keyframe, since the frames after
a loss may refer to what was lost. The first frame put out is a keyframe.

Audio (Opus): every packet is one frame; a loss is a gap in time, nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from mediasrv.recording.rtp_stream import RtpPacket


class MalformedPayload(ValueError):
    """A payload that does not parse as the codec's RTP payload format."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One encoded frame: extended RTP timestamp, bitstream, keyframe flag, arrival time of the
    first packet."""

    ts: int
    data: bytes
    keyframe: bool
    arrival_us: int


@dataclass(frozen=True, slots=True)
class PayloadInfo:
    """A parsed packet payload: does it start a frame, is that frame a keyframe (as far as
    this packet tells), the bitstream bytes it carries, and whether it starts a new layer
    frame inside the frame (VP9 spatial layers)."""

    start: bool
    keyframe: bool
    data: bytes
    layer_start: bool = False


class Depayloader(Protocol):
    """The codec-specific part: parse one payload, join one frame's parts."""

    def parse(self, payload: bytes) -> PayloadInfo:
        """Parse a non-empty payload; MalformedPayload when it is not the codec's format."""
        ...

    def assemble(self, parts: list[PayloadInfo], keyframe: bool) -> bytes:
        """The bitstream of a complete frame made of `parts`."""
        ...


@dataclass(slots=True)
class FrameStats:
    """Counts of what frame assembly put out and dropped."""

    frames: int = 0
    keyframes: int = 0
    incomplete: int = 0
    """Frames with a missing packet (start, middle or end)."""
    before_first_keyframe: int = 0
    """Complete frames dropped because no keyframe had come yet (the output starts on one)."""
    skipped_until_keyframe: int = 0
    """Complete frames dropped because an earlier loss left no keyframe to decode them from."""
    malformed: int = 0
    """Packets whose payload did not parse."""
    losses: int = 0
    """Gaps in the sequence numbers."""

    def warnings(self, kind: str) -> list[str]:
        out = []
        if self.losses:
            out.append(f"{self.losses} gap(s) in the {kind} packet sequence (packet loss)")
        if self.malformed:
            out.append(f"skipped {self.malformed} {kind} packet(s) whose payload did not parse")
        if self.incomplete:
            out.append(f"dropped {self.incomplete} incomplete {kind} frame(s)")
        if self.before_first_keyframe:
            out.append(
                f"dropped {self.before_first_keyframe} {kind} frame(s) before the first keyframe"
            )
        if self.skipped_until_keyframe:
            out.append(
                f"dropped {self.skipped_until_keyframe} {kind} frame(s) that followed a loss, "
                "until the next keyframe"
            )
        return out


@dataclass(slots=True)
class _Pending:
    ts: int
    arrival_us: int
    parts: list[PayloadInfo] = field(default_factory=list)
    broken: bool = False


class VideoFrameAssembler:
    """Packets in sequence order in, complete decodable frames out (see the module doc)."""

    def __init__(self, depayloader: Depayloader) -> None:
        self._depayloader = depayloader
        self._pending: _Pending | None = None
        self._last_seq: int | None = None
        self._need_keyframe = True
        self._keyframe_seen = False
        self.stats = FrameStats()

    def push(self, packet: RtpPacket) -> list[Frame]:
        """Take the next packet (sequence order, gaps allowed); return the frames completed."""
        out: list[Frame] = []
        gap = self._last_seq is not None and packet.seq != self._last_seq + 1
        self._last_seq = packet.seq
        if gap:
            self.stats.losses += 1
            # whole frames may have been lost: what follows may refer to them
            self._need_keyframe = True
        pending = self._pending
        if pending is not None and packet.ts != pending.ts:
            # the previous frame ended without a marker: complete only if nothing is missing
            self._finish(pending, complete=not gap, out=out)
            pending = self._pending = None
        elif pending is not None and gap:
            pending.broken = True
        if not packet.payload:  # padding only: takes a sequence number, carries nothing
            return out
        try:
            info = self._depayloader.parse(packet.payload)
        except MalformedPayload:
            self.stats.malformed += 1
            self._need_keyframe = True
            if pending is not None:
                pending.broken = True
            return out
        if pending is None:
            pending = self._pending = _Pending(packet.ts, packet.arrival_us)
            if not info.start:
                pending.broken = True  # its beginning is missing
        pending.parts.append(info)
        if packet.marker:
            self._finish(pending, complete=True, out=out)
            self._pending = None
        return out

    def flush(self) -> list[Frame]:
        """The last frame, if it is complete (at the end of the journal)."""
        out: list[Frame] = []
        if self._pending is not None:
            self._finish(self._pending, complete=False, out=out)
            self._pending = None
        return out

    def _finish(self, pending: _Pending, *, complete: bool, out: list[Frame]) -> None:
        if not complete or pending.broken or not pending.parts:
            self.stats.incomplete += 1
            self._need_keyframe = True
            return
        keyframe = any(part.keyframe for part in pending.parts)
        if self._need_keyframe and not keyframe:
            if self._keyframe_seen:
                self.stats.skipped_until_keyframe += 1
            else:
                self.stats.before_first_keyframe += 1
            return
        self._need_keyframe = False
        self._keyframe_seen = True
        data = self._depayloader.assemble(pending.parts, keyframe)
        self.stats.frames += 1
        self.stats.keyframes += keyframe
        out.append(Frame(pending.ts, data, keyframe, pending.arrival_us))


class AudioFrameAssembler:
    """Audio: one packet is one frame; padding-only packets carry none."""

    def __init__(self) -> None:
        self._last_seq: int | None = None
        self.stats = FrameStats()

    def push(self, packet: RtpPacket) -> list[Frame]:
        if self._last_seq is not None and packet.seq != self._last_seq + 1:
            self.stats.losses += 1
        self._last_seq = packet.seq
        if not packet.payload:
            return []
        self.stats.frames += 1
        return [Frame(packet.ts, packet.payload, True, packet.arrival_us)]

    def flush(self) -> list[Frame]:
        return []
