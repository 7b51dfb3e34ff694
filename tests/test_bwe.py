"""transport-cc in the data plane (cext/bwe.pyx), closed-loop: packets sent at a rate through a
simulated bottleneck (a FIFO of a given capacity, a queue limit, random loss), arrivals recorded
by the receiver half, its feedback messages fed to the send-side estimator on simulated time."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from mediasrv import _core

PACKET = 1200  # bytes


@dataclass
class Link:
    """A bottleneck: capacity in bit/s, base delay, a queue limit in seconds, random loss."""

    capacity: float
    delay: float = 0.04
    queue_limit: float = 0.5
    loss: float = 0.0
    seed: int = 3

    def __post_init__(self) -> None:
        self.free_at = 0.0
        self.random = random.Random(self.seed)

    def arrival(self, sent: float, size: int) -> float | None:
        """When a packet sent at `sent` arrives, or None when dropped."""
        start = max(sent, self.free_at)
        if start - sent > self.queue_limit or self.random.random() < self.loss:
            return None
        self.free_at = start + size * 8 / self.capacity
        return self.free_at + self.delay


class Loop:
    """A sender at a chosen rate, the link, the receiver and the estimator on simulated time."""

    def __init__(self, link: Link, start: float = 1_000_000) -> None:
        self.link = link
        self.bwe = _core.SendSideEstimator(start, 30_000, 20_000_000)
        self.receiver = _core.TccReceiver()
        self.now = 10.0
        self.pending: list[tuple[float, int]] = []  # (arrival, seq)
        self.next_feedback = self.now + 0.1

    def run(self, rate: float, seconds: float, *, probe_rate: float = 0.0) -> None:
        """Send `rate` bit/s (plus `probe_rate` of 250-byte probe packets) for `seconds`."""
        step = PACKET * 8 / rate
        end = self.now + seconds
        probe_step = 250 * 8 / probe_rate if probe_rate else 0.0
        next_probe = self.now
        while self.now < end:
            self._send(PACKET)
            while probe_rate and next_probe <= self.now:
                self._send(250)
                next_probe += probe_step
            self.now += step
            self._deliver()

    def _send(self, size: int) -> None:
        seq = self.bwe.sent(size, int(self.now * 1e6))
        arrival = self.link.arrival(self.now, size)
        if arrival is not None:
            self.pending.append((arrival, seq))

    def _deliver(self) -> None:
        self.pending.sort()
        while self.pending and self.pending[0][0] <= self.now:
            arrival, seq = self.pending.pop(0)
            _core.tcc_record(self.receiver, seq, int(arrival * 1e6))
        if self.now >= self.next_feedback:
            self.next_feedback += 0.1
            now_us = int(self.now * 1e6)
            while (message := _core.tcc_feedback(self.receiver, 1, 2, now_us)) is not None:
                self.bwe.feed(message, int((self.now + self.link.delay) * 1e6))


def arrivals(message: bytes) -> dict[int, int | None]:
    """Sequence number -> arrival time (us) of a feedback message, None for a lost one."""
    parsed = _core.parse_rtcp(message)
    assert parsed.errors == []
    [feedback] = parsed.packets
    assert isinstance(feedback, _core.RtcpTransportFeedback)
    now = feedback.reference_time * 64000
    out: dict[int, int | None] = {}
    for seq, delta in feedback.packets:
        if delta is None:
            out[seq] = None
        else:
            now += delta
            out[seq] = now
    return out


def test_feedback_reports_arrivals_and_a_gap_only_once_it_cannot_be_reordering() -> None:
    receiver = _core.TccReceiver()
    base = 5_000_000
    for seq, offset in [(100, 0), (101, 1000), (103, 2750), (104, 2750)]:
        _core.tcc_record(receiver, seq, base + offset)
    # 102 is missing, but 103 came 10 ms ago: 102 may be reordered, the report stops before it
    first = _core.tcc_feedback(receiver, 0x1111, 0x2222, base + 12_750)
    assert first is not None
    assert arrivals(first) == {100: base, 101: base + 1000}
    # 50 ms on: 102 is reported lost, 103 and 104 received
    second = _core.tcc_feedback(receiver, 0x1111, 0x2222, base + 60_000)
    assert second is not None
    assert arrivals(second) == {102: None, 103: base + 2750, 104: base + 2750}
    assert _core.tcc_feedback(receiver, 0x1111, 0x2222, base + 100_000) is None  # all reported
    _core.tcc_record(receiver, 102, base + 9000)  # too late: reported lost already
    assert _core.tcc_feedback(receiver, 0x1111, 0x2222, base + 200_000) is None


def test_a_path_with_room_keeps_the_estimate_above_what_is_sent() -> None:
    loop = Loop(Link(capacity=5_000_000))
    loop.run(1_500_000, 8)
    assert loop.bwe.state == _core.BweState.BWE_NORMAL
    assert loop.bwe.overuses == 0
    assert 1_500_000 < loop.bwe.estimate <= 1.5 * 1_500_000 * 1.1
    assert abs(loop.bwe.acknowledged_bitrate - 1_500_000) < 150_000


def test_a_bottleneck_below_the_send_rate_is_found_by_delay_before_the_queue_overflows() -> None:
    loop = Loop(Link(capacity=400_000, queue_limit=0.5), start=1_500_000)
    loop.run(1_500_000, 0.3)  # the queue starts to build
    loop.run(1_500_000, 1.2)
    assert loop.bwe.overuses >= 1
    assert loop.bwe.estimate < 500_000, loop.bwe.estimate
    # sending what the estimate allows drains the queue; the detector calms down
    loop.run(max(loop.bwe.estimate * 0.8, 100_000), 6)
    assert loop.bwe.state != _core.BweState.BWE_OVERUSE
    assert 150_000 < loop.bwe.estimate < 600_000, loop.bwe.estimate


def test_heavy_random_loss_lowers_the_loss_based_estimate() -> None:
    loop = Loop(Link(capacity=10_000_000, loss=0.25), start=2_000_000)
    loop.run(1_000_000, 8)
    assert loop.bwe.loss_fraction > 0.15
    assert loop.bwe.loss_based < 1_000_000
    assert loop.bwe.estimate == min(loop.bwe.delay_based, loop.bwe.loss_based)


@pytest.mark.parametrize(("capacity", "raised"), [(4_000_000, True), (600_000, False)])
def test_a_probe_measures_room_above_what_is_sent(capacity: float, raised: bool) -> None:
    loop = Loop(Link(capacity=capacity), start=300_000)
    loop.run(250_000, 4)
    before = loop.bwe.estimate
    assert before < 600_000
    loop.bwe.start_probe()
    loop.run(250_000, 0.5, probe_rate=1_750_000)
    loop.bwe.end_probe()
    loop.run(250_000, 1)
    assert loop.bwe.probes == 1
    if raised:
        assert loop.bwe.last_probe > 1_500_000 and loop.bwe.estimate > 1_500_000
    else:
        assert loop.bwe.last_probe < 700_000 and loop.bwe.estimate < 700_000


def test_malformed_feedback_is_counted_and_changes_nothing() -> None:
    bwe = _core.SendSideEstimator(1_000_000, 30_000, 20_000_000)
    estimate = bwe.estimate
    for message in (b"", b"\x8f\xcd\x00\x01", b"\x8f\xcd\x00\x04" + b"\x00" * 12 + b"\xff\xff"):
        bwe.feed(message, 1_000_000)
    # a chunk with the reserved status symbol 3
    bwe.feed(b"\x8f\xcd\x00\x05" + b"\x00" * 8 + b"\x00\x01\x00\x02" + b"\x00\x00\x00\x00"
             + b"\x60\x00\x00\x00", 1_000_000)  # fmt: skip
    assert bwe.feedback_errors == 4
    assert bwe.estimate == estimate and bwe.packets_acked == 0
