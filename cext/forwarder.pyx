# Forwarder: the per-packet loop of the data plane for one inbound stream.
#
# recv batch (recvmmsg) -> SRTP unprotect in place -> RTP header parse -> packet cache
# -> for each consumer: copy, rewrite SSRC/sequence number/timestamp/payload type, SRTP protect
# -> send batch (sendmmsg). No Python object is touched per packet; Python is called per batch.
# The SFU's Router builds on this loop; the benchmarks measure it against aiortc's Python path.

import socket as _socket

from cpython.mem cimport PyMem_Free, PyMem_Malloc


cdef class ConsumerTarget:
    """Where and how one consumer receives the forwarded stream."""

    cdef readonly uint32_t ssrc
    cdef readonly uint8_t payload_type
    cdef readonly uint16_t sequence_offset
    cdef readonly uint32_t timestamp_offset
    cdef readonly object address
    cdef SrtpSession session
    cdef sockaddr_storage _addr
    cdef socklen_t _addrlen
    cdef readonly unsigned long long forwarded
    cdef readonly unsigned long long protect_errors

    def __init__(self, SrtpSession session not None, tuple address, *, ssrc, int payload_type,
                 int sequence_offset=0, timestamp_offset=0):
        if not 0 <= payload_type <= 127:
            raise ValueError(f"payload type {payload_type} is outside 0..127")
        self.session = session
        self.address = address
        self.ssrc = _u32(ssrc, "SSRC")
        self.payload_type = payload_type
        self.sequence_offset = sequence_offset & 0xFFFF
        self.timestamp_offset = _u32(timestamp_offset & 0xFFFFFFFF, "timestamp offset")
        family = _socket.AF_INET6 if ":" in address[0] else _socket.AF_INET
        tuple_to_sockaddr(address, family, &self._addr, &self._addrlen)


cdef class Forwarder:
    """Forwards one publisher's SRTP stream to any number of consumers over one UDP socket."""

    cdef UdpBatchSocket _sock
    cdef SrtpSession _inbound
    cdef PacketCache _cache
    cdef list _targets
    cdef DatagramBatch* _in
    cdef DatagramBatch* _out
    cdef readonly unsigned long long received
    cdef readonly unsigned long long forwarded
    cdef readonly unsigned long long dropped_not_rtp
    cdef readonly unsigned long long dropped_unprotect
    cdef readonly unsigned long long dropped_parse
    cdef readonly unsigned long long send_errors

    def __cinit__(self):
        self._in = <DatagramBatch*>PyMem_Malloc(sizeof(DatagramBatch))
        self._out = <DatagramBatch*>PyMem_Malloc(sizeof(DatagramBatch))
        if self._in == NULL or self._out == NULL:
            raise MemoryError()
        self._out.count = 0

    def __init__(self, UdpBatchSocket sock not None, SrtpSession inbound not None,
                 PacketCache cache=None):
        self._sock = sock
        self._inbound = inbound
        self._cache = cache
        self._targets = []

    def __dealloc__(self):
        PyMem_Free(self._in)
        PyMem_Free(self._out)

    def add_consumer(self, ConsumerTarget target not None) -> None:
        self._targets.append(target)

    def remove_consumer(self, ConsumerTarget target not None) -> None:
        self._targets.remove(target)

    @property
    def consumers(self) -> list:
        return list(self._targets)

    def process(self, unsigned long long now_ms=0) -> int:
        """Receive one batch and forward it; the number of datagrams received (0: none waiting)."""
        cdef int count
        with nogil:
            count = self._sock.recv_c(self._in)
        if count < 0:
            raise OSError(-count, "recvmmsg failed")
        cdef int i
        for i in range(count):
            self._forward_one(self._in.data[i], self._in.lengths[i], now_ms)
        self._flush()
        self.received += count
        return count

    cdef void _forward_one(self, uint8_t* buf, int length, unsigned long long now_ms):
        cdef RtpHeader h
        cdef ConsumerTarget target
        # RFC 7983 demultiplexing: RTP/RTCP start with 128..191; RFC 5761: RTCP types 192..223
        if length < 2 or buf[0] < 128 or buf[0] > 191 or 192 <= buf[1] <= 223:
            self.dropped_not_rtp += 1
            return
        if self._inbound.unprotect_rtp_c(buf, &length) != 0:
            self.dropped_unprotect += 1
            return
        if rtp_parse(buf, length, &h) != 0:
            self.dropped_parse += 1
            return
        if self._cache is not None:
            self._cache.put_c(h.sequence_number, buf, length, now_ms)
        for target in self._targets:
            self._emit(target, buf, length, &h)

    cdef void _emit(self, ConsumerTarget target, const uint8_t* buf, int length,
                    const RtpHeader* h):
        cdef int slot = self._out.count
        cdef uint8_t* out = self._out.data[slot]
        cdef RtpHeader oh = h[0]
        memcpy(out, buf, length)
        rtp_set_ssrc(out, &oh, target.ssrc)
        rtp_set_sequence_number(out, &oh, <uint16_t>(h.sequence_number + target.sequence_offset))
        rtp_set_timestamp(out, &oh, h.timestamp + target.timestamp_offset)
        rtp_set_payload_type(out, &oh, target.payload_type)
        if target.session.protect_rtp_c(out, &length) != 0:
            target.protect_errors += 1
            return
        self._out.lengths[slot] = length
        self._out.addrs[slot] = target._addr
        self._out.addrlens[slot] = target._addrlen
        self._out.count = slot + 1
        target.forwarded += 1
        if self._out.count == UDP_BATCH_MAX:
            self._flush()

    cdef void _flush(self):
        cdef int dropped = 0
        cdef int sent
        with nogil:
            sent = self._sock.flush_c(self._out, &dropped)
        self.forwarded += sent
        self.send_errors += dropped
