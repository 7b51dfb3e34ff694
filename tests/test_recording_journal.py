"""The recording journal, version 1 (docs/recording.md): the reference writer's exact bytes,
reading back, and precise messages for bad headers and damaged records."""

from __future__ import annotations

import json
import random
import re
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mediasrv._core import crc32c
from mediasrv.recording.journal import (
    EVENT,
    MAGIC,
    MAX_RECORD,
    RTP,
    SR,
    VERSION,
    JournalError,
    JournalReader,
    JournalWriter,
    Record,
    decode_sr,
    encode_header,
    encode_json,
    encode_record,
    encode_sr,
    journal_metadata,
    ntp_to_unix,
    read_journal,
    unix_to_ntp,
)

RTP_PACKET = bytes.fromhex("80e0000100000bb812345678abcd")
T0 = 1_700_000_000_123_456


def exact(message: str) -> str:
    return f"^{re.escape(message)}$"


def meta(**changes: Any) -> dict[str, Any]:
    base = journal_metadata(
        recording="rec-1",
        room="room-1",
        producer="prod-1",
        peer="peer-1",
        display_name="Zoë",
        kind="video",
        mime_type="video/VP8",
        clock_rate=90000,
        channels=1,
        payload_type=96,
        fmtp="",
        started=1700000000.25,
    )
    base.update(changes)
    return base


def write(path: Path, metadata: dict[str, Any] | None = None, count: int = 5) -> Path:
    with JournalWriter.open(path, metadata or meta()) as writer:
        writer.event({"event": "start"}, T0)
        for i in range(count):
            packet = RTP_PACKET[:2] + struct.pack("!H", i) + RTP_PACKET[4:] + bytes([i]) * i
            writer.rtp(packet, T0 + 1000 * i)
        writer.sr(0xE7C1234580000000, 48000, T0 + 5000)
    return path


def raw_header(version: int, metadata: bytes, crc: int | None = None) -> bytes:
    fixed = struct.pack("!HI", version, len(metadata))
    if crc is None:
        crc = crc32c(fixed + metadata)
    return MAGIC + fixed + metadata + struct.pack("!I", crc)


# --- the exact bytes ---------------------------------------------------------------------------


def crc32c_by_table(data: bytes) -> int:
    """CRC-32C bit by bit from its definition (reflected polynomial 0x82F63B78)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def test_the_checksum_is_crc32c() -> None:
    assert crc32c(b"123456789") == 0xE3069283 == crc32c_by_table(b"123456789")  # the check value
    assert crc32c(b"") == 0
    rng = random.Random(5)
    for size in (1, 7, 8, 9, 63, 1100, 4097):
        data = rng.randbytes(size)
        assert crc32c(data) == crc32c_by_table(data)
        cut = size // 3
        assert crc32c(data[cut:], crc32c(data[:cut])) == crc32c(data)  # continues like zlib
        assert crc32c(memoryview(b"x" + data)[1:]) == crc32c(bytearray(data))


def test_header_bytes() -> None:
    header = encode_header({"format": "mediasrv-journal", "kind": "audio"})
    assert header.hex() == (
        "4d535245430d0a1a" "0001" "0000002c"
        "7b22666f726d6174223a226d656469617372762d6a6f75726e616c222c226b696e64223a22617564696f227d"
        "5a44c9d0"
    )  # fmt: skip


def test_header_layout_by_hand() -> None:
    metadata = meta()
    raw = json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode()
    assert "Zoë".encode() in raw  # UTF-8, not \u escapes
    assert encode_header(metadata) == raw_header(VERSION, raw)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (
            encode_record(RTP, T0, RTP_PACKET),
            "0000001a" "01" "00" "0000" "00060a2418202240" "80e0000100000bb812345678abcd"
            "cd28043c",
        ),
        (
            encode_record(SR, T0, encode_sr(0xE7C1234580000000, 48000)),
            "00000018" "02" "00" "0000" "00060a2418202240" "e7c1234580000000" "0000bb80" "ea85105e",
        ),
        (
            encode_record(EVENT, 1, b'{"event":"start"}'),
            "0000001d" "03" "00" "0000" "0000000000000001" "7b226576656e74223a227374617274227d"
            "8c541134",
        ),
    ],
)  # fmt: skip
def test_record_bytes(record: bytes, expected: str) -> None:
    assert record.hex() == expected


def test_record_layout_by_hand() -> None:
    payload = b"\x80" + bytes(range(40))
    body = struct.pack("!BBHQ", RTP, 0, 0, T0) + payload
    expected = struct.pack("!I", len(body)) + body + struct.pack("!I", crc32c(body))
    assert encode_record(RTP, T0, payload) == expected


def test_writer_writes_header_then_records(tmp_path: Path) -> None:
    path = tmp_path / "j.msrec"
    with JournalWriter.open(path, meta()) as writer:
        writer.rtp(RTP_PACKET, T0)
        writer.sr(0xE7C1234580000000, 48000, T0 + 1)
        writer.event({"event": "layer", "spatial": 2}, T0 + 2)
        assert writer.records == 3
    assert path.read_bytes() == b"".join(
        (
            encode_header(meta()),
            encode_record(RTP, T0, RTP_PACKET),
            encode_record(SR, T0 + 1, encode_sr(0xE7C1234580000000, 48000)),
            encode_record(EVENT, T0 + 2, b'{"event":"layer","spatial":2}'),
        )
    )


def test_flush_makes_records_readable_before_close(tmp_path: Path) -> None:
    path = tmp_path / "j.msrec"
    writer = JournalWriter.open(path, meta())
    writer.rtp(RTP_PACKET, T0)
    writer.flush()
    journal = read_journal(path)
    assert [r.payload for r in journal.records] == [RTP_PACKET]
    assert journal.damage is None
    writer.close()
    writer.close()  # twice is fine


def test_json_is_compact_and_ordered() -> None:
    assert encode_json({"b": 1, "a": [1, "é"]}) == '{"b":1,"a":[1,"é"]}'.encode()


def test_sr_payload() -> None:
    assert decode_sr(encode_sr(2**64 - 1, 2**32 - 1)) == (2**64 - 1, 2**32 - 1)
    with pytest.raises(ValueError, match=exact("SR record payload is 11 bytes, not 12")):
        decode_sr(bytes(11))


def test_ntp_conversion() -> None:
    assert ntp_to_unix(unix_to_ntp(1700000000.5)) == 1700000000.5
    assert unix_to_ntp(0.0) == 2_208_988_800 << 32
    assert abs(ntp_to_unix(unix_to_ntp(1234.999999999)) - 1235.0) < 1e-6


# --- writer refusals ---------------------------------------------------------------------------


def test_writer_refuses_bad_records(tmp_path: Path) -> None:
    with JournalWriter.open(tmp_path / "j.msrec", meta()) as writer:
        with pytest.raises(ValueError, match=exact("an RTP packet has at least 12 bytes, got 11")):
            writer.rtp(bytes(11), T0)
        with pytest.raises(ValueError, match="too large"):
            writer.rtp(bytes(MAX_RECORD - 11), T0)
        writer.rtp(b"\x80" + bytes(MAX_RECORD - 13), T0)  # the largest record
        with pytest.raises(ValueError, match="string 'event'"):
            writer.event({"kind": "start"}, T0)
        with pytest.raises(ValueError, match="not an unsigned 64-bit"):
            writer.rtp(RTP_PACKET, -1)
        with pytest.raises(ValueError, match="not an unsigned 32-bit"):
            writer.sr(0, 2**32, T0)
    journal = read_journal(tmp_path / "j.msrec")
    assert len(journal.records) == 1 and len(journal.records[0].payload) == MAX_RECORD - 12
    assert journal.damage is None


def test_writer_refuses_incomplete_metadata(tmp_path: Path) -> None:
    metadata = meta()
    del metadata["clockRate"], metadata["fmtp"]
    with pytest.raises(ValueError, match=exact("metadata misses key(s) 'clockRate', 'fmtp'")):
        JournalWriter.open(tmp_path / "j.msrec", metadata)


# --- reading -----------------------------------------------------------------------------------


def test_round_trip(tmp_path: Path) -> None:
    path = write(tmp_path / "j.msrec")
    journal = read_journal(path)
    assert journal.metadata == meta()
    assert journal.damage is None
    assert [r.type for r in journal.records] == [EVENT, RTP, RTP, RTP, RTP, RTP, SR]
    assert [r.index for r in journal.records] == list(range(1, 8))
    assert journal.records[0] == Record(
        1, len(encode_header(meta())), EVENT, T0, b'{"event":"start"}'
    )
    assert journal.records[3].payload[-2:] == b"\x02\x02"
    assert decode_sr(journal.records[-1].payload) == (0xE7C1234580000000, 48000)
    offsets = [r.offset for r in journal.records]
    sizes = [20 + len(r.payload) for r in journal.records]
    assert offsets[1:] == [o + s for o, s in zip(offsets, sizes, strict=False)][:-1]
    assert journal.size == offsets[-1] + sizes[-1]


def test_reader_streams_and_tracks_position(tmp_path: Path) -> None:
    path = write(tmp_path / "j.msrec")
    with JournalReader(path) as reader:
        assert reader.metadata["kind"] == "video"
        assert reader.position == reader.header_size
        count = sum(1 for _ in reader)
        assert (count, reader.records, reader.position, reader.damage) == (7, 7, reader.size, None)
        with pytest.raises(RuntimeError):
            iter(reader)


def test_header_only_journal(tmp_path: Path) -> None:
    path = tmp_path / "j.msrec"
    JournalWriter.open(path, meta()).close()
    journal = read_journal(path)
    assert (journal.records, journal.damage) == ([], None)


def test_unknown_metadata_keys_are_kept(tmp_path: Path) -> None:
    path = write(tmp_path / "j.msrec", meta(future={"x": 1}))
    assert read_journal(path).metadata["future"] == {"x": 1}


# --- bad headers -------------------------------------------------------------------------------


def header_error(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "bad.msrec"
    path.write_bytes(data)
    with pytest.raises(JournalError) as info:
        read_journal(path)
    return str(info.value)


def test_bad_magic(tmp_path: Path) -> None:
    assert header_error(tmp_path, b"RIFF\x00\x00\x00\x00WEBPVP8 ") == (
        "not a mediasrv journal: bad magic 52 49 46 46 00 00 00 00 "
        "(expected 4d 53 52 45 43 0d 0a 1a)"
    )
    assert header_error(tmp_path, b"") == (
        "not a mediasrv journal: bad magic (empty) (expected 4d 53 52 45 43 0d 0a 1a)"
    )


def test_unsupported_version(tmp_path: Path) -> None:
    data = raw_header(2, encode_json(meta()))
    assert header_error(tmp_path, data) == "unsupported journal version 2 (this reader reads 1)"


def test_metadata_crc_mismatch(tmp_path: Path) -> None:
    raw = encode_json(meta())
    good = crc32c(struct.pack("!HI", 1, len(raw)) + raw)
    data = raw_header(1, raw, crc=good ^ 1)
    assert header_error(tmp_path, data) == (
        f"metadata CRC mismatch: stored {good ^ 1:08x}, computed {good:08x}"
    )


def test_metadata_not_json(tmp_path: Path) -> None:
    message = header_error(tmp_path, raw_header(1, b"{format: 1}"))
    assert message.startswith("metadata is not JSON: Expecting property name")
    assert header_error(tmp_path, raw_header(1, b"[1, 2]")) == (
        "metadata is not a JSON object but a list"
    )
    assert header_error(tmp_path, raw_header(1, b"\xff")).startswith("metadata is not UTF-8")


@pytest.mark.parametrize("key", list(meta()))
def test_metadata_missing_key(tmp_path: Path, key: str) -> None:
    metadata = meta()
    del metadata[key]
    message = header_error(tmp_path, raw_header(1, encode_json(metadata)))
    assert message == f"metadata misses key {key!r}"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"clockRate": "90000"}, "metadata key 'clockRate' has the wrong type: '90000'"),
        ({"clockRate": True}, "metadata key 'clockRate' has the wrong type: True"),
        ({"peer": 7}, "metadata key 'peer' has the wrong type: 7"),
        ({"kind": "data"}, "metadata 'kind' is 'data', not 'audio' or 'video'"),
        ({"format": "other"}, "metadata 'format' is 'other', not 'mediasrv-journal'"),
        ({"clockRate": 0}, "metadata 'clockRate' is 0, not positive"),
    ],
)
def test_metadata_bad_values(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    assert header_error(tmp_path, raw_header(1, encode_json(meta(**change)))) == message


def test_truncated_header(tmp_path: Path) -> None:
    header = encode_header(meta())
    assert header_error(tmp_path, header[:10]) == (
        "truncated header: the file has 10 bytes, the fixed header alone needs 14"
    )
    assert header_error(tmp_path, header[:-1]) == (
        f"truncated header: metadata of {len(header) - 18} bytes and its CRC need "
        f"{len(header)} bytes, the file has {len(header) - 1}"
    )


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_journal(tmp_path / "missing.msrec")


# --- damaged records ---------------------------------------------------------------------------


def test_truncated_last_record(tmp_path: Path) -> None:
    path = write(tmp_path / "j.msrec")
    records = read_journal(path).records
    last = records[-1]
    data = path.read_bytes()
    path.write_bytes(data[: last.offset + 10])
    journal = read_journal(path)
    assert journal.records == records[:-1]
    assert journal.damage == (
        f"record 7 at byte {last.offset}: truncated: its length field says 24 bytes plus 4 "
        "for the CRC, 6 remain (stopped there; 6 records before it are intact)"
    )


def test_truncated_length_field(tmp_path: Path) -> None:
    path = write(tmp_path / "j.msrec", count=0)
    records = read_journal(path).records
    with open(path, "ab") as file:
        file.write(b"\x00\x00")
    journal = read_journal(path)
    assert journal.records == records
    assert journal.damage == (
        f"record 3 at byte {journal.size - 2}: truncated length field: 2 of 4 bytes "
        "(stopped there; 2 records before it are intact)"
    )


def test_crc_mismatch_in_the_middle(tmp_path: Path) -> None:
    path = write(tmp_path / "j.msrec")
    records = read_journal(path).records
    bad = records[3]
    data = bytearray(path.read_bytes())
    data[bad.offset + 4 + 12 + 5] ^= 0x01  # a payload byte
    path.write_bytes(bytes(data))
    journal = read_journal(path)
    assert journal.records == records[:3]
    assert journal.damage is not None
    assert re.fullmatch(
        rf"record 4 at byte {bad.offset}: CRC mismatch \(stored [0-9a-f]{{8}}, computed "
        r"[0-9a-f]{8}\) \(stopped there; 3 records before it are intact\)",
        journal.damage,
    )


def test_one_intact_record_is_singular(tmp_path: Path) -> None:
    path = write(tmp_path / "j.msrec", count=1)
    second = read_journal(path).records[1]
    data = bytearray(path.read_bytes())
    data[second.offset + 5] ^= 0xFF  # the type byte
    path.write_bytes(bytes(data))
    damage = read_journal(path).damage
    assert damage is not None and damage.endswith("(stopped there; 1 record before it is intact)")


@pytest.mark.parametrize("length", [0, 11, MAX_RECORD + 1, 0xFFFFFFFF])
def test_length_out_of_range(tmp_path: Path, length: int) -> None:
    path = write(tmp_path / "j.msrec", count=1)
    size = path.stat().st_size
    with open(path, "ab") as file:
        file.write(struct.pack("!I", length) + bytes(40))
    journal = read_journal(path)
    assert len(journal.records) == 3
    assert journal.damage == (
        f"record 4 at byte {size}: length {length} out of range 12..{MAX_RECORD} "
        "(stopped there; 3 records before it are intact)"
    )


@settings(max_examples=60, deadline=None)
@given(
    payloads=st.lists(st.binary(min_size=12, max_size=200), min_size=1, max_size=12),
    cut=st.integers(min_value=0, max_value=3000),
)
def test_any_truncation_reads_a_prefix(
    tmp_path_factory: pytest.TempPathFactory, payloads: list[bytes], cut: int
) -> None:
    path = tmp_path_factory.mktemp("cut") / "j.msrec"
    with JournalWriter.open(path, meta()) as writer:
        for i, payload in enumerate(payloads):
            writer.rtp(payload, T0 + i)
    data = path.read_bytes()
    header = len(encode_header(meta()))
    cut = min(len(data), header + cut)
    path.write_bytes(data[:cut])
    journal = read_journal(path)
    assert [r.payload for r in journal.records] == payloads[: len(journal.records)]
    ends = {header} | {r.offset + 20 + len(r.payload) for r in journal.records}
    assert (journal.damage is None) == (cut in ends), (cut, ends, journal.damage)
    assert journal.damage is None or "truncated" in journal.damage
