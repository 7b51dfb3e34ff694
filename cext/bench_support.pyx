# C-level loops for the microbenchmarks in bench/: they time the data plane's per-packet work
# without the cost of a Python call per packet, which the forwarding path never pays.

from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC


cdef inline double _now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


def bench_rtp_parse(packet, int iterations) -> float:
    """Parse one RTP packet's header (with extension index) n times; seconds taken."""
    cdef const uint8_t[:] view = _readonly_view(packet)
    cdef RtpHeader h
    cdef int i
    cdef int failures = 0
    cdef double start = _now()
    with nogil:
        for i in range(iterations):
            if rtp_parse(&view[0], view.shape[0], &h) != 0:
                failures += 1
    if failures:
        raise ValueError("benchmark packet does not parse")
    return _now() - start


def bench_rewrite_protect(SrtpSession session not None, packet, int iterations,
                          int first_sequence=0) -> float:
    """Copy, parse, rewrite SSRC/seq/ts/PT and SRTP-protect one packet n times; seconds taken.

    Sequence numbers run on from first_sequence, as a consumer's do.
    """
    cdef const uint8_t[:] view = _readonly_view(packet)
    cdef uint8_t buf[UDP_DATAGRAM_MAX]
    cdef RtpHeader h
    cdef int length
    cdef int i
    cdef int failures = 0
    if view.shape[0] + srtp2.SRTP_MAX_TRAILER_LEN > UDP_DATAGRAM_MAX:
        raise ValueError("benchmark packet is too large")
    cdef double start = _now()
    with nogil:
        for i in range(iterations):
            length = <int>view.shape[0]
            memcpy(buf, &view[0], length)
            rtp_parse(buf, length, &h)
            rtp_set_ssrc(buf, &h, 0x11223344)
            rtp_set_sequence_number(buf, &h, <uint16_t>(first_sequence + i))
            rtp_set_timestamp(buf, &h, h.timestamp + 3000)
            rtp_set_payload_type(buf, &h, 96)
            if session.protect_rtp_c(buf, &length) != 0:
                failures += 1
    if failures:
        raise ValueError(f"{failures} protect calls failed")
    return _now() - start


def bench_cache_put_get(PacketCache cache not None, packet, int iterations) -> float:
    """Store one packet under n consecutive sequence numbers and read each back; seconds taken."""
    cdef const uint8_t[:] view = _readonly_view(packet)
    cache._reset()
    cdef int i
    cdef int length
    cdef uint64_t stored_at
    cdef int misses = 0
    cdef double start = _now()
    with nogil:
        for i in range(iterations):
            cache.put_c(<uint16_t>i, &view[0], <int>view.shape[0], i)
            if cache.get_c(<uint16_t>i, &length, &stored_at) == NULL:
                misses += 1
    if misses:
        raise ValueError(f"{misses} cache lookups missed")
    return _now() - start
