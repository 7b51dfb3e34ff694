# RTP packet view (RFC 3550, header extensions RFC 8285).
#
# The C level parses a header in place into an RtpHeader struct (no allocation), finds header
# extension elements through a small index built during the parse, and rewrites SSRC, sequence
# number, timestamp, payload type and extension ids in place. The Python class RtpPacket wraps a
# private copy of the packet with the same functions, for tests, tools and the control plane.

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport int16_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

cdef enum:
    RTP_HEADER_SIZE = 12
    RTP_MAX_EXTENSIONS = 16
    RTP_ONE_BYTE_PROFILE = 0xBEDE
    RTP_TWO_BYTE_PROFILE = 0x1000

cdef enum RtpError:
    RTP_ERR_TOO_SHORT = -1
    RTP_ERR_VERSION = -2
    RTP_ERR_CSRC_TRUNCATED = -3
    RTP_ERR_EXTENSION_HEADER_TRUNCATED = -4
    RTP_ERR_EXTENSION_TRUNCATED = -5
    RTP_ERR_ELEMENT_TRUNCATED = -6
    RTP_ERR_TOO_MANY_ELEMENTS = -7
    RTP_ERR_PADDING_ZERO = -8
    RTP_ERR_PADDING_OVERFLOW = -9

cdef struct RtpHeader:
    uint8_t marker
    uint8_t payload_type
    uint8_t csrc_count
    uint8_t has_padding
    uint8_t has_extension
    uint16_t sequence_number
    uint32_t timestamp
    uint32_t ssrc
    uint16_t extension_profile
    # start (after the 4-byte extension header) and size of the extension block, 0 if none
    Py_ssize_t extension_offset
    Py_ssize_t extension_length
    Py_ssize_t payload_offset
    Py_ssize_t payload_length
    Py_ssize_t padding_length
    # index of extension elements: id, offset of the element's data, data length
    # (offsets are 32-bit: an extension block can reach 4 * 65535 bytes, beyond uint16_t)
    int element_count
    uint8_t element_ids[RTP_MAX_EXTENSIONS]
    uint32_t element_offsets[RTP_MAX_EXTENSIONS]
    uint8_t element_lengths[RTP_MAX_EXTENSIONS]
    # offset of each element's own header, so a remap can rewrite or blank it
    uint32_t element_starts[RTP_MAX_EXTENSIONS]
    # the element that overran the block, for the error message
    uint8_t bad_element_id
    Py_ssize_t bad_element_length


cdef inline uint16_t load16(const uint8_t* p) noexcept nogil:
    return (<uint16_t>p[0] << 8) | p[1]


cdef inline uint32_t load24(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 16) | (<uint32_t>p[1] << 8) | p[2]


cdef inline uint32_t load32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline void store16(uint8_t* p, uint16_t v) noexcept nogil:
    p[0] = v >> 8
    p[1] = v & 0xFF


cdef inline void store24(uint8_t* p, uint32_t v) noexcept nogil:
    p[0] = (v >> 16) & 0xFF
    p[1] = (v >> 8) & 0xFF
    p[2] = v & 0xFF


cdef inline void store32(uint8_t* p, uint32_t v) noexcept nogil:
    p[0] = v >> 24
    p[1] = (v >> 16) & 0xFF
    p[2] = (v >> 8) & 0xFF
    p[3] = v & 0xFF


cdef inline bint rtp_is_one_byte(uint16_t profile) noexcept nogil:
    return profile == RTP_ONE_BYTE_PROFILE


cdef inline bint rtp_is_two_byte(uint16_t profile) noexcept nogil:
    return (profile & 0xFFF0) == RTP_TWO_BYTE_PROFILE


cdef int _rtp_add_element(RtpHeader* h, uint8_t ext_id, Py_ssize_t start, Py_ssize_t data,
                          Py_ssize_t length) noexcept nogil:
    if h.element_count >= RTP_MAX_EXTENSIONS:
        return RTP_ERR_TOO_MANY_ELEMENTS
    h.element_ids[h.element_count] = ext_id
    h.element_starts[h.element_count] = <uint32_t>start
    h.element_offsets[h.element_count] = <uint32_t>data
    h.element_lengths[h.element_count] = <uint8_t>length
    h.element_count += 1
    return 0


cdef int _rtp_index_elements(const uint8_t* buf, RtpHeader* h) noexcept nogil:
    """Index the elements of a one-byte or two-byte extension block; other profiles stay opaque."""
    cdef Py_ssize_t pos = h.extension_offset
    cdef Py_ssize_t end = h.extension_offset + h.extension_length
    cdef uint8_t ext_id
    cdef Py_ssize_t length
    cdef int err
    if rtp_is_one_byte(h.extension_profile):
        while pos < end:
            ext_id = buf[pos] >> 4
            if buf[pos] == 0:  # padding byte
                pos += 1
                continue
            # 15 is reserved: stop processing the block (RFC 8285 section 4.2). Id 0 is only
            # valid as a padding byte (0x00); with a length nibble it is malformed and libwebrtc
            # stops there too. Indexing it would list an element with id 0 that get_extension
            # cannot find and that a remap silently drops from the index.
            if ext_id == 15 or ext_id == 0:
                break
            length = (buf[pos] & 0x0F) + 1
            if pos + 1 + length > end:
                h.bad_element_id = ext_id
                h.bad_element_length = length
                return RTP_ERR_ELEMENT_TRUNCATED
            err = _rtp_add_element(h, ext_id, pos, pos + 1, length)
            if err:
                return err
            pos += 1 + length
    elif rtp_is_two_byte(h.extension_profile):
        while pos < end:
            ext_id = buf[pos]
            if ext_id == 0:  # padding byte
                pos += 1
                continue
            h.bad_element_id = ext_id
            if pos + 2 > end:
                h.bad_element_length = -1
                return RTP_ERR_ELEMENT_TRUNCATED
            length = buf[pos + 1]
            if pos + 2 + length > end:
                h.bad_element_length = length
                return RTP_ERR_ELEMENT_TRUNCATED
            err = _rtp_add_element(h, ext_id, pos, pos + 2, length)
            if err:
                return err
            pos += 2 + length
    return 0


cdef int rtp_parse(const uint8_t* buf, Py_ssize_t size, RtpHeader* h) noexcept nogil:
    """Parse the RTP header at buf into h. Returns 0 or a negative RtpError."""
    cdef Py_ssize_t pos
    cdef Py_ssize_t ext_words
    if size < RTP_HEADER_SIZE:
        return RTP_ERR_TOO_SHORT
    if (buf[0] >> 6) != 2:
        return RTP_ERR_VERSION
    h.has_padding = (buf[0] >> 5) & 1
    h.has_extension = (buf[0] >> 4) & 1
    h.csrc_count = buf[0] & 0x0F
    h.marker = buf[1] >> 7
    h.payload_type = buf[1] & 0x7F
    h.sequence_number = load16(buf + 2)
    h.timestamp = load32(buf + 4)
    h.ssrc = load32(buf + 8)
    h.extension_profile = 0
    h.extension_offset = 0
    h.extension_length = 0
    h.element_count = 0
    h.padding_length = 0
    pos = RTP_HEADER_SIZE + 4 * h.csrc_count
    if pos > size:
        return RTP_ERR_CSRC_TRUNCATED
    if h.has_extension:
        if pos + 4 > size:
            return RTP_ERR_EXTENSION_HEADER_TRUNCATED
        h.extension_profile = load16(buf + pos)
        ext_words = load16(buf + pos + 2)
        pos += 4
        if pos + 4 * ext_words > size:
            return RTP_ERR_EXTENSION_TRUNCATED
        h.extension_offset = pos
        h.extension_length = 4 * ext_words
        pos += h.extension_length
    h.payload_offset = pos
    h.payload_length = size - pos
    if h.has_padding:
        if size == pos:
            return RTP_ERR_PADDING_OVERFLOW
        h.padding_length = buf[size - 1]
        if h.padding_length == 0:
            return RTP_ERR_PADDING_ZERO
        if h.padding_length > h.payload_length:
            return RTP_ERR_PADDING_OVERFLOW
        h.payload_length -= h.padding_length
    if h.has_extension:
        return _rtp_index_elements(buf, h)
    return 0


cdef inline int rtp_find_extension(const RtpHeader* h, uint8_t ext_id,
                                   Py_ssize_t* offset, Py_ssize_t* length) noexcept nogil:
    """Find element ext_id: 1 and its data offset/length if present, else 0."""
    cdef int i
    if ext_id == 0:
        return 0
    for i in range(h.element_count):
        if h.element_ids[i] == ext_id:
            offset[0] = h.element_offsets[i]
            length[0] = h.element_lengths[i]
            return 1
    return 0


cdef inline void rtp_set_ssrc(uint8_t* buf, RtpHeader* h, uint32_t ssrc) noexcept nogil:
    store32(buf + 8, ssrc)
    h.ssrc = ssrc


cdef inline void rtp_set_sequence_number(uint8_t* buf, RtpHeader* h, uint16_t seq) noexcept nogil:
    store16(buf + 2, seq)
    h.sequence_number = seq


cdef inline void rtp_set_timestamp(uint8_t* buf, RtpHeader* h, uint32_t timestamp) noexcept nogil:
    store32(buf + 4, timestamp)
    h.timestamp = timestamp


cdef inline void rtp_set_payload_type(uint8_t* buf, RtpHeader* h, uint8_t pt) noexcept nogil:
    buf[1] = (buf[1] & 0x80) | (pt & 0x7F)
    h.payload_type = pt & 0x7F


cdef inline void rtp_set_marker(uint8_t* buf, RtpHeader* h, bint marker) noexcept nogil:
    buf[1] = (buf[1] & 0x7F) | (0x80 if marker else 0)
    h.marker = marker


cdef void rtp_remap_extension_ids(uint8_t* buf, RtpHeader* h, const uint8_t* table) noexcept nogil:
    """Rewrite every indexed element's id through table[256]; 0 blanks the element.

    A blanked element becomes padding bytes (zero), which both extension formats skip, so the
    packet keeps its length. For the one-byte format the caller guarantees new ids in 1..14.
    """
    cdef int i
    cdef uint8_t new_id
    cdef Py_ssize_t start
    cdef Py_ssize_t stop
    cdef bint one_byte = rtp_is_one_byte(h.extension_profile)
    for i in range(h.element_count):
        new_id = table[h.element_ids[i]]
        if new_id == h.element_ids[i]:
            continue
        start = h.element_starts[i]
        if new_id == 0:
            stop = h.element_offsets[i] + h.element_lengths[i]
            memset(buf + start, 0, stop - start)
        elif one_byte:
            buf[start] = (new_id << 4) | (buf[start] & 0x0F)
        else:
            buf[start] = new_id
        h.element_ids[i] = new_id
    if one_byte or rtp_is_two_byte(h.extension_profile):
        _rtp_compact_index(h)


cdef void _rtp_compact_index(RtpHeader* h) noexcept nogil:
    cdef int i
    cdef int kept = 0
    for i in range(h.element_count):
        if h.element_ids[i] == 0:
            continue
        h.element_ids[kept] = h.element_ids[i]
        h.element_starts[kept] = h.element_starts[i]
        h.element_offsets[kept] = h.element_offsets[i]
        h.element_lengths[kept] = h.element_lengths[i]
        kept += 1
    h.element_count = kept


# --- typed readers of common extensions; each returns 1 if present and well-formed, 0 if absent,
# --- -1 if present with the wrong size.

cdef inline int rtp_read_audio_level(const uint8_t* buf, const RtpHeader* h, uint8_t ext_id,
                                     bint* voice, uint8_t* level) noexcept nogil:
    cdef Py_ssize_t off, length
    if not rtp_find_extension(h, ext_id, &off, &length):
        return 0
    if length != 1:
        return -1
    voice[0] = buf[off] >> 7
    level[0] = buf[off] & 0x7F
    return 1


cdef inline int rtp_read_abs_send_time(const uint8_t* buf, const RtpHeader* h, uint8_t ext_id,
                                       uint32_t* value) noexcept nogil:
    cdef Py_ssize_t off, length
    if not rtp_find_extension(h, ext_id, &off, &length):
        return 0
    if length != 3:
        return -1
    value[0] = load24(buf + off)
    return 1


cdef inline int rtp_read_transport_seq(const uint8_t* buf, const RtpHeader* h, uint8_t ext_id,
                                       uint16_t* value) noexcept nogil:
    cdef Py_ssize_t off, length
    if not rtp_find_extension(h, ext_id, &off, &length):
        return 0
    if length != 2:
        return -1
    value[0] = load16(buf + off)
    return 1


cdef inline int rtp_write_transport_seq(uint8_t* buf, const RtpHeader* h, uint8_t ext_id,
                                        uint16_t value) noexcept nogil:
    cdef Py_ssize_t off, length
    if not rtp_find_extension(h, ext_id, &off, &length):
        return 0
    if length != 2:
        return -1
    store16(buf + off, value)
    return 1


cdef inline int rtp_write_abs_send_time(uint8_t* buf, const RtpHeader* h, uint8_t ext_id,
                                        uint32_t value) noexcept nogil:
    cdef Py_ssize_t off, length
    if not rtp_find_extension(h, ext_id, &off, &length):
        return 0
    if length != 3:
        return -1
    store24(buf + off, value)
    return 1


# --- Python API --------------------------------------------------------------------------------

cdef object _rtp_error(int code, const uint8_t* buf, Py_ssize_t size, const RtpHeader* h):
    cdef Py_ssize_t pos = RTP_HEADER_SIZE + 4 * h.csrc_count
    if code == RTP_ERR_TOO_SHORT:
        return ValueError(f"RTP packet length is less than 12 bytes ({size} bytes)")
    if code == RTP_ERR_VERSION:
        return ValueError(f"RTP packet has version {buf[0] >> 6}, expected 2")
    if code == RTP_ERR_CSRC_TRUNCATED:
        return ValueError(
            f"RTP packet has {h.csrc_count} CSRCs ({4 * h.csrc_count} bytes) but only "
            f"{size - RTP_HEADER_SIZE} bytes follow the fixed header")
    if code == RTP_ERR_EXTENSION_HEADER_TRUNCATED:
        return ValueError("RTP header extension header is truncated "
                          f"({size - pos} of 4 bytes)")
    if code == RTP_ERR_EXTENSION_TRUNCATED:
        return ValueError(
            f"RTP header extension length ({load16(buf + pos + 2)} words) exceeds the "
            f"{size - pos - 4} bytes left")
    if code == RTP_ERR_ELEMENT_TRUNCATED:
        if h.bad_element_length < 0:
            return ValueError(f"RTP two-byte header extension element {h.bad_element_id} "
                              "has no length byte")
        return ValueError(f"RTP header extension element {h.bad_element_id} of "
                          f"{h.bad_element_length} bytes overruns the "
                          f"{h.extension_length}-byte extension block")
    if code == RTP_ERR_TOO_MANY_ELEMENTS:
        return ValueError(f"RTP packet has more than {RTP_MAX_EXTENSIONS} header extension elements")
    if code == RTP_ERR_PADDING_ZERO:
        return ValueError("RTP padding length is zero")
    if code == RTP_ERR_PADDING_OVERFLOW:
        return ValueError(
            f"RTP padding length {buf[size - 1] if size > h.payload_offset else 0} exceeds the "
            f"{size - h.payload_offset}-byte payload")
    return ValueError(f"RTP packet is invalid (error {code})")


cdef class RtpPacket:
    """A parsed RTP packet over a private, mutable copy of its bytes."""

    cdef bytearray _data
    cdef RtpHeader _h

    def __cinit__(self):
        self._data = bytearray()

    @staticmethod
    def parse(data) -> RtpPacket:
        cdef RtpPacket packet = RtpPacket.__new__(RtpPacket)
        packet._data = bytearray(data)
        cdef uint8_t* buf = packet._buf()
        cdef Py_ssize_t size = len(packet._data)
        cdef int err = rtp_parse(buf, size, &packet._h)
        if err:
            raise _rtp_error(err, buf, size, &packet._h)
        return packet

    @staticmethod
    def build(*, int payload_type, int sequence_number, timestamp, ssrc,
              bint marker=False, csrcs=(), extensions=(), extension_profile=None,
              payload=b"", int padding_size=0) -> RtpPacket:
        """Serialize an RTP packet from its fields and parse it back.

        extensions is a sequence of (id, data); the one-byte format is used when every id is
        in 1..14 and every element is 1..16 bytes, the two-byte format otherwise, unless
        extension_profile names another (opaque) profile whose block is given as one element
        with id 0.
        """
        header = _rtp_build_fixed(payload_type, sequence_number, timestamp, ssrc, marker,
                                  list(csrcs), bool(extensions) or extension_profile is not None,
                                  padding_size > 0)
        block = _rtp_build_extensions(list(extensions), extension_profile)
        if not 0 <= padding_size <= 255:
            raise ValueError(f"RTP padding size {padding_size} is outside 0..255")
        padding = b""
        if padding_size:
            padding = bytes(padding_size - 1) + bytes([padding_size])
        return RtpPacket.parse(header + block + bytes(payload) + padding)

    cdef inline uint8_t* _buf(self):
        return <uint8_t*>(<char*>self._data)

    # header fields
    @property
    def version(self) -> int:
        return 2

    @property
    def padding(self) -> bool:
        return bool(self._h.has_padding)

    @property
    def extension(self) -> bool:
        return bool(self._h.has_extension)

    @property
    def marker(self) -> bool:
        return bool(self._h.marker)

    @marker.setter
    def marker(self, bint value):
        rtp_set_marker(self._buf(), &self._h, value)

    @property
    def payload_type(self) -> int:
        return self._h.payload_type

    @payload_type.setter
    def payload_type(self, int value):
        if not 0 <= value <= 127:
            raise ValueError(f"RTP payload type {value} is outside 0..127")
        rtp_set_payload_type(self._buf(), &self._h, value)

    @property
    def sequence_number(self) -> int:
        return self._h.sequence_number

    @sequence_number.setter
    def sequence_number(self, int value):
        if not 0 <= value <= 0xFFFF:
            raise ValueError(f"RTP sequence number {value} is outside 0..65535")
        rtp_set_sequence_number(self._buf(), &self._h, value)

    @property
    def timestamp(self) -> int:
        return self._h.timestamp

    @timestamp.setter
    def timestamp(self, value):
        rtp_set_timestamp(self._buf(), &self._h, _u32(value, "timestamp"))

    @property
    def ssrc(self) -> int:
        return self._h.ssrc

    @ssrc.setter
    def ssrc(self, value):
        rtp_set_ssrc(self._buf(), &self._h, _u32(value, "SSRC"))

    @property
    def csrcs(self) -> list:
        cdef uint8_t* buf = self._buf()
        return [load32(buf + RTP_HEADER_SIZE + 4 * i) for i in range(self._h.csrc_count)]

    @property
    def extension_profile(self):
        return self._h.extension_profile if self._h.has_extension else None

    @property
    def extensions(self) -> list:
        """Extension elements as (id, data) in packet order; an opaque profile gives (0, block)."""
        cdef uint8_t* buf = self._buf()
        cdef int i
        if not self._h.has_extension:
            return []
        if not (rtp_is_one_byte(self._h.extension_profile)
                or rtp_is_two_byte(self._h.extension_profile)):
            return [(0, bytes(self._data[self._h.extension_offset:
                                         self._h.extension_offset + self._h.extension_length]))]
        return [
            (self._h.element_ids[i],
             PyBytes_FromStringAndSize(<char*>buf + self._h.element_offsets[i],
                                       self._h.element_lengths[i]))
            for i in range(self._h.element_count)
        ]

    def get_extension(self, int ext_id):
        cdef Py_ssize_t off, length
        if not 0 < ext_id < 256 or not rtp_find_extension(&self._h, ext_id, &off, &length):
            return None
        return PyBytes_FromStringAndSize(<char*>self._buf() + off, length)

    @property
    def payload(self) -> bytes:
        return bytes(self._data[self._h.payload_offset:self._h.payload_offset + self._h.payload_length])

    @property
    def payload_offset(self) -> int:
        return self._h.payload_offset

    @property
    def padding_size(self) -> int:
        return self._h.padding_length

    # rewriting
    def rewrite(self, *, ssrc=None, sequence_number=None, timestamp=None, payload_type=None):
        """Rewrite the forwarding fields in place (what an SFU changes per consumer)."""
        if ssrc is not None:
            self.ssrc = ssrc
        if sequence_number is not None:
            self.sequence_number = sequence_number
        if timestamp is not None:
            self.timestamp = timestamp
        if payload_type is not None:
            self.payload_type = payload_type

    def remap_extension_ids(self, mapping) -> None:
        """Rewrite extension ids in place: {old: new}; new 0 removes the element."""
        cdef uint8_t table[256]
        cdef int i
        for i in range(256):
            table[i] = i
        one_byte = rtp_is_one_byte(self._h.extension_profile)
        for old, new in mapping.items():
            if not 1 <= old <= 255:
                raise ValueError(f"RTP extension id {old} is outside 1..255")
            if one_byte and not (new == 0 or 1 <= new <= 14):
                raise ValueError(f"RTP one-byte extension id {new} is outside 1..14")
            if not 0 <= new <= 255:
                raise ValueError(f"RTP extension id {new} is outside 0..255")
            table[old] = new
        rtp_remap_extension_ids(self._buf(), &self._h, table)

    # typed extension readers
    def mid(self, int ext_id):
        """The MID (RFC 8843) carried in extension ext_id, or None."""
        return _ext_text(self.get_extension(ext_id), "MID")

    def rid(self, int ext_id):
        """The RtpStreamId or RepairedRtpStreamId (RFC 8852) in extension ext_id, or None."""
        return _ext_text(self.get_extension(ext_id), "RID")

    def audio_level(self, int ext_id):
        """(voice activity, level in -dBov 0..127) from RFC 6464, or None."""
        cdef bint voice
        cdef uint8_t level
        cdef int found = rtp_read_audio_level(self._buf(), &self._h, _ext_id(ext_id), &voice, &level)
        if found < 0:
            raise ValueError("RTP audio level extension must be 1 byte")
        return (bool(voice), level) if found else None

    def abs_send_time(self, int ext_id):
        """The 24-bit 6.18 fixed-point abs-send-time, or None."""
        cdef uint32_t value
        cdef int found = rtp_read_abs_send_time(self._buf(), &self._h, _ext_id(ext_id), &value)
        if found < 0:
            raise ValueError("RTP abs-send-time extension must be 3 bytes")
        return value if found else None

    def transport_sequence_number(self, int ext_id):
        """The transport-wide sequence number (transport-cc), or None."""
        cdef uint16_t value
        cdef int found = rtp_read_transport_seq(self._buf(), &self._h, _ext_id(ext_id), &value)
        if found < 0:
            raise ValueError("RTP transport-wide sequence number extension must be 2 bytes")
        return value if found else None

    def set_transport_sequence_number(self, int ext_id, int value) -> bool:
        if not 0 <= value <= 0xFFFF:
            raise ValueError(f"transport-wide sequence number {value} is outside 0..65535")
        cdef int found = rtp_write_transport_seq(self._buf(), &self._h, _ext_id(ext_id), value)
        if found < 0:
            raise ValueError("RTP transport-wide sequence number extension must be 2 bytes")
        return found == 1

    def set_abs_send_time(self, int ext_id, value) -> bool:
        cdef uint32_t v = _u32(value, "abs-send-time")
        if v > 0xFFFFFF:
            raise ValueError(f"abs-send-time {value} is outside 0..16777215")
        cdef int found = rtp_write_abs_send_time(self._buf(), &self._h, _ext_id(ext_id), v)
        if found < 0:
            raise ValueError("RTP abs-send-time extension must be 3 bytes")
        return found == 1

    # serialization
    def serialize(self) -> bytes:
        return bytes(self._data)

    def __bytes__(self):
        return bytes(self._data)

    def __len__(self):
        return len(self._data)

    def __eq__(self, other):
        if not isinstance(other, RtpPacket):
            return NotImplemented
        return self._data == (<RtpPacket>other)._data

    def __hash__(self):
        return hash(bytes(self._data))

    def __repr__(self):
        return (f"RtpPacket(pt={self._h.payload_type}, seq={self._h.sequence_number}, "
                f"ts={self._h.timestamp}, ssrc={self._h.ssrc:#010x}, marker={bool(self._h.marker)}, "
                f"payload={self._h.payload_length} bytes)")


cdef uint8_t _ext_id(int ext_id) except? 0:
    if not 1 <= ext_id <= 255:
        raise ValueError(f"RTP extension id {ext_id} is outside 1..255")
    return <uint8_t>ext_id


cdef uint32_t _u32(object value, str name) except? 0xFFFFFFFF:
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"RTP {name} {value} is outside 0..4294967295")
    return <uint32_t>value


cdef object _ext_text(object data, str name):
    if data is None:
        return None
    # Senders may pad the element with trailing NULs; the identifier itself is ASCII.
    text = data.rstrip(b"\x00")
    try:
        return text.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError(f"RTP {name} extension is not ASCII: {data!r}") from None


cdef bytes _rtp_build_fixed(int payload_type, int sequence_number, object timestamp, object ssrc,
                            bint marker, list csrcs, bint extension, bint padding):
    if not 0 <= payload_type <= 127:
        raise ValueError(f"RTP payload type {payload_type} is outside 0..127")
    if not 0 <= sequence_number <= 0xFFFF:
        raise ValueError(f"RTP sequence number {sequence_number} is outside 0..65535")
    if len(csrcs) > 15:
        raise ValueError(f"RTP packet can carry at most 15 CSRCs, got {len(csrcs)}")
    cdef bytearray out = bytearray(RTP_HEADER_SIZE + 4 * len(csrcs))
    cdef uint8_t* p = <uint8_t*>(<char*>out)
    cdef Py_ssize_t i  # typed: with a Python int index, p + ... + 4 * i is bytes + int
    p[0] = 0x80 | (0x20 if padding else 0) | (0x10 if extension else 0) | len(csrcs)
    p[1] = (0x80 if marker else 0) | payload_type
    store16(p + 2, sequence_number)
    store32(p + 4, _u32(timestamp, "timestamp"))
    store32(p + 8, _u32(ssrc, "SSRC"))
    for i, csrc in enumerate(csrcs):
        store32(p + RTP_HEADER_SIZE + 4 * i, _u32(csrc, "CSRC"))
    return bytes(out)


cdef bytes _rtp_build_extensions(list extensions, object profile):
    if not extensions and profile is None:
        return b""
    if profile is None:
        one_byte = all(1 <= i <= 14 and 1 <= len(d) <= 16 for i, d in extensions)
        profile = RTP_ONE_BYTE_PROFILE if one_byte else RTP_TWO_BYTE_PROFILE
    if not 0 <= profile <= 0xFFFF:
        raise ValueError(f"RTP extension profile {profile} is outside 0..65535")
    body = bytearray()
    if profile == RTP_ONE_BYTE_PROFILE:
        for ext_id, data in extensions:
            if not 1 <= ext_id <= 14 or not 1 <= len(data) <= 16:
                raise ValueError(
                    f"RTP one-byte extension element needs id 1..14 and 1..16 bytes, "
                    f"got id {ext_id} with {len(data)} bytes")
            body.append((ext_id << 4) | (len(data) - 1))
            body += data
    elif (profile & 0xFFF0) == RTP_TWO_BYTE_PROFILE:
        for ext_id, data in extensions:
            if not 1 <= ext_id <= 255 or len(data) > 255:
                raise ValueError(
                    f"RTP two-byte extension element needs id 1..255 and at most 255 bytes, "
                    f"got id {ext_id} with {len(data)} bytes")
            body += bytes([ext_id, len(data)])
            body += data
    else:
        if len(extensions) != 1 or extensions[0][0] != 0:
            raise ValueError("an opaque RTP extension profile takes one (0, block) element")
        body += extensions[0][1]
        if len(body) % 4:
            raise ValueError("an opaque RTP extension block must be a multiple of 4 bytes")
    body += bytes((4 - len(body) % 4) % 4)
    if len(body) // 4 > 0xFFFF:
        raise ValueError("RTP header extension block is too long")
    head = bytearray(4)
    store16(<uint8_t*>(<char*>head), profile)
    store16(<uint8_t*>(<char*>head) + 2, len(body) // 4)
    return bytes(head + body)
