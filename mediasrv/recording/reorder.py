"""Puts RTP packets back in sequence-number order within a bounded window.

A packet is released as soon as every packet before it has been released. A gap (a packet that
has not arrived) holds the packets after it until the oldest held packet has waited `window_us`
of arrival time, or until `max_packets` are held; then the gap is given up and the packets
after it are released. A packet that arrives after its place was given up, or twice, is dropped.
"""

from __future__ import annotations

import heapq

from mediasrv.recording.rtp_stream import RtpPacket

DEFAULT_WINDOW_US = 500_000
DEFAULT_MAX_PACKETS = 1000


class Reorderer:
    """Sequence-number ordering with a window bounded by arrival time and by packet count."""

    def __init__(
        self, window_us: int = DEFAULT_WINDOW_US, max_packets: int = DEFAULT_MAX_PACKETS
    ) -> None:
        self.window_us = window_us
        self.max_packets = max_packets
        self._heap: list[tuple[int, int, RtpPacket]] = []  # (seq, arrival, packet)
        self._held: set[int] = set()
        self._next: int | None = None
        self._newest_us = 0
        self.late = 0
        """Packets dropped because their place had been passed: late, or a repeat of a released
        packet."""
        self.duplicates = 0
        """Packets dropped because the same sequence number was being held."""
        self.reordered = 0
        """Packets that arrived after a packet with a higher sequence number."""
        self._highest: int | None = None
        self.restarts = 0
        """Times the sequence numbers jumped back by more than the window (a restarted sender)."""

    def push(self, packet: RtpPacket) -> list[RtpPacket]:
        """Take one packet in arrival order; return the packets now ready, in order."""
        seq = packet.seq
        if self._next is not None and seq < self._next - self.max_packets:
            # far behind everything: the numbering restarted (a new sender), not a late packet
            self.restarts += 1
            out = self._release(final=True)
            self._next = None
            self._highest = None
            return out + self.push(packet)
        if self._next is not None and seq < self._next:
            self.late += 1
            return []
        if seq in self._held:
            self.duplicates += 1
            return []
        if self._highest is not None and seq < self._highest:
            self.reordered += 1
        if self._highest is None or seq > self._highest:
            self._highest = seq
        self._held.add(seq)
        heapq.heappush(self._heap, (seq, packet.arrival_us, packet))
        if packet.arrival_us > self._newest_us:
            self._newest_us = packet.arrival_us
        return self._release(final=False)

    def flush(self) -> list[RtpPacket]:
        """Release everything still held (at the end of the journal)."""
        return self._release(final=True)

    def _release(self, *, final: bool) -> list[RtpPacket]:
        heap = self._heap
        out: list[RtpPacket] = []
        while heap:
            seq, arrival, packet = heap[0]
            if not (
                final
                or seq == self._next
                or arrival + self.window_us <= self._newest_us
                or len(heap) > self.max_packets
            ):
                break
            heapq.heappop(heap)
            self._held.discard(seq)
            self._next = seq + 1
            out.append(packet)
        return out
