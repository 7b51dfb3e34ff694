"""PacketCache (cext/packet_cache.pyx): the ring of recent packets that answers NACKs."""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mediasrv._core import PacketCache


def exact(message: str) -> str:
    """A pytest.raises(match=...) pattern that matches exactly this message."""
    return f"^{re.escape(message)}$"


def packet(seq: int, size: int = 20) -> bytes:
    """Distinct bytes for each sequence number."""
    return (struct.pack("!H", seq % 65536) * size)[:size]


# --- construction --------------------------------------------------------------------------------


def test_defaults() -> None:
    cache = PacketCache()
    assert cache.capacity == 512
    assert cache.max_packet_size == 1500
    assert cache.highest_sequence is None
    assert len(cache) == 0


@pytest.mark.parametrize("capacity", [1 << k for k in range(16)])
def test_every_power_of_two_capacity_is_accepted(capacity: int) -> None:
    cache = PacketCache(capacity, 12)
    assert cache.capacity == capacity
    for seq in range(capacity + 3):
        assert cache.put(seq, packet(seq, 12))
    assert len(cache) == capacity
    assert cache.get(capacity + 2) == packet(capacity + 2, 12)


@pytest.mark.parametrize("capacity", [0, -1, -512, 3, 6, 100, 513, 32769, 65536, 1 << 20])
def test_invalid_capacity(capacity: int) -> None:
    with pytest.raises(
        ValueError,
        match=exact(f"packet cache capacity {capacity} must be a power of two in 1..32768"),
    ):
        PacketCache(capacity)


@pytest.mark.parametrize("size", [-1, 0, 11, 65536])
def test_invalid_slot_size(size: int) -> None:
    with pytest.raises(
        ValueError, match=exact(f"packet cache slot size {size} is outside 12..65535")
    ):
        PacketCache(16, size)


def test_keyword_arguments_and_extreme_slot_sizes() -> None:
    assert PacketCache(capacity=2, max_packet_size=12).max_packet_size == 12
    big = PacketCache(capacity=2, max_packet_size=65535)
    assert big.put(1, bytes(65535))
    assert big.get(1) == bytes(65535)


# --- put / get -----------------------------------------------------------------------------------


def test_put_and_get() -> None:
    cache = PacketCache(64)
    assert cache.get(10) is None
    assert cache.put(10, b"abc") is True
    assert cache.get(10) == b"abc"
    assert cache.get(11) is None
    assert cache.get(9) is None
    assert len(cache) == 1
    assert cache.highest_sequence == 10


def test_put_accepts_bytes_like_and_copies() -> None:
    cache = PacketCache(16)
    source = bytearray(b"mutable packet")
    assert cache.put(1, source)
    source[0:7] = b"changed"
    assert cache.get(1) == b"mutable packet"
    assert cache.put(2, memoryview(b"from a view"))
    assert cache.get(2) == b"from a view"
    got = cache.get(1)
    assert isinstance(got, bytes)


def test_put_rejects_non_bytes() -> None:
    cache = PacketCache(16)
    with pytest.raises(TypeError, match=exact("expected bytes-like payload, got str")):
        cache.put(1, "text")  # type: ignore[arg-type]


def test_empty_packet_is_stored_not_absent() -> None:
    cache = PacketCache(16)
    assert cache.put(5, b"")
    assert cache.get(5) == b""
    assert cache.stored_at(5) == 0


def test_put_overwrites_the_same_sequence_number() -> None:
    cache = PacketCache(16)
    assert cache.put(7, b"first", now_ms=1)
    assert cache.put(7, b"second, longer", now_ms=2)
    assert cache.get(7) == b"second, longer"
    assert cache.stored_at(7) == 2
    assert len(cache) == 1


def test_oversize_packet() -> None:
    cache = PacketCache(16, 100)
    assert cache.put(1, bytes(100))
    with pytest.raises(
        ValueError, match=exact("packet of 101 bytes exceeds the cache's 100-byte slots")
    ):
        cache.put(2, bytes(101))
    with pytest.raises(
        ValueError, match=exact("packet of 1501 bytes exceeds the cache's 1500-byte slots")
    ):
        PacketCache().put(2, bytes(1501))
    # a rejected packet neither stores nor advances anything
    assert cache.get(2) is None
    assert cache.highest_sequence == 1
    assert len(cache) == 1


@pytest.mark.parametrize("seq", [-1, 65536, 1 << 20])
def test_sequence_number_range(seq: int) -> None:
    cache = PacketCache(16)
    message = exact(f"sequence number {seq} is outside 0..65535")
    with pytest.raises(ValueError, match=message):
        cache.put(seq, b"x")
    with pytest.raises(ValueError, match=message):
        cache.get(seq)
    assert cache.stored_at(seq) is None


def test_slot_reuse_forgets_the_overwritten_sequence_number() -> None:
    cache = PacketCache(4)
    for seq in range(4):
        assert cache.put(seq, packet(seq))
    assert cache.put(4, packet(4))  # same slot as 0
    assert cache.get(0) is None
    assert cache.stored_at(0) is None
    assert cache.get(4) == packet(4)
    assert [cache.get(s) for s in range(1, 5)] == [packet(s) for s in range(1, 5)]
    assert cache.put(9, packet(9))  # slot of 1 (and 5): 1 is overwritten, 5 was never stored
    assert cache.get(1) is None
    assert cache.get(5) is None
    assert cache.get(9) == packet(9)


def test_wrap_around() -> None:
    cache = PacketCache(32)
    seqs = [s % 65536 for s in range(65530, 65546)]
    assert seqs[:6] == [65530, 65531, 65532, 65533, 65534, 65535]
    assert seqs[6:] == list(range(10))
    for seq in seqs:
        assert cache.put(seq, packet(seq), now_ms=seq)
    for seq in seqs:
        assert cache.get(seq) == packet(seq)
        assert cache.stored_at(seq) == seq
    assert len(cache) == 16
    assert cache.highest_sequence == 65536 + 9  # extended: one wrap
    # a sequence number one full cycle away shares a slot but is not the stored packet
    assert cache.get(65529) is None
    assert cache.get(10) is None


def test_many_wraps_keep_counting() -> None:
    cache = PacketCache(8)
    for i in range(3 * 65536 + 5):
        if i % 997 == 0 or i > 3 * 65536 - 4:
            assert cache.put(i % 65536, packet(i))
        else:
            assert cache.put(i % 65536, b"")
    assert cache.highest_sequence == 3 * 65536 + 4
    assert cache.get(4) == packet(4)


def test_out_of_order_puts_within_the_window_are_kept() -> None:
    cache = PacketCache(16)
    order = [100, 105, 103, 101, 104, 102, 91, 90]
    for seq in order:
        assert cache.put(seq, packet(seq)) is True
    for seq in order:
        assert cache.get(seq) == packet(seq)
    assert cache.highest_sequence == 105
    assert len(cache) == len(order)


def test_too_old_puts_are_rejected() -> None:
    cache = PacketCache(16)
    assert cache.put(100, packet(100))
    assert cache.put(84, packet(84)) is False  # 100 - 16: the slot belongs to 100
    assert cache.get(84) is None
    assert cache.get(100) == packet(100)
    assert cache.put(85, packet(85)) is True  # the oldest the window holds
    assert cache.get(85) == packet(85)
    assert cache.put(0, packet(0)) is False
    assert cache.highest_sequence == 100


def test_too_old_across_the_wrap() -> None:
    cache = PacketCache(16)
    assert cache.put(5, packet(5))
    assert cache.put(65535, packet(65535)) is True  # 6 before 5, across the wrap
    assert cache.put(65525, packet(65525)) is False  # 16 before 5
    assert cache.get(65535) == packet(65535)
    assert cache.get(65525) is None
    assert cache.highest_sequence == 5


def test_sequence_numbers_before_the_first_one_across_the_wrap() -> None:
    # Packets that precede the first stored one across the wrap get an extended sequence number
    # below the first's; a lookup must not mistake one of them for an empty slot.
    cache = PacketCache(512)
    assert cache.put(0, b"zero")
    assert cache.get(65535) is None
    assert cache.stored_at(65535) is None
    assert cache.get(65535 - 511) is None
    assert cache.put(65535, b"before zero", now_ms=7)
    assert cache.get(65535) == b"before zero"
    assert cache.stored_at(65535) == 7
    assert cache.get(0) == b"zero"
    assert cache.get(65534) is None
    assert len(cache) == 2
    assert cache.highest_sequence == 0


def test_forward_jump_beyond_the_window() -> None:
    cache = PacketCache(16)
    for seq in range(16):
        assert cache.put(seq, packet(seq))
    assert cache.put(100, packet(100))  # the slot of 4
    assert cache.get(4) is None
    assert cache.get(100) == packet(100)
    assert len(cache) == 1  # only 100 is inside the window 85..100
    # packets below the window whose slots were not reused may still be served, but only
    # the right ones
    for seq in range(16):
        assert cache.get(seq) in (None, packet(seq))
    assert cache.put(90, packet(90))  # the slot of 10
    assert cache.get(10) is None
    assert len(cache) == 2


def test_jump_of_more_than_half_the_sequence_space_counts_as_old() -> None:
    cache = PacketCache(512)
    assert cache.put(0, b"a")
    # 40000 is closer to 0 going backwards (by 25536): far too old
    assert cache.put(40000, b"b") is False
    assert cache.get(40000) is None
    assert cache.highest_sequence == 0
    # 32768 ahead is still ahead
    assert cache.put(32768, b"c") is True
    assert cache.highest_sequence == 32768


def test_stored_at() -> None:
    cache = PacketCache(16)
    assert cache.stored_at(1) is None
    assert cache.put(1, b"x", now_ms=123456789012)
    assert cache.put(2, b"y")
    assert cache.put(3, b"z", 2**64 - 1)
    assert cache.stored_at(1) == 123456789012
    assert cache.stored_at(2) == 0
    assert cache.stored_at(3) == 2**64 - 1
    assert cache.stored_at(4) is None
    with pytest.raises(OverflowError):
        cache.put(4, b"w", now_ms=-1)


def test_clear() -> None:
    cache = PacketCache(16)
    for seq in range(10):
        cache.put(seq, packet(seq))
    cache.clear()
    assert len(cache) == 0
    assert cache.highest_sequence is None
    assert all(cache.get(seq) is None for seq in range(10))
    assert cache.stored_at(3) is None
    # a new stream may start anywhere, even far "behind" the old one
    assert cache.put(40000, b"new stream")
    assert cache.get(40000) == b"new stream"
    assert cache.highest_sequence == 40000
    assert len(cache) == 1


def test_len_counts_live_packets() -> None:
    cache = PacketCache(8)
    assert len(cache) == 0
    for n, seq in enumerate(range(1000, 1020), start=1):
        cache.put(seq, packet(seq))
        assert len(cache) == min(n, 8)


@pytest.mark.slow
def test_long_run_keeps_only_the_last_capacity_packets() -> None:
    capacity = 512
    total = 200_000
    cache = PacketCache(capacity, 16)
    for i in range(total):
        assert cache.put(i % 65536, struct.pack("!Q", i), now_ms=i)
    assert len(cache) == capacity
    assert cache.highest_sequence == total - 1
    last = {}
    for i in range(total - 65536, total):
        last[i % 65536] = i
    for seq in range(65536):
        i = last[seq]
        if i >= total - capacity:
            assert cache.get(seq) == struct.pack("!Q", i)
            assert cache.stored_at(seq) == i
        else:
            assert cache.get(seq) is None
            assert cache.stored_at(seq) is None


# --- property-based: a model of the cache --------------------------------------------------------


@dataclass
class Model:
    """The ideal cache: packets keyed by extended sequence number; the newest `capacity` ones
    (by extended number) must be retrievable, nothing else may be returned wrongly."""

    capacity: int
    highest: int | None = None
    stored: dict[int, tuple[bytes, int]] = field(default_factory=dict)

    def extend(self, seq: int) -> int:
        if self.highest is None:
            return seq
        candidate = (self.highest & ~0xFFFF) | seq
        if candidate - self.highest > 0x8000:
            candidate -= 0x10000
        elif candidate - self.highest < -0x8000:
            candidate += 0x10000
        return candidate

    def put(self, seq: int, data: bytes, now_ms: int) -> bool:
        ext = self.extend(seq)
        if self.highest is not None and ext <= self.highest - self.capacity:
            return False
        self.highest = ext if self.highest is None else max(self.highest, ext)
        self.stored[ext] = (data, now_ms)
        return True

    def check(self, cache: PacketCache, seq: int) -> None:
        got = cache.get(seq)
        at = cache.stored_at(seq)
        if self.highest is None:
            assert got is None and at is None
            return
        ext = self.extend(seq)
        expected = self.stored.get(ext)
        if expected is not None and ext > self.highest - self.capacity:
            assert (got, at) == expected  # in the window: must be there
        elif got is not None:
            # outside the window the cache may still hold it, but only the right packet
            assert expected is not None and (got, at) == expected


operations = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(-100, 100), st.integers(0, 40)),
        st.tuples(st.just("get"), st.integers(-300, 300), st.just(0)),
    ),
    max_size=300,
)


@settings(max_examples=500, deadline=None)
@given(
    capacity=st.sampled_from([1, 2, 8, 32, 128]),
    start=st.one_of(st.integers(0, 65535), st.sampled_from([0, 1, 65535, 65500, 32768])),
    ops=operations,
)
def test_puts_never_return_a_wrong_packet(
    capacity: int, start: int, ops: list[tuple[str, int, int]]
) -> None:
    cache = PacketCache(capacity, 64)
    model = Model(capacity)
    seq = start
    touched = {seq}
    for counter, (kind, step, size) in enumerate(ops):
        if kind == "put":
            seq = (seq + step) % 65536
            data = struct.pack("!I", counter) + bytes([counter & 0xFF]) * size
            assert cache.put(seq, data, now_ms=counter) is model.put(seq, data, counter)
            touched.add(seq)
            model.check(cache, seq)
            assert cache.highest_sequence == model.highest
        else:
            model.check(cache, (seq + step) % 65536)
    for s in touched:
        for neighbour in (s - 1, s, s + 1):
            model.check(cache, neighbour % 65536)
    if model.highest is not None:
        live = sum(1 for ext in model.stored if ext > model.highest - capacity)
        assert len(cache) == live
