"""A journal's records as RTP packets and sender reports with extended numbers.

Sequence numbers (16 bits) and timestamps (32 bits) are unwrapped in journal order against the
highest value seen so far, so that a packet's place in the stream is a plain integer that keeps
growing across wraps. Sender reports share the timestamp unwrapper of the packets around them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mediasrv.recording.journal import EVENT, RTP, SR, JournalReader, decode_sr, ntp_to_unix


@dataclass(slots=True)
class RtpPacket:
    """An RTP packet of a journal: extended sequence number and timestamp, marker, payload."""

    seq: int
    ts: int
    marker: bool
    payload: bytes
    arrival_us: int


@dataclass(frozen=True, slots=True)
class SenderReport:
    """An SR record: RTP timestamp `ts` (extended) was NTP time `ntp` (Unix seconds)."""

    ts: int
    ntp: float
    arrival_us: int


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """An EVENT record's JSON object."""

    event: dict[str, Any]
    arrival_us: int


@dataclass(slots=True)
class StreamStats:
    """What reading a journal's records skipped, counted (never logged per packet)."""

    rtp: int = 0
    sender_reports: int = 0
    events: int = 0
    malformed_rtp: int = 0
    other_payload_type: int = 0
    malformed_sr: int = 0
    malformed_events: int = 0
    unknown_records: int = 0
    other_payload_types: set[int] = field(default_factory=set)

    def warnings(self) -> list[str]:
        """Human-readable sentences about what was skipped (empty when nothing was)."""
        out = []
        if self.malformed_rtp:
            out.append(f"skipped {self.malformed_rtp} malformed RTP record(s)")
        if self.other_payload_type:
            types = ", ".join(map(str, sorted(self.other_payload_types)))
            out.append(
                f"skipped {self.other_payload_type} RTP packet(s) of another payload type ({types})"
            )
        if self.malformed_sr:
            out.append(f"skipped {self.malformed_sr} malformed SR record(s)")
        if self.malformed_events:
            out.append(f"skipped {self.malformed_events} malformed EVENT record(s)")
        if self.unknown_records:
            out.append(f"skipped {self.unknown_records} record(s) of unknown type")
        return out


class Unwrapper:
    """Extends a wrapping counter of `bits` bits against the highest extended value so far."""

    __slots__ = ("_half", "_highest", "_modulus")

    def __init__(self, bits: int) -> None:
        self._modulus = 1 << bits
        self._half = 1 << (bits - 1)
        self._highest: int | None = None

    def unwrap(self, value: int) -> int:
        highest = self._highest
        if highest is None:
            self._highest = value
            return value
        delta = (value - highest) & (self._modulus - 1)
        if delta >= self._half:
            delta -= self._modulus
        extended = highest + delta
        if extended > highest:
            self._highest = extended
        return extended


def parse_rtp(data: bytes) -> tuple[int, int, bool, int, bytes] | None:
    """``(seq, ts, marker, payload type, payload)`` of an RTP packet (padding removed), or None
    when it is not a well-formed RTP version 2 packet."""
    size = len(data)
    if size < 12:
        return None
    b0 = data[0]
    if b0 >> 6 != 2:
        return None
    offset = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:
        if size < offset + 4:
            return None
        offset += 4 + 4 * int.from_bytes(data[offset + 2 : offset + 4], "big")
    end = size
    if b0 & 0x20:
        pad = data[-1]
        if pad == 0 or offset + pad > size:
            return None
        end -= pad
    if offset > end:
        return None
    b1 = data[1]
    seq = (data[2] << 8) | data[3]
    ts = int.from_bytes(data[4:8], "big")
    return seq, ts, bool(b1 & 0x80), b1 & 0x7F, data[offset:end]


def read_stream(
    reader: JournalReader, stats: StreamStats
) -> Iterator[RtpPacket | SenderReport | StreamEvent]:
    """The packets, sender reports and events of a journal in file order, extended."""
    payload_type = reader.metadata["payloadType"]
    seqs = Unwrapper(16)
    stamps = Unwrapper(32)
    for record in reader:
        if record.type == RTP:
            parsed = parse_rtp(record.payload)
            if parsed is None:
                stats.malformed_rtp += 1
                continue
            seq, ts, marker, pt, payload = parsed
            if pt != payload_type:
                stats.other_payload_type += 1
                stats.other_payload_types.add(pt)
                continue
            stats.rtp += 1
            yield RtpPacket(seqs.unwrap(seq), stamps.unwrap(ts), marker, payload, record.time_us)
        elif record.type == SR:
            try:
                ntp, rtp_ts = decode_sr(record.payload)
            except ValueError:
                stats.malformed_sr += 1
                continue
            stats.sender_reports += 1
            yield SenderReport(stamps.unwrap(rtp_ts), ntp_to_unix(ntp), record.time_us)
        elif record.type == EVENT:
            try:
                event = json.loads(record.payload)
            except (UnicodeDecodeError, json.JSONDecodeError):
                event = None
            if not isinstance(event, dict):
                stats.malformed_events += 1
                continue
            stats.events += 1
            yield StreamEvent(event, record.time_us)
        else:
            stats.unknown_records += 1
