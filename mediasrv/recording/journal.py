"""The recording journal, format version 1 (docs/recording.md): writer, reader, record types.

:class:`JournalWriter` is the reference implementation: the data plane's C writer must produce
the same bytes for the same calls. :class:`JournalReader` streams records; it never misreads a
torn or corrupted tail: it stops at the first bad record and describes it in ``damage``.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Final, Self

from mediasrv._core import crc32c

MAGIC: Final = b"MSREC\r\n\x1a"
VERSION: Final = 1
FORMAT: Final = "mediasrv-journal"

RTP: Final = 1
SR: Final = 2
EVENT: Final = 3
RECORD_TYPES: Final = {RTP: "RTP", SR: "SR", EVENT: "EVENT"}

MIN_RECORD: Final = 12
"""The smallest ``len`` of a record: type, flags, reserved and time, no payload."""
MAX_RECORD: Final = 1 << 20
"""The largest ``len`` of a record (1 MiB)."""
MAX_METADATA: Final = 1 << 20
"""The largest metadata a reader accepts (a sanity bound against reading garbage)."""

NTP_UNIX_OFFSET: Final = 2_208_988_800
"""Seconds from 1900-01-01 (NTP era 0) to 1970-01-01 (the Unix epoch)."""

REQUIRED_METADATA: Final = (
    ("format", str),
    ("recording", str),
    ("room", str),
    ("producer", str),
    ("peer", (str, type(None))),
    ("displayName", str),
    ("kind", str),
    ("mimeType", str),
    ("clockRate", int),
    ("channels", int),
    ("payloadType", int),
    ("fmtp", str),
    ("started", (int, float)),
)
"""Every metadata key of version 1 and the JSON types it may have."""

_HEADER_FIXED = struct.Struct("!8sHI")  # magic, version, metadata length
_RECORD_HEAD = struct.Struct("!IBBHQ")  # len, type, flags, reserved, time
_CRC = struct.Struct("!I")
_SR_PAYLOAD = struct.Struct("!QI")  # NTP timestamp, RTP timestamp


class JournalError(ValueError):
    """A file that is not a readable version-1 journal (its header is bad); the message says why."""


# --- encoding ----------------------------------------------------------------------------------


def journal_metadata(
    *,
    recording: str,
    room: str,
    producer: str,
    peer: str | None,
    display_name: str,
    kind: str,
    mime_type: str,
    clock_rate: int,
    channels: int,
    payload_type: int,
    fmtp: str = "",
    started: float,
) -> dict[str, Any]:
    """The metadata of a journal, with every key of version 1 in the documented order."""
    return {
        "format": FORMAT,
        "recording": recording,
        "room": room,
        "producer": producer,
        "peer": peer,
        "displayName": display_name,
        "kind": kind,
        "mimeType": mime_type,
        "clockRate": clock_rate,
        "channels": channels,
        "payloadType": payload_type,
        "fmtp": fmtp,
        "started": started,
    }


def encode_json(obj: Mapping[str, Any]) -> bytes:
    """The canonical JSON encoding of metadata and events: compact separators (no spaces),
    keys in the mapping's order, non-ASCII characters as UTF-8 (not ``\\u`` escapes)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def encode_header(metadata: Mapping[str, Any]) -> bytes:
    """The file header: magic, version, metadata length, metadata JSON, CRC-32C."""
    meta = encode_json(metadata)
    if len(meta) > MAX_METADATA:
        raise ValueError(f"metadata is {len(meta)} bytes, at most {MAX_METADATA} are allowed")
    fixed = _HEADER_FIXED.pack(MAGIC, VERSION, len(meta))
    crc = crc32c(meta, crc32c(fixed[len(MAGIC) :]))
    return fixed + meta + _CRC.pack(crc)


def encode_record(record_type: int, time_us: int, payload: bytes | bytearray | memoryview) -> bytes:
    """One record: ``len``, type, flags 0, reserved 0, time, payload, CRC-32C."""
    if not 0 <= record_type <= 0xFF:
        raise ValueError(f"record type {record_type} is not a byte")
    if not 0 <= time_us < 1 << 64:
        raise ValueError(f"record time {time_us} µs is not an unsigned 64-bit integer")
    length = MIN_RECORD + len(payload)
    if length > MAX_RECORD:
        raise ValueError(
            f"record payload of {len(payload)} bytes is too large "
            f"(at most {MAX_RECORD - MIN_RECORD} bytes)"
        )
    head = _RECORD_HEAD.pack(length, record_type, 0, 0, time_us)
    crc = crc32c(payload, crc32c(head[4:]))
    return b"".join((head, payload, _CRC.pack(crc)))


def encode_sr(ntp: int, rtp_ts: int) -> bytes:
    """The payload of an SR record: 64-bit NTP timestamp, 32-bit RTP timestamp."""
    if not 0 <= ntp < 1 << 64:
        raise ValueError(f"NTP timestamp {ntp} is not an unsigned 64-bit integer")
    if not 0 <= rtp_ts < 1 << 32:
        raise ValueError(f"RTP timestamp {rtp_ts} is not an unsigned 32-bit integer")
    return _SR_PAYLOAD.pack(ntp, rtp_ts)


def decode_sr(payload: bytes) -> tuple[int, int]:
    """``(ntp, rtp_ts)`` of an SR record's payload; ValueError unless it is 12 bytes."""
    if len(payload) != _SR_PAYLOAD.size:
        raise ValueError(f"SR record payload is {len(payload)} bytes, not {_SR_PAYLOAD.size}")
    ntp, rtp_ts = _SR_PAYLOAD.unpack(payload)
    return int(ntp), int(rtp_ts)


def ntp_to_unix(ntp: int) -> float:
    """A 64-bit NTP timestamp as Unix time in seconds."""
    return (ntp >> 32) - NTP_UNIX_OFFSET + (ntp & 0xFFFFFFFF) / 4294967296.0


def unix_to_ntp(seconds: float) -> int:
    """Unix time in seconds as a 64-bit NTP timestamp."""
    whole = int(seconds // 1)
    fraction = round((seconds - whole) * 4294967296.0)
    if fraction >= 1 << 32:
        whole, fraction = whole + 1, 0
    return ((whole + NTP_UNIX_OFFSET) << 32) | fraction


# --- writer ------------------------------------------------------------------------------------


class JournalWriter:
    """Appends records to a journal; ``JournalWriter.open(path, metadata)`` creates the file.

    Writes go through the file object's buffer; :meth:`flush` hands them to the operating
    system (the data plane flushes once a second), :meth:`close` flushes and closes.
    """

    def __init__(self, file: BinaryIO, metadata: Mapping[str, Any]) -> None:
        """Write the header of a journal with `metadata` to `file` (at its current position)."""
        missing = [key for key, _ in REQUIRED_METADATA if key not in metadata]
        if missing:
            raise ValueError(f"metadata misses key(s) {', '.join(map(repr, missing))}")
        self._file = file
        self._file.write(encode_header(metadata))
        self.records = 0

    @classmethod
    def open(cls, path: str | os.PathLike[str], metadata: Mapping[str, Any]) -> Self:
        """Create (or truncate) the journal at `path` and write its header."""
        file = open(path, "wb")  # noqa: SIM115 - owned by the writer, closed by close()
        try:
            return cls(file, metadata)
        except BaseException:
            file.close()
            raise

    def rtp(self, packet: bytes | bytearray | memoryview, time_us: int) -> None:
        """An RTP record: one RTP packet (header and payload) that arrived at `time_us`."""
        if len(packet) < 12:
            raise ValueError(f"an RTP packet has at least 12 bytes, got {len(packet)}")
        self._write(RTP, time_us, packet)

    def sr(self, ntp: int, rtp_ts: int, time_us: int) -> None:
        """An SR record: the 64-bit NTP timestamp `ntp` corresponds to RTP timestamp `rtp_ts`."""
        self._write(SR, time_us, encode_sr(ntp, rtp_ts))

    def event(self, obj: Mapping[str, Any], time_us: int) -> None:
        """An EVENT record: a JSON object with an ``"event"`` key."""
        if not isinstance(obj.get("event"), str):
            raise ValueError(f"an event is a JSON object with a string 'event', got {obj!r}")
        self._write(EVENT, time_us, encode_json(obj))

    def write_record(
        self, record_type: int, time_us: int, payload: bytes | bytearray | memoryview
    ) -> None:
        """A record of any type (for tools and tests; prefer the typed methods)."""
        self._write(record_type, time_us, payload)

    def _write(
        self, record_type: int, time_us: int, payload: bytes | bytearray | memoryview
    ) -> None:
        self._file.write(encode_record(record_type, time_us, payload))
        self.records += 1

    def flush(self) -> None:
        """Hand buffered records to the operating system (they survive a killed process)."""
        self._file.flush()

    def close(self) -> None:
        """Flush and close the file."""
        if not self._file.closed:
            self._file.flush()
            self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# --- reader ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    """One intact record: its 1-based number, byte offset in the file, type, time, payload."""

    index: int
    offset: int
    type: int
    time_us: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Journal:
    """A whole journal read into memory (see :func:`read_journal`)."""

    metadata: dict[str, Any]
    records: list[Record]
    damage: str | None
    size: int


def _parse_metadata(raw: bytes) -> dict[str, Any]:
    try:
        metadata = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise JournalError(f"metadata is not UTF-8: {exc}") from None
    except json.JSONDecodeError as exc:
        raise JournalError(f"metadata is not JSON: {exc}") from None
    if not isinstance(metadata, dict):
        raise JournalError(f"metadata is not a JSON object but a {type(metadata).__name__}")
    for key, types in REQUIRED_METADATA:
        if key not in metadata:
            raise JournalError(f"metadata misses key {key!r}")
        value = metadata[key]
        if not isinstance(value, types) or isinstance(value, bool):
            raise JournalError(f"metadata key {key!r} has the wrong type: {value!r}")
    if metadata["format"] != FORMAT:
        raise JournalError(f"metadata 'format' is {metadata['format']!r}, not {FORMAT!r}")
    if metadata["kind"] not in ("audio", "video"):
        raise JournalError(f"metadata 'kind' is {metadata['kind']!r}, not 'audio' or 'video'")
    if metadata["clockRate"] <= 0:
        raise JournalError(f"metadata 'clockRate' is {metadata['clockRate']}, not positive")
    return metadata


class JournalReader:
    """Reads a journal: the header at construction, then records as a stream.

    ``JournalReader(path)`` raises :class:`JournalError` for a bad header (and OSError when the
    file cannot be read). Iterating yields the intact records in file order; when iteration
    ends early because of a bad record, :attr:`damage` says which record, where and why.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file: BinaryIO = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        try:
            self.size = os.fstat(self._file.fileno()).st_size
            self.metadata = self._read_header()
        except BaseException:
            self._file.close()
            raise
        self.header_size = self._file.tell()
        self.position = self.header_size
        """The byte offset of the next record (where reading stopped, after a damage)."""
        self.records = 0
        """The number of intact records read so far."""
        self.damage: str | None = None
        self._iterated = False

    def _read_header(self) -> dict[str, Any]:
        fixed = self._file.read(_HEADER_FIXED.size)
        if len(fixed) < len(MAGIC) or not fixed.startswith(MAGIC):
            raise JournalError(
                f"not a mediasrv journal: bad magic {fixed[: len(MAGIC)].hex(' ') or '(empty)'} "
                f"(expected {MAGIC.hex(' ')})"
            )
        if len(fixed) < _HEADER_FIXED.size:
            raise JournalError(
                f"truncated header: the file has {self.size} bytes, "
                f"the fixed header alone needs {_HEADER_FIXED.size}"
            )
        _, version, length = _HEADER_FIXED.unpack(fixed)
        if version != VERSION:
            raise JournalError(
                f"unsupported journal version {version} (this reader reads {VERSION})"
            )
        if length > MAX_METADATA:
            raise JournalError(f"metadata length {length} is too large (at most {MAX_METADATA})")
        rest = self._file.read(length + _CRC.size)
        if len(rest) < length + _CRC.size:
            raise JournalError(
                f"truncated header: metadata of {length} bytes and its CRC need "
                f"{_HEADER_FIXED.size + length + _CRC.size} bytes, the file has {self.size}"
            )
        raw = rest[:length]
        (stored,) = _CRC.unpack(rest[length:])
        computed = crc32c(raw, crc32c(fixed[len(MAGIC) :]))
        if stored != computed:
            raise JournalError(
                f"metadata CRC mismatch: stored {stored:08x}, computed {computed:08x}"
            )
        return _parse_metadata(raw)

    def __iter__(self) -> Iterator[Record]:
        if self._iterated:
            raise RuntimeError("a JournalReader's records can be iterated once")
        self._iterated = True
        return self._records()

    def _stop(self, index: int, offset: int, what: str) -> None:
        intact = index - 1
        self.damage = (
            f"record {index} at byte {offset}: {what} (stopped there; "
            f"{intact} record{'' if intact == 1 else 's'} before it "
            f"{'is' if intact == 1 else 'are'} intact)"
        )

    def _records(self) -> Iterator[Record]:
        read = self._file.read
        head_size = _RECORD_HEAD.size
        unpack_head = _RECORD_HEAD.unpack_from
        crc32 = crc32c
        offset = self.header_size
        index = 0
        while True:
            head = read(head_size)
            if not head:
                return
            index += 1
            if len(head) < 4:
                self._stop(index, offset, f"truncated length field: {len(head)} of 4 bytes")
                return
            length = int.from_bytes(head[:4], "big")
            if not MIN_RECORD <= length <= MAX_RECORD:
                self._stop(
                    index, offset, f"length {length} out of range {MIN_RECORD}..{MAX_RECORD}"
                )
                return
            body = head[4:] + read(length + _CRC.size - (len(head) - 4))
            if len(body) < length + _CRC.size:
                self._stop(
                    index,
                    offset,
                    f"truncated: its length field says {length} bytes plus 4 for the CRC, "
                    f"{len(body)} remain",
                )
                return
            (stored,) = _CRC.unpack_from(body, length)
            computed = crc32(memoryview(body)[:length])
            if stored != computed:
                self._stop(
                    index, offset, f"CRC mismatch (stored {stored:08x}, computed {computed:08x})"
                )
                return
            _, record_type, _flags, _reserved, time_us = unpack_head(head)
            yield Record(index, offset, record_type, time_us, body[12:length])
            offset += 4 + length + _CRC.size
            self.position = offset
            self.records = index

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def read_journal(path: str | os.PathLike[str]) -> Journal:
    """Read a whole journal into memory: metadata, intact records and the damage, if any."""
    with JournalReader(path) as reader:
        records = list(reader)
        return Journal(reader.metadata, records, reader.damage, reader.size)


__all__ = [
    "EVENT",
    "MAGIC",
    "MAX_RECORD",
    "MIN_RECORD",
    "RTP",
    "SR",
    "VERSION",
    "Journal",
    "JournalError",
    "JournalReader",
    "JournalWriter",
    "Record",
    "decode_sr",
    "encode_header",
    "encode_record",
    "encode_sr",
    "journal_metadata",
    "ntp_to_unix",
    "read_journal",
    "unix_to_ntp",
]
