# rtcp: RTCP compound parser and builder.
#
# Wire formats: RFC 3550 (SR, RR, SDES, BYE), RFC 4585 (generic NACK, PLI), RFC 5104 (FIR),
# draft-alvestrand-rmcat-remb-03 (REMB), draft-holmer-rmcat-transport-wide-cc-extensions-01
# (transport-cc). C code walks a compound with rtcp_next() and builds feedback with the
# rtcp_write_*() functions; Python code uses parse_rtcp()/serialize_rtcp() and the Rtcp* classes.
# All units share one module namespace, hence the rtcp/_rtcp/Rtcp/RTCP_ prefixes everywhere.

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport int16_t, int32_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy, memset


cdef enum:
    RTCP_HEADER_SIZE = 4
    RTCP_MAX_PACKET_SIZE = 0x40000  # header + the length field's 65535 words
    RTCP_MAX_COUNT = 31  # RC/SC/FMT are 5 bits
    RTCP_SR = 200
    RTCP_RR = 201
    RTCP_SDES = 202
    RTCP_BYE = 203
    RTCP_APP = 204
    RTCP_RTPFB = 205
    RTCP_PSFB = 206
    RTCP_FMT_NACK = 1  # RTPFB
    RTCP_FMT_TWCC = 15  # RTPFB
    RTCP_FMT_PLI = 1  # PSFB
    RTCP_FMT_FIR = 4  # PSFB
    RTCP_FMT_AFB = 15  # PSFB application layer feedback: REMB
    RTCP_PLI_SIZE = 12
    RTCP_TWCC_NOT_RECEIVED = -0x7FFFFFFF - 1  # rtcp_write_twcc() delta of a lost packet

# rtcp_next() results below zero.
cdef enum:
    RTCP_ERR_OFFSET = -1  # offset outside the buffer
    RTCP_ERR_HEADER = -2  # fewer than 4 bytes left
    RTCP_ERR_VERSION = -3  # version is not 2
    RTCP_ERR_LENGTH = -4  # length field runs past the buffer
    RTCP_ERR_PADDING = -5  # P bit set with a bad padding count; *out is still filled in


cdef struct RtcpHeaderView:
    uint8_t fmt  # FMT of feedback packets, the RC/SC item count of the others
    uint8_t packet_type
    Py_ssize_t offset  # of the header in the buffer
    Py_ssize_t length  # bytes including header and padding: the next packet starts at offset + length
    Py_ssize_t padding  # trailing padding bytes (P bit), 0 without


# --- big-endian access (callers check bounds)

cdef inline uint16_t _rtcp_u16(const uint8_t* p) noexcept nogil:
    return (<uint16_t>p[0] << 8) | p[1]


cdef inline uint32_t _rtcp_u24(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 16) | (<uint32_t>p[1] << 8) | p[2]


cdef inline int32_t _rtcp_s24(const uint8_t* p) noexcept nogil:
    cdef int32_t value = <int32_t>_rtcp_u24(p)
    return value - 0x1000000 if value & 0x800000 else value


cdef inline uint32_t _rtcp_u32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline uint64_t _rtcp_u64(const uint8_t* p) noexcept nogil:
    return (<uint64_t>_rtcp_u32(p) << 32) | _rtcp_u32(p + 4)


cdef inline void _rtcp_put_u16(uint8_t* p, uint16_t value) noexcept nogil:
    p[0] = value >> 8
    p[1] = value & 0xFF


cdef inline void _rtcp_put_u24(uint8_t* p, uint32_t value) noexcept nogil:
    p[0] = (value >> 16) & 0xFF
    p[1] = (value >> 8) & 0xFF
    p[2] = value & 0xFF


cdef inline void _rtcp_put_u32(uint8_t* p, uint32_t value) noexcept nogil:
    _rtcp_put_u16(p, value >> 16)
    _rtcp_put_u16(p + 2, value & 0xFFFF)


cdef inline void _rtcp_put_u64(uint8_t* p, uint64_t value) noexcept nogil:
    _rtcp_put_u32(p, <uint32_t>(value >> 32))
    _rtcp_put_u32(p + 4, <uint32_t>value)


cdef inline void _rtcp_put_header(
    uint8_t* p, uint8_t count, uint8_t packet_type, Py_ssize_t size, bint padding
) noexcept nogil:
    """Write the common header of a packet of ``size`` bytes (a multiple of 4, header included)."""
    p[0] = 0x80 | (0x20 if padding else 0) | count
    p[1] = packet_type
    _rtcp_put_u16(p + 2, <uint16_t>(size // 4 - 1))


# --- C-level API

cdef int rtcp_next(
    const uint8_t* buf, Py_ssize_t size, Py_ssize_t offset, RtcpHeaderView* out
) noexcept nogil:
    """Read the header of the packet at ``offset``: 1 when read, 0 at the end, RTCP_ERR_* else.

    On RTCP_ERR_PADDING ``*out`` is filled in anyway (padding 0), so a caller may skip the packet.
    """
    cdef Py_ssize_t left, length
    cdef uint8_t padding
    if offset < 0 or offset > size:
        return RTCP_ERR_OFFSET
    left = size - offset
    if left == 0:
        return 0
    if left < RTCP_HEADER_SIZE:
        return RTCP_ERR_HEADER
    if buf[offset] >> 6 != 2:
        return RTCP_ERR_VERSION
    length = (<Py_ssize_t>_rtcp_u16(buf + offset + 2) + 1) * 4
    if length > left:
        return RTCP_ERR_LENGTH
    out.fmt = buf[offset] & 0x1F
    out.packet_type = buf[offset + 1]
    out.offset = offset
    out.length = length
    out.padding = 0
    if buf[offset] & 0x20:
        # The last octet counts the padding, itself included.
        padding = buf[offset + length - 1]
        if padding == 0 or padding > length - RTCP_HEADER_SIZE:
            return RTCP_ERR_PADDING
        out.padding = padding
    return 1


cdef Py_ssize_t rtcp_write_pli(uint8_t* out, uint32_t sender, uint32_t media) noexcept nogil:
    """Write a PLI into ``out`` (RTCP_PLI_SIZE bytes of room); return RTCP_PLI_SIZE."""
    _rtcp_put_header(out, RTCP_FMT_PLI, RTCP_PSFB, RTCP_PLI_SIZE, False)
    _rtcp_put_u32(out + 4, sender)
    _rtcp_put_u32(out + 8, media)
    return RTCP_PLI_SIZE


cdef Py_ssize_t rtcp_write_fir(
    uint8_t* out,
    Py_ssize_t capacity,
    uint32_t sender,
    const uint32_t* ssrcs,
    const uint8_t* seq_nrs,
    Py_ssize_t n,
) noexcept nogil:
    """Write a FIR asking each ``ssrcs[i]`` for a keyframe (command ``seq_nrs[i]``).

    Returns the bytes written, or -1 if ``n`` is 0 or the packet doesn't fit.
    """
    cdef Py_ssize_t i, size
    if n < 1 or n > (RTCP_MAX_PACKET_SIZE - 12) // 8:
        return -1
    size = 12 + 8 * n
    if size > capacity:
        return -1
    _rtcp_put_header(out, RTCP_FMT_FIR, RTCP_PSFB, size, False)
    _rtcp_put_u32(out + 4, sender)
    _rtcp_put_u32(out + 8, 0)  # media source SSRC: unused by FIR (RFC 5104 4.3.1.2)
    for i in range(n):
        _rtcp_put_u32(out + 12 + 8 * i, ssrcs[i])
        _rtcp_put_u32(out + 16 + 8 * i, <uint32_t>seq_nrs[i] << 24)
    return size


cdef inline Py_ssize_t _rtcp_put_nack_pair(
    uint8_t* out, Py_ssize_t capacity, Py_ssize_t pos, uint16_t pid, uint16_t blp
) noexcept nogil:
    if pos + 4 > capacity or pos + 4 > RTCP_MAX_PACKET_SIZE:
        return -1
    _rtcp_put_u16(out + pos, pid)
    _rtcp_put_u16(out + pos + 2, blp)
    return pos + 4


cdef Py_ssize_t rtcp_write_nack(
    uint8_t* out,
    Py_ssize_t capacity,
    uint32_t sender,
    uint32_t media,
    const uint16_t* seqs,
    Py_ssize_t n,
) noexcept nogil:
    """Write a generic NACK for ``seqs`` (in the order given, 16-bit wrap-around included).

    A sequence number joins the current PID+BLP pair only if it follows every number already in
    it, so parsing expands the pairs back into exactly ``seqs``. Needs at most 12 + 4 * n bytes;
    returns the bytes written, or -1 if ``n`` is 0 or the packet doesn't fit.
    """
    cdef Py_ssize_t i, pos = 12
    cdef uint16_t pid, blp = 0, bit
    cdef int last_bit = -1
    if n < 1:
        return -1
    pid = seqs[0]
    for i in range(1, n):
        bit = <uint16_t>(seqs[i] - pid - 1)
        if bit < 16 and bit > last_bit:
            blp |= <uint16_t>(1 << bit)
            last_bit = bit
            continue
        pos = _rtcp_put_nack_pair(out, capacity, pos, pid, blp)
        if pos < 0:
            return -1
        pid = seqs[i]
        blp = 0
        last_bit = -1
    pos = _rtcp_put_nack_pair(out, capacity, pos, pid, blp)
    if pos < 0:
        return -1
    _rtcp_put_header(out, RTCP_FMT_NACK, RTCP_RTPFB, pos, False)
    _rtcp_put_u32(out + 4, sender)
    _rtcp_put_u32(out + 8, media)
    return pos


cdef Py_ssize_t rtcp_write_remb(
    uint8_t* out,
    Py_ssize_t capacity,
    uint32_t sender,
    uint64_t bitrate,
    const uint32_t* ssrcs,
    Py_ssize_t n,
) noexcept nogil:
    """Write a REMB of ``bitrate`` bits/s for up to 255 ``ssrcs``.

    The smallest exponent that fits the 18-bit mantissa is used, so the bitrate is rounded down
    to a multiple of 2**exponent. Returns the bytes written, or -1 if it doesn't fit.
    """
    cdef Py_ssize_t i, size
    cdef uint8_t exponent = 0
    cdef uint64_t mantissa
    if n < 0 or n > 255:
        return -1
    size = 20 + 4 * n
    if size > capacity:
        return -1
    while (bitrate >> exponent) > 0x3FFFF:
        exponent += 1
    mantissa = bitrate >> exponent
    _rtcp_put_header(out, RTCP_FMT_AFB, RTCP_PSFB, size, False)
    _rtcp_put_u32(out + 4, sender)
    _rtcp_put_u32(out + 8, 0)  # media source SSRC: always 0 for REMB
    memcpy(out + 12, b"REMB", 4)
    out[16] = <uint8_t>n
    _rtcp_put_u24(out + 17, (<uint32_t>exponent << 18) | <uint32_t>mantissa)
    for i in range(n):
        _rtcp_put_u32(out + 20 + 4 * i, ssrcs[i])
    return size


cdef inline uint8_t _rtcp_twcc_symbol(int32_t delta) noexcept nogil:
    """Status symbol of a receive delta in 250 us ticks: 0 lost, 1 small, 2 large or negative."""
    if delta == RTCP_TWCC_NOT_RECEIVED:
        return 0
    return 1 if 0 <= delta <= 255 else 2


cdef Py_ssize_t _rtcp_twcc_put_chunk(
    uint8_t* out, const int32_t* deltas, Py_ssize_t i, Py_ssize_t n
) noexcept nogil:
    """Write the packet chunk that starts at packet ``i``; return the first packet after it."""
    cdef uint8_t first = _rtcp_twcc_symbol(deltas[i]), widest = 0
    cdef Py_ssize_t run = 1, k, end, per_chunk
    cdef uint16_t chunk
    while i + run < n and run < 0x1FFF and _rtcp_twcc_symbol(deltas[i + run]) == first:
        run += 1
    end = min(i + 14, n)
    for k in range(i, end):
        widest = max(widest, _rtcp_twcc_symbol(deltas[k]))
    per_chunk = 14 if widest <= 1 else 7
    # A run-length chunk wins once the run covers what a status vector chunk would.
    if run >= per_chunk or i + run == n:
        _rtcp_put_u16(out, (<uint16_t>first << 13) | <uint16_t>run)
        return i + run
    end = min(i + per_chunk, n)
    if per_chunk == 14:
        chunk = 0x8000
        for k in range(i, end):
            chunk |= <uint16_t>_rtcp_twcc_symbol(deltas[k]) << (13 - (k - i))
    else:
        chunk = 0xC000
        for k in range(i, end):
            chunk |= <uint16_t>_rtcp_twcc_symbol(deltas[k]) << (12 - 2 * (k - i))
    _rtcp_put_u16(out, chunk)
    return end


cdef Py_ssize_t rtcp_write_twcc(
    uint8_t* out,
    Py_ssize_t capacity,
    uint32_t sender,
    uint32_t media,
    uint16_t base_sequence,
    int32_t reference_time,
    uint8_t feedback_count,
    const int32_t* deltas,
    Py_ssize_t n,
) noexcept nogil:
    """Write transport-cc feedback for packets ``base_sequence`` .. ``base_sequence + n - 1``.

    ``deltas[i]`` is packet i's receive delta in 250 us ticks (-32768..32767), or
    RTCP_TWCC_NOT_RECEIVED; ``reference_time`` is in 64 ms units (signed 24-bit). Needs at most
    20 + 4 * n + 3 bytes; returns the bytes written, or -1 on a bad value or if it doesn't fit.
    """
    cdef Py_ssize_t i = 0, pos = 20
    cdef uint8_t symbol
    if n < 1 or n > 0xFFFF or capacity < 20 or not -0x800000 <= reference_time <= 0x7FFFFF:
        return -1
    for i in range(n):
        if deltas[i] != RTCP_TWCC_NOT_RECEIVED and not -0x8000 <= deltas[i] <= 0x7FFF:
            return -1
    i = 0
    while i < n:
        if pos + 2 > capacity:
            return -1
        i = _rtcp_twcc_put_chunk(out + pos, deltas, i, n)
        pos += 2
    for i in range(n):
        symbol = _rtcp_twcc_symbol(deltas[i])
        if pos + symbol > capacity:
            return -1
        if symbol == 1:
            out[pos] = <uint8_t>deltas[i]
        elif symbol == 2:
            _rtcp_put_u16(out + pos, <uint16_t>deltas[i])
        pos += symbol
    while pos % 4:
        if pos >= capacity:
            return -1
        out[pos] = 0
        pos += 1
    if pos > RTCP_MAX_PACKET_SIZE:
        return -1
    _rtcp_put_header(out, RTCP_FMT_TWCC, RTCP_RTPFB, pos, False)
    _rtcp_put_u32(out + 4, sender)
    _rtcp_put_u32(out + 8, media)
    _rtcp_put_u16(out + 12, base_sequence)
    _rtcp_put_u16(out + 14, <uint16_t>n)
    _rtcp_put_u24(out + 16, <uint32_t>reference_time & 0xFFFFFF)
    out[19] = feedback_count
    return pos


# --- Python packet classes

cdef class _RtcpScratch:
    """A PyMem buffer that frees itself, so serialize() needs no try/finally."""
    cdef uint8_t* data

    def __cinit__(self, Py_ssize_t size):
        self.data = <uint8_t*>PyMem_Malloc(max(size, 1))
        if self.data == NULL:
            raise MemoryError()

    def __dealloc__(self):
        PyMem_Free(self.data)


cdef bytes _rtcp_be32(uint32_t value):
    cdef uint8_t raw[4]
    _rtcp_put_u32(raw, value)
    return (<char*>raw)[:4]


cdef int _rtcp_check_count(str what, Py_ssize_t count) except -1:
    if count > RTCP_MAX_COUNT:
        raise ValueError(f"RTCP {what} count {count} exceeds {RTCP_MAX_COUNT}")
    return 0


cdef int _rtcp_check_s24(str what, int32_t value) except -1:
    if not -0x800000 <= value <= 0x7FFFFF:
        raise OverflowError(f"RTCP {what} {value} does not fit in 24 signed bits")
    return 0


cdef int _rtcp_check_bytes(str what, object value) except -1:
    if type(value) is not bytes:
        raise TypeError(f"RTCP {what} must be bytes, not {type(value).__name__}")
    return 0


cdef bytes _rtcp_packet(uint8_t packet_type, Py_ssize_t count, bytes payload):
    """Header + ``payload``, padded to 32 bits with the P bit when ``payload`` isn't aligned."""
    cdef Py_ssize_t padding = -len(payload) & 3
    cdef Py_ssize_t size = RTCP_HEADER_SIZE + len(payload) + padding
    if size > RTCP_MAX_PACKET_SIZE:
        raise ValueError(f"RTCP packet of {size} bytes exceeds the {RTCP_MAX_PACKET_SIZE}-byte limit")
    cdef bytes result = PyBytes_FromStringAndSize(NULL, size)
    cdef uint8_t* out = <uint8_t*>PyBytes_AS_STRING(result)
    _rtcp_put_header(out, <uint8_t>count, packet_type, size, padding != 0)
    memcpy(out + RTCP_HEADER_SIZE, PyBytes_AS_STRING(payload), len(payload))
    memset(out + size - padding, 0, padding)
    if padding:
        out[size - 1] = <uint8_t>padding
    return result


@cython.dataclasses.dataclass
cdef class RtcpReportBlock:
    """A reception report block (RFC 3550 6.4.1); ``packets_lost`` is signed 24-bit."""
    ssrc: uint32_t
    fraction_lost: uint8_t
    packets_lost: int32_t
    highest_sequence: uint32_t
    jitter: uint32_t
    lsr: uint32_t
    dlsr: uint32_t


cdef tuple _rtcp_report_blocks(str what, list reports):
    """A snapshot of ``reports``, checked so that writing it runs no Python code."""
    cdef tuple blocks = tuple(reports)
    _rtcp_check_count(f"{what} report", len(blocks))
    for block in blocks:
        _rtcp_check_s24("report block packets_lost", (<RtcpReportBlock?>block).packets_lost)
    return blocks


cdef void _rtcp_put_report_blocks(uint8_t* out, tuple blocks) noexcept:
    cdef RtcpReportBlock block
    for block in blocks:
        _rtcp_put_u32(out, block.ssrc)
        out[4] = block.fraction_lost
        _rtcp_put_u24(out + 5, <uint32_t>block.packets_lost & 0xFFFFFF)
        _rtcp_put_u32(out + 8, block.highest_sequence)
        _rtcp_put_u32(out + 12, block.jitter)
        _rtcp_put_u32(out + 16, block.lsr)
        _rtcp_put_u32(out + 20, block.dlsr)
        out += 24


@cython.dataclasses.dataclass
cdef class RtcpSenderReport:
    """Sender report, PT 200 (RFC 3550 6.4.1). Profile-specific extensions are not kept."""
    ssrc: uint32_t
    ntp_timestamp: uint64_t
    rtp_timestamp: uint32_t
    packet_count: uint32_t
    octet_count: uint32_t
    reports: list = cython.dataclasses.field(default_factory=list)

    def serialize(self) -> bytes:
        cdef tuple blocks = _rtcp_report_blocks("SR", self.reports)
        cdef Py_ssize_t size = 28 + 24 * len(blocks)
        cdef bytes result = PyBytes_FromStringAndSize(NULL, size)
        cdef uint8_t* out = <uint8_t*>PyBytes_AS_STRING(result)
        _rtcp_put_header(out, <uint8_t>len(blocks), RTCP_SR, size, False)
        _rtcp_put_u32(out + 4, self.ssrc)
        _rtcp_put_u64(out + 8, self.ntp_timestamp)
        _rtcp_put_u32(out + 16, self.rtp_timestamp)
        _rtcp_put_u32(out + 20, self.packet_count)
        _rtcp_put_u32(out + 24, self.octet_count)
        _rtcp_put_report_blocks(out + 28, blocks)
        return result


@cython.dataclasses.dataclass
cdef class RtcpReceiverReport:
    """Receiver report, PT 201 (RFC 3550 6.4.2). Profile-specific extensions are not kept."""
    ssrc: uint32_t
    reports: list = cython.dataclasses.field(default_factory=list)

    def serialize(self) -> bytes:
        cdef tuple blocks = _rtcp_report_blocks("RR", self.reports)
        cdef Py_ssize_t size = 8 + 24 * len(blocks)
        cdef bytes result = PyBytes_FromStringAndSize(NULL, size)
        cdef uint8_t* out = <uint8_t*>PyBytes_AS_STRING(result)
        _rtcp_put_header(out, <uint8_t>len(blocks), RTCP_RR, size, False)
        _rtcp_put_u32(out + 4, self.ssrc)
        _rtcp_put_report_blocks(out + 8, blocks)
        return result


@cython.dataclasses.dataclass
cdef class RtcpSdesChunk:
    """One SDES chunk: ``items`` are (type, value) pairs, e.g. (1, b"cname") for CNAME."""
    ssrc: uint32_t
    items: list = cython.dataclasses.field(default_factory=list)


cdef int _rtcp_put_sdes_chunk(bytearray body, RtcpSdesChunk chunk) except -1:
    cdef int item_type
    body += _rtcp_be32(chunk.ssrc)
    for item_type, value in tuple(chunk.items):
        if not 1 <= item_type <= 255:
            raise ValueError(f"RTCP SDES item type {item_type} is not in 1..255")
        _rtcp_check_bytes("SDES item value", value)
        if len(value) > 255:
            raise ValueError(f"RTCP SDES item (type {item_type}) of {len(value)} bytes exceeds 255")
        body.append(item_type)
        body.append(len(value))
        body += value
    # The null item, then null octets up to the next 32-bit boundary.
    body += bytes(4 - len(body) % 4)
    return 0


@cython.dataclasses.dataclass
cdef class RtcpSdes:
    """Source description, PT 202 (RFC 3550 6.5)."""
    chunks: list = cython.dataclasses.field(default_factory=list)

    def serialize(self) -> bytes:
        cdef tuple chunks = tuple(self.chunks)
        cdef bytearray body = bytearray()
        _rtcp_check_count("SDES chunk", len(chunks))
        for chunk in chunks:
            _rtcp_put_sdes_chunk(body, chunk)
        return _rtcp_packet(RTCP_SDES, len(chunks), bytes(body))


@cython.dataclasses.dataclass
cdef class RtcpBye:
    """Goodbye, PT 203 (RFC 3550 6.6); ``reason`` is None when the packet carries none."""
    sources: list = cython.dataclasses.field(default_factory=list)
    reason: bytes = None

    def serialize(self) -> bytes:
        cdef tuple sources = tuple(self.sources)
        cdef bytearray body = bytearray()
        _rtcp_check_count("BYE source", len(sources))
        for ssrc in sources:
            body += _rtcp_be32(ssrc)
        if self.reason is not None:
            if len(self.reason) > 255:
                raise ValueError(f"RTCP BYE reason of {len(self.reason)} bytes exceeds 255")
            body.append(len(self.reason))
            body += self.reason
            body += bytes(-len(body) & 3)
        return _rtcp_packet(RTCP_BYE, len(sources), bytes(body))


@cython.dataclasses.dataclass
cdef class RtcpNack:
    """Generic NACK, PT 205 FMT 1 (RFC 4585 6.2.1): ``lost`` RTP sequence numbers, in order."""
    sender_ssrc: uint32_t
    media_ssrc: uint32_t
    lost: list = cython.dataclasses.field(default_factory=list)

    def serialize(self) -> bytes:
        cdef tuple lost = tuple(self.lost)
        cdef Py_ssize_t i, size, n = len(lost), capacity = 12 + 4 * n
        if n == 0:
            raise ValueError("RTCP NACK needs at least one lost sequence number")
        cdef _RtcpScratch scratch = _RtcpScratch(capacity + 2 * n)
        cdef uint16_t* seqs = <uint16_t*>(scratch.data + capacity)
        for i in range(n):
            seqs[i] = lost[i]
        size = rtcp_write_nack(scratch.data, capacity, self.sender_ssrc, self.media_ssrc, seqs, n)
        if size < 0:
            raise ValueError(f"RTCP NACK of {n} sequence numbers exceeds the RTCP length limit")
        return (<char*>scratch.data)[:size]


@cython.dataclasses.dataclass
cdef class RtcpPli:
    """Picture loss indication, PT 206 FMT 1 (RFC 4585 6.3.1)."""
    sender_ssrc: uint32_t
    media_ssrc: uint32_t

    def serialize(self) -> bytes:
        cdef bytes result = PyBytes_FromStringAndSize(NULL, RTCP_PLI_SIZE)
        rtcp_write_pli(<uint8_t*>PyBytes_AS_STRING(result), self.sender_ssrc, self.media_ssrc)
        return result


@cython.dataclasses.dataclass
cdef class RtcpFir:
    """Full intra request, PT 206 FMT 4 (RFC 5104 4.3.1): ``entries`` are (ssrc, seq nr)."""
    sender_ssrc: uint32_t
    entries: list = cython.dataclasses.field(default_factory=list)

    def serialize(self) -> bytes:
        cdef tuple entries = tuple(self.entries)
        cdef Py_ssize_t i, size, n = len(entries), capacity = 12 + 8 * n
        if n == 0:
            raise ValueError("RTCP FIR needs at least one entry")
        cdef _RtcpScratch scratch = _RtcpScratch(capacity + 5 * n)
        cdef uint32_t* ssrcs = <uint32_t*>(scratch.data + capacity)
        cdef uint8_t* seq_nrs = scratch.data + capacity + 4 * n
        for i in range(n):
            ssrcs[i], seq_nrs[i] = entries[i]
        size = rtcp_write_fir(scratch.data, capacity, self.sender_ssrc, ssrcs, seq_nrs, n)
        if size < 0:
            raise ValueError(f"RTCP FIR of {n} entries exceeds the RTCP length limit")
        return (<char*>scratch.data)[:size]


@cython.dataclasses.dataclass
cdef class RtcpRemb:
    """Receiver estimated maximum bitrate, PT 206 FMT 15 (draft-alvestrand-rmcat-remb).

    The wire carries ``bitrate`` as an 18-bit mantissa times 2**exponent; serialize() uses the
    smallest exponent that fits, so a bitrate above 262143 is rounded down to a multiple of
    2**exponent (parse then yields that rounded value).
    """
    sender_ssrc: uint32_t
    bitrate: uint64_t
    ssrcs: list = cython.dataclasses.field(default_factory=list)

    def serialize(self) -> bytes:
        cdef tuple ssrcs = tuple(self.ssrcs)
        cdef Py_ssize_t i, n = len(ssrcs), capacity = 20 + 4 * n
        if n > 255:
            raise ValueError(f"RTCP REMB carries at most 255 SSRCs, got {n}")
        cdef _RtcpScratch scratch = _RtcpScratch(capacity + 4 * n)
        cdef uint32_t* values = <uint32_t*>(scratch.data + capacity)
        for i in range(n):
            values[i] = ssrcs[i]
        rtcp_write_remb(scratch.data, capacity, self.sender_ssrc, self.bitrate, values, n)
        return (<char*>scratch.data)[:capacity]


cdef int _rtcp_twcc_ticks(tuple packets, uint16_t base, int32_t* deltas) except -1:
    """Check ``packets`` and store their receive deltas in 250 us ticks into ``deltas``."""
    for i, (seq, delta) in enumerate(packets):
        expected = (base + i) & 0xFFFF
        if seq != expected:
            raise ValueError(
                f"RTCP transport-cc packet {i} has sequence {seq}, expected {expected}"
            )
        if delta is None:
            deltas[i] = RTCP_TWCC_NOT_RECEIVED
            continue
        if delta % 250:
            raise ValueError(
                f"RTCP transport-cc delta {delta} us of sequence {seq} is not a multiple of 250 us"
            )
        if not -0x8000 <= delta // 250 <= 0x7FFF:
            raise OverflowError(
                f"RTCP transport-cc delta {delta} us of sequence {seq} "
                "is outside -8192000..8191750 us"
            )
        deltas[i] = delta // 250
    return 0


@cython.dataclasses.dataclass
cdef class RtcpTransportFeedback:
    """Transport-wide congestion control feedback, PT 205 FMT 15.

    ``packets`` are (transport sequence, receive delta in us or None if not received) for
    ``base_sequence`` onwards; deltas are multiples of 250 us, each relative to the previous
    received packet (the first one to ``reference_time``, in 64 ms units, signed 24-bit).
    """
    sender_ssrc: uint32_t
    media_ssrc: uint32_t
    base_sequence: uint16_t
    reference_time: int32_t
    feedback_count: uint8_t
    packets: list = cython.dataclasses.field(default_factory=list)

    def serialize(self) -> bytes:
        cdef tuple packets = tuple(self.packets)
        cdef Py_ssize_t size, n = len(packets), capacity = 20 + 4 * n + 3
        if not 1 <= n <= 0xFFFF:
            raise ValueError(f"RTCP transport-cc needs 1..65535 packets, got {n}")
        _rtcp_check_s24("transport-cc reference_time", self.reference_time)
        cdef _RtcpScratch scratch = _RtcpScratch(4 * n + capacity)
        cdef int32_t* deltas = <int32_t*>scratch.data
        cdef uint8_t* out = scratch.data + 4 * n
        _rtcp_twcc_ticks(packets, self.base_sequence, deltas)
        size = rtcp_write_twcc(
            out, capacity, self.sender_ssrc, self.media_ssrc, self.base_sequence,
            self.reference_time, self.feedback_count, deltas, n,
        )
        if size < 0:
            raise ValueError(f"RTCP transport-cc of {n} packets exceeds the RTCP length limit")
        return (<char*>out)[:size]


@cython.dataclasses.dataclass
cdef class RtcpUnknown:
    """Any other packet (APP, XR, other feedback FMTs), kept as its payload after the header.

    ``count`` is the header's 5-bit RC/SC/FMT field; padding is not part of ``payload``.
    """
    packet_type: uint8_t
    count: uint8_t
    payload: bytes = b""

    def serialize(self) -> bytes:
        if self.count > RTCP_MAX_COUNT:
            raise OverflowError(f"RTCP count {self.count} does not fit in 5 bits")
        _rtcp_check_bytes("payload", self.payload)
        return _rtcp_packet(self.packet_type, self.count, self.payload)


@cython.dataclasses.dataclass
cdef class RtcpCompound:
    """What parse_rtcp() found: the packets it could parse and one message per problem."""
    packets: list = cython.dataclasses.field(default_factory=list)
    errors: list = cython.dataclasses.field(default_factory=list)


# --- parsing one packet body (p: the bytes after the header, without padding; n: their count)

cdef list _rtcp_parse_report_blocks(const uint8_t* p, int count):
    return [
        RtcpReportBlock(
            _rtcp_u32(p + 24 * i), p[24 * i + 4], _rtcp_s24(p + 24 * i + 5),
            _rtcp_u32(p + 24 * i + 8), _rtcp_u32(p + 24 * i + 12),
            _rtcp_u32(p + 24 * i + 16), _rtcp_u32(p + 24 * i + 20),
        )
        for i in range(count)
    ]


cdef object _rtcp_parse_sr(const uint8_t* p, Py_ssize_t n, int count):
    cdef Py_ssize_t need = 24 + 24 * count
    if n < need:
        raise ValueError(f"RTCP SR report count {count} needs {need} bytes, got {n}")
    return RtcpSenderReport(
        _rtcp_u32(p), _rtcp_u64(p + 4), _rtcp_u32(p + 12), _rtcp_u32(p + 16), _rtcp_u32(p + 20),
        _rtcp_parse_report_blocks(p + 24, count),
    )


cdef object _rtcp_parse_rr(const uint8_t* p, Py_ssize_t n, int count):
    cdef Py_ssize_t need = 4 + 24 * count
    if n < need:
        raise ValueError(f"RTCP RR report count {count} needs {need} bytes, got {n}")
    return RtcpReceiverReport(_rtcp_u32(p), _rtcp_parse_report_blocks(p + 4, count))


cdef Py_ssize_t _rtcp_parse_sdes_items(
    const uint8_t* p, Py_ssize_t n, Py_ssize_t pos, list items, str chunk
) except -1:
    """Read items from ``pos`` up to the null item; return where the next chunk starts."""
    cdef uint8_t item_type, length
    while True:
        if pos >= n:
            raise ValueError(f"RTCP SDES chunk {chunk} ends without a null item")
        item_type = p[pos]
        if item_type == 0:
            return min((pos + 4) & ~3, n)  # skip the null octets up to the 32-bit boundary
        if n - pos < 2:
            raise ValueError(f"RTCP SDES item (type {item_type}) has no length octet")
        length = p[pos + 1]
        if length > n - pos - 2:
            raise ValueError(
                f"RTCP SDES item (type {item_type}) length {length} "
                f"exceeds the {n - pos - 2} bytes left"
            )
        items.append((item_type, (<const char*>p)[pos + 2 : pos + 2 + length]))
        pos += 2 + length


cdef object _rtcp_parse_sdes(const uint8_t* p, Py_ssize_t n, int count):
    cdef Py_ssize_t pos = 0
    cdef list chunks = [], items
    for i in range(count):
        chunk = f"{i + 1} of {count}"
        if n - pos < 4:
            raise ValueError(f"RTCP SDES chunk {chunk} needs 4 bytes for its SSRC, got {n - pos}")
        items = []
        chunks.append(RtcpSdesChunk(_rtcp_u32(p + pos), items))
        pos = _rtcp_parse_sdes_items(p, n, pos + 4, items, chunk)
    return RtcpSdes(chunks)


cdef object _rtcp_parse_bye(const uint8_t* p, Py_ssize_t n, int count):
    cdef Py_ssize_t need = 4 * count
    cdef uint8_t length
    if n < need:
        raise ValueError(f"RTCP BYE source count {count} needs {need} bytes, got {n}")
    sources = [_rtcp_u32(p + 4 * i) for i in range(count)]
    if n == need:
        return RtcpBye(sources, None)
    length = p[need]
    if length > n - need - 1:
        raise ValueError(f"RTCP BYE reason length {length} exceeds the {n - need - 1} bytes left")
    return RtcpBye(sources, (<const char*>p)[need + 1 : need + 1 + length])


cdef int _rtcp_check_feedback(str what, Py_ssize_t n) except -1:
    if n < 8:
        raise ValueError(f"RTCP {what} needs 8 bytes for sender and media SSRC, got {n}")
    return 0


cdef object _rtcp_parse_nack(const uint8_t* p, Py_ssize_t n):
    cdef Py_ssize_t pos
    cdef uint16_t pid, blp
    cdef int bit
    _rtcp_check_feedback("NACK", n)
    if n == 8:
        raise ValueError("RTCP NACK has no FCI entries")
    if n % 4:
        raise ValueError(f"RTCP NACK FCI length {n - 8} is not a multiple of 4")
    lost = []
    for pos in range(8, n, 4):
        pid = _rtcp_u16(p + pos)
        blp = _rtcp_u16(p + pos + 2)
        lost.append(pid)
        for bit in range(16):
            if blp >> bit & 1:
                lost.append(<uint16_t>(pid + bit + 1))
    return RtcpNack(_rtcp_u32(p), _rtcp_u32(p + 4), lost)


cdef object _rtcp_parse_pli(const uint8_t* p, Py_ssize_t n):
    _rtcp_check_feedback("PLI", n)
    return RtcpPli(_rtcp_u32(p), _rtcp_u32(p + 4))  # PLI has no FCI: ignore any


cdef object _rtcp_parse_fir(const uint8_t* p, Py_ssize_t n):
    _rtcp_check_feedback("FIR", n)
    if n == 8:
        raise ValueError("RTCP FIR has no FCI entries")
    if (n - 8) % 8:
        raise ValueError(f"RTCP FIR FCI length {n - 8} is not a multiple of 8")
    return RtcpFir(_rtcp_u32(p), [(_rtcp_u32(p + pos), p[pos + 4]) for pos in range(8, n, 8)])


cdef object _rtcp_parse_remb(const uint8_t* p, Py_ssize_t n):
    cdef Py_ssize_t need
    cdef uint8_t exponent
    cdef uint64_t mantissa
    _rtcp_check_feedback("REMB", n)
    if n < 16:
        raise ValueError(f"RTCP REMB FCI needs at least 8 bytes, got {n - 8}")
    if memcmp(p + 8, b"REMB", 4) != 0:
        raise ValueError(
            f"RTCP REMB identifier is {(<const char*>p)[8:12]!r}, expected b'REMB'"
        )
    need = 8 + 4 * p[12]
    if n - 8 != need:
        raise ValueError(
            f"RTCP REMB lists {p[12]} SSRCs, which needs {need} FCI bytes, got {n - 8}"
        )
    exponent = p[13] >> 2
    mantissa = _rtcp_u24(p + 13) & 0x3FFFF
    if (mantissa << exponent) >> exponent != mantissa:
        raise ValueError(f"RTCP REMB bitrate {mantissa} * 2^{exponent} does not fit in 64 bits")
    ssrcs = [_rtcp_u32(p + pos) for pos in range(16, n, 4)]
    return RtcpRemb(_rtcp_u32(p), mantissa << exponent, ssrcs)


cdef Py_ssize_t _rtcp_twcc_decode_chunk(
    uint16_t chunk, uint8_t* symbols, Py_ssize_t have, Py_ssize_t count
) noexcept nogil:
    """Append the chunk's statuses (at most count - have); return the new total, -1 if reserved."""
    cdef Py_ssize_t k, end
    cdef uint8_t symbol
    if not chunk & 0x8000:  # run length: S (2 bits), length (13 bits)
        symbol = (chunk >> 13) & 3
        end = min(have + (chunk & 0x1FFF), count)
        if symbol == 3:
            return -1
        for k in range(have, end):
            symbols[k] = symbol
        return end
    if not chunk & 0x4000:  # fourteen 1-bit statuses
        end = min(have + 14, count)
        for k in range(have, end):
            symbols[k] = (chunk >> (13 - (k - have))) & 1
        return end
    end = min(have + 7, count)  # seven 2-bit statuses
    for k in range(have, end):
        symbol = (chunk >> (12 - 2 * (k - have))) & 3
        if symbol == 3:
            return -1
        symbols[k] = symbol
    return end


cdef Py_ssize_t _rtcp_twcc_read_chunks(
    const uint8_t* p, Py_ssize_t n, uint8_t* symbols, Py_ssize_t count
) except -1:
    """Decode the packet chunks after the 16 fixed bytes; return where the deltas start."""
    cdef Py_ssize_t pos = 16, have = 0
    while have < count:
        if n - pos < 2:
            raise ValueError(
                f"RTCP transport-cc packet status count {count} "
                f"exceeds the chunks' {have} statuses"
            )
        have = _rtcp_twcc_decode_chunk(_rtcp_u16(p + pos), symbols, have, count)
        if have < 0:
            raise ValueError(
                f"RTCP transport-cc chunk {(pos - 16) // 2 + 1} uses the reserved status symbol 3"
            )
        pos += 2
    return pos


cdef list _rtcp_twcc_read_deltas(
    const uint8_t* p, Py_ssize_t n, uint16_t base, const uint8_t* symbols, Py_ssize_t count
):
    cdef Py_ssize_t i, need = 0, pos = 0
    cdef list packets = []
    for i in range(count):
        need += symbols[i]  # a small delta takes 1 byte, a large one 2
    if n < need:
        raise ValueError(f"RTCP transport-cc receive deltas need {need} bytes, got {n}")
    for i in range(count):
        if symbols[i] == 0:
            delta = None
        elif symbols[i] == 1:
            delta = p[pos] * 250
        else:
            delta = <int16_t>_rtcp_u16(p + pos) * 250
        pos += symbols[i]
        packets.append((<uint16_t>(base + i), delta))
    return packets


cdef object _rtcp_parse_twcc(const uint8_t* p, Py_ssize_t n):
    cdef Py_ssize_t pos, count
    if n < 16:
        raise ValueError(f"RTCP transport-cc needs 16 bytes before its chunks, got {n}")
    count = _rtcp_u16(p + 10)
    if count == 0:
        raise ValueError("RTCP transport-cc packet status count is 0")
    cdef _RtcpScratch symbols = _RtcpScratch(count)
    pos = _rtcp_twcc_read_chunks(p, n, symbols.data, count)
    packets = _rtcp_twcc_read_deltas(p + pos, n - pos, _rtcp_u16(p + 8), symbols.data, count)
    return RtcpTransportFeedback(
        _rtcp_u32(p), _rtcp_u32(p + 4), _rtcp_u16(p + 8), _rtcp_s24(p + 12), p[15], packets
    )


cdef object _rtcp_parse_packet(const uint8_t* p, Py_ssize_t n, uint8_t packet_type, uint8_t fmt):
    if packet_type == RTCP_SR:
        return _rtcp_parse_sr(p, n, fmt)
    if packet_type == RTCP_RR:
        return _rtcp_parse_rr(p, n, fmt)
    if packet_type == RTCP_SDES:
        return _rtcp_parse_sdes(p, n, fmt)
    if packet_type == RTCP_BYE:
        return _rtcp_parse_bye(p, n, fmt)
    if packet_type == RTCP_RTPFB and fmt == RTCP_FMT_NACK:
        return _rtcp_parse_nack(p, n)
    if packet_type == RTCP_RTPFB and fmt == RTCP_FMT_TWCC:
        return _rtcp_parse_twcc(p, n)
    if packet_type == RTCP_PSFB and fmt == RTCP_FMT_PLI:
        return _rtcp_parse_pli(p, n)
    if packet_type == RTCP_PSFB and fmt == RTCP_FMT_FIR:
        return _rtcp_parse_fir(p, n)
    if packet_type == RTCP_PSFB and fmt == RTCP_FMT_AFB:
        return _rtcp_parse_remb(p, n)
    return RtcpUnknown(packet_type, fmt, (<const char*>p)[:n])


# --- compounds

cdef str _rtcp_header_error(int code, const uint8_t* buf, Py_ssize_t size, Py_ssize_t offset):
    """The message for an rtcp_next() error code, with the numbers that explain it."""
    cdef Py_ssize_t left = size - offset, length
    if code == RTCP_ERR_HEADER:
        message = f"RTCP header needs 4 bytes, got {left}"
    elif code == RTCP_ERR_VERSION:
        message = f"RTCP packet has version {buf[offset] >> 6}, expected 2"
    elif code == RTCP_ERR_LENGTH:
        message = (
            f"RTCP packet length field ({_rtcp_u16(buf + offset + 2)} words) "
            f"exceeds the {left - 4} bytes left"
        )
    elif code == RTCP_ERR_PADDING:
        length = (<Py_ssize_t>_rtcp_u16(buf + offset + 2) + 1) * 4
        message = (
            f"RTCP padding length {buf[offset + length - 1]} is invalid "
            f"for a payload of {length - 4} bytes"
        )
    else:
        return f"RTCP offset {offset} is outside the {size}-byte buffer"
    return f"{message} (at offset {offset})"


def parse_rtcp(data) -> RtcpCompound:
    """Parse a compound RTCP packet; never raises for malformed bytes.

    Packets that parse are kept, including those after a bad one whenever its length field lets
    the parser step over it; each problem is reported in ``errors``.
    """
    cdef const uint8_t[::1] view = data
    cdef Py_ssize_t offset = 0, size = view.shape[0]
    cdef const uint8_t* buf = &view[0] if size else NULL
    cdef RtcpHeaderView header
    cdef RtcpCompound compound = RtcpCompound([], [])
    cdef int rc
    if size == 0:
        compound.errors.append("RTCP compound is empty")
        return compound
    while True:
        rc = rtcp_next(buf, size, offset, &header)
        if rc == 0:
            return compound
        if rc < 0:
            compound.errors.append(_rtcp_header_error(rc, buf, size, offset))
            if rc != RTCP_ERR_PADDING:
                return compound
        else:
            try:
                compound.packets.append(_rtcp_parse_packet(
                    buf + offset + RTCP_HEADER_SIZE,
                    header.length - RTCP_HEADER_SIZE - header.padding,
                    header.packet_type,
                    header.fmt,
                ))
            except ValueError as exc:
                compound.errors.append(f"{exc} (at offset {offset})")
        offset += header.length


RtcpPacket = (
    RtcpSenderReport | RtcpReceiverReport | RtcpSdes | RtcpBye | RtcpNack | RtcpTransportFeedback
    | RtcpPli | RtcpFir | RtcpRemb | RtcpUnknown
)


def serialize_rtcp(packets) -> bytes:
    """Serialize packets into one compound RTCP packet."""
    return b"".join([packet.serialize() for packet in packets])


def rtcp_walk(data) -> list:
    """The (fmt, packet type, offset, length) of each packet, as rtcp_next() sees them.

    Raises ValueError for the first malformed header.
    """
    cdef const uint8_t[::1] view = data
    cdef Py_ssize_t offset = 0, size = view.shape[0]
    cdef const uint8_t* buf = &view[0] if size else NULL
    cdef RtcpHeaderView header
    cdef int rc
    cdef list result = []
    while True:
        rc = rtcp_next(buf, size, offset, &header)
        if rc == 0:
            return result
        if rc < 0:
            raise ValueError(_rtcp_header_error(rc, buf, size, offset))
        result.append((header.fmt, header.packet_type, header.offset, header.length))
        offset += header.length
