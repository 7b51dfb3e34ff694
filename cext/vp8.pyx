# VP8 RTP payload descriptor (RFC 7741 section 4.2): parse, rewrite in place, keyframe bit.
#
#  0 1 2 3 4 5 6 7
# |X|R|N|S|R| PID |        X: extension present, N: non-reference, S: start of partition
# |I|L|T|K| RSV   |        (if X) I: PictureID, L: TL0PICIDX, T: TID, K: KEYIDX
# |M| PictureID   |        (if I) M: 15-bit PictureID, next byte holds the low 8 bits
# |  TL0PICIDX    |        (if L)
# |TID|Y| KEYIDX  |        (if T or K)

cdef enum Vp8Error:
    VP8_ERR_EMPTY = -1
    VP8_ERR_EXTENSION_TRUNCATED = -2
    VP8_ERR_PICTURE_ID_TRUNCATED = -3
    VP8_ERR_TL0PICIDX_TRUNCATED = -4
    VP8_ERR_TID_TRUNCATED = -5
    VP8_ERR_NO_PAYLOAD_HEADER = -6

cdef struct Vp8Descriptor:
    uint8_t size                # bytes of descriptor before the VP8 payload
    uint8_t non_reference
    uint8_t start_of_partition
    uint8_t partition_index
    uint8_t has_picture_id
    uint8_t picture_id_15bit
    uint16_t picture_id
    uint8_t has_tl0picidx
    uint8_t tl0picidx
    uint8_t has_tid
    uint8_t tid
    uint8_t layer_sync
    uint8_t has_keyidx
    uint8_t keyidx
    uint8_t keyframe            # start of partition 0 whose VP8 payload header has P = 0
    uint8_t picture_id_offset
    uint8_t tl0picidx_offset


cdef int vp8_parse(const uint8_t* buf, Py_ssize_t size, Vp8Descriptor* d) noexcept nogil:
    """Parse the descriptor at the start of an RTP payload. Returns 0 or a negative Vp8Error."""
    cdef Py_ssize_t pos = 1
    cdef uint8_t ext
    memset(d, 0, sizeof(Vp8Descriptor))
    if size < 1:
        return VP8_ERR_EMPTY
    d.non_reference = (buf[0] >> 5) & 1
    d.start_of_partition = (buf[0] >> 4) & 1
    d.partition_index = buf[0] & 0x07
    if buf[0] & 0x80:
        if size < 2:
            return VP8_ERR_EXTENSION_TRUNCATED
        ext = buf[1]
        pos = 2
        if ext & 0x80:
            if pos >= size:
                return VP8_ERR_PICTURE_ID_TRUNCATED
            d.has_picture_id = 1
            d.picture_id_offset = <uint8_t>pos
            if buf[pos] & 0x80:
                if pos + 2 > size:
                    return VP8_ERR_PICTURE_ID_TRUNCATED
                d.picture_id_15bit = 1
                d.picture_id = ((buf[pos] & 0x7F) << 8) | buf[pos + 1]
                pos += 2
            else:
                d.picture_id = buf[pos] & 0x7F
                pos += 1
        if ext & 0x40:
            if pos >= size:
                return VP8_ERR_TL0PICIDX_TRUNCATED
            d.has_tl0picidx = 1
            d.tl0picidx_offset = <uint8_t>pos
            d.tl0picidx = buf[pos]
            pos += 1
        if ext & 0x30:
            if pos >= size:
                return VP8_ERR_TID_TRUNCATED
            d.has_tid = (ext >> 5) & 1
            d.has_keyidx = (ext >> 4) & 1
            d.tid = buf[pos] >> 6
            d.layer_sync = (buf[pos] >> 5) & 1
            d.keyidx = buf[pos] & 0x1F
            pos += 1
    d.size = <uint8_t>pos
    if d.start_of_partition and d.partition_index == 0:
        if pos >= size:
            return VP8_ERR_NO_PAYLOAD_HEADER
        d.keyframe = (buf[pos] & 0x01) == 0
    return 0


cdef inline void vp8_set_picture_id(uint8_t* buf, const Vp8Descriptor* d, uint16_t picture_id) noexcept nogil:
    """Rewrite the PictureID in place, keeping the field's width (7 or 15 bits)."""
    if not d.has_picture_id:
        return
    if d.picture_id_15bit:
        buf[d.picture_id_offset] = 0x80 | ((picture_id >> 8) & 0x7F)
        buf[d.picture_id_offset + 1] = picture_id & 0xFF
    else:
        buf[d.picture_id_offset] = picture_id & 0x7F


cdef inline void vp8_set_tl0picidx(uint8_t* buf, const Vp8Descriptor* d, uint8_t tl0picidx) noexcept nogil:
    if d.has_tl0picidx:
        buf[d.tl0picidx_offset] = tl0picidx


cdef object _vp8_error(int code, Py_ssize_t size):
    messages = {
        VP8_ERR_EMPTY: "VP8 payload is empty",
        VP8_ERR_EXTENSION_TRUNCATED: "VP8 payload descriptor has X set but no extension byte",
        VP8_ERR_PICTURE_ID_TRUNCATED: "VP8 payload descriptor PictureID is truncated",
        VP8_ERR_TL0PICIDX_TRUNCATED: "VP8 payload descriptor TL0PICIDX is truncated",
        VP8_ERR_TID_TRUNCATED: "VP8 payload descriptor TID/KEYIDX byte is truncated",
        VP8_ERR_NO_PAYLOAD_HEADER: "VP8 payload has no data after the descriptor "
                                   "at the start of partition 0",
    }
    return ValueError(f"{messages.get(code, 'VP8 payload is invalid')} ({size} bytes)")


cdef class Vp8PayloadDescriptor:
    """The parsed descriptor of one VP8 RTP payload."""

    cdef Vp8Descriptor _d

    @staticmethod
    def parse(payload) -> Vp8PayloadDescriptor:
        cdef const uint8_t[:] view = _readonly_view(payload)
        cdef Vp8PayloadDescriptor self = Vp8PayloadDescriptor.__new__(Vp8PayloadDescriptor)
        cdef Py_ssize_t size = view.shape[0]
        cdef int err = vp8_parse(&view[0] if size else NULL, size, &self._d)
        if err:
            raise _vp8_error(err, size)
        return self

    @staticmethod
    def build(*, bint non_reference=False, bint start_of_partition=True, int partition_index=0,
              picture_id=None, bint picture_id_15bit=True, tl0picidx=None, tid=None,
              bint layer_sync=False, keyidx=None) -> bytes:
        """Serialize a descriptor (without the VP8 payload that follows it)."""
        if not 0 <= partition_index <= 7:
            raise ValueError(f"VP8 partition index {partition_index} is outside 0..7")
        ext = ((0x80 if picture_id is not None else 0) | (0x40 if tl0picidx is not None else 0)
               | (0x20 if tid is not None else 0) | (0x10 if keyidx is not None else 0))
        out = bytearray([(0x80 if ext else 0) | (0x20 if non_reference else 0)
                         | (0x10 if start_of_partition else 0) | partition_index])
        if ext:
            out.append(ext)
        if picture_id is not None:
            limit = 0x7FFF if picture_id_15bit else 0x7F
            if not 0 <= picture_id <= limit:
                raise ValueError(f"VP8 PictureID {picture_id} is outside 0..{limit}")
            if picture_id_15bit:
                out += bytes([0x80 | (picture_id >> 8), picture_id & 0xFF])
            else:
                out.append(picture_id)
        if tl0picidx is not None:
            if not 0 <= tl0picidx <= 255:
                raise ValueError(f"VP8 TL0PICIDX {tl0picidx} is outside 0..255")
            out.append(tl0picidx)
        if tid is not None or keyidx is not None:
            t = tid or 0
            k = keyidx or 0
            if not 0 <= t <= 3 or not 0 <= k <= 31:
                raise ValueError(f"VP8 TID {t} / KEYIDX {k} is outside 0..3 / 0..31")
            out.append((t << 6) | (0x20 if layer_sync else 0) | k)
        return bytes(out)

    @property
    def size(self) -> int:
        return self._d.size

    @property
    def non_reference(self) -> bool:
        return bool(self._d.non_reference)

    @property
    def start_of_partition(self) -> bool:
        return bool(self._d.start_of_partition)

    @property
    def partition_index(self) -> int:
        return self._d.partition_index

    @property
    def picture_id(self):
        return self._d.picture_id if self._d.has_picture_id else None

    @property
    def picture_id_15bit(self) -> bool:
        return bool(self._d.picture_id_15bit)

    @property
    def tl0picidx(self):
        return self._d.tl0picidx if self._d.has_tl0picidx else None

    @property
    def tid(self):
        return self._d.tid if self._d.has_tid else None

    @property
    def layer_sync(self) -> bool:
        return bool(self._d.layer_sync)

    @property
    def keyidx(self):
        return self._d.keyidx if self._d.has_keyidx else None

    @property
    def keyframe(self) -> bool:
        return bool(self._d.keyframe)

    def __repr__(self):
        return (f"Vp8PayloadDescriptor(size={self.size}, picture_id={self.picture_id}, "
                f"tl0picidx={self.tl0picidx}, tid={self.tid}, keyframe={self.keyframe})")


def vp8_rewrite(bytearray payload, *, picture_id=None, tl0picidx=None) -> None:
    """Rewrite PictureID and/or TL0PICIDX of a VP8 payload in place (fields must be present)."""
    cdef Vp8Descriptor d
    cdef Py_ssize_t size = len(payload)
    cdef uint8_t* buf = <uint8_t*>(<char*>payload)
    cdef int err = vp8_parse(buf, size, &d)
    if err:
        raise _vp8_error(err, size)
    # validate everything before writing anything: a failed call leaves the payload unchanged
    if picture_id is not None:
        if not d.has_picture_id:
            raise ValueError("VP8 payload descriptor has no PictureID to rewrite")
        limit = 0x7FFF if d.picture_id_15bit else 0x7F
        if not 0 <= picture_id <= limit:
            raise ValueError(f"VP8 PictureID {picture_id} is outside 0..{limit}")
    if tl0picidx is not None:
        if not d.has_tl0picidx:
            raise ValueError("VP8 payload descriptor has no TL0PICIDX to rewrite")
        if not 0 <= tl0picidx <= 255:
            raise ValueError(f"VP8 TL0PICIDX {tl0picidx} is outside 0..255")
    if picture_id is not None:
        vp8_set_picture_id(buf, &d, picture_id)
    if tl0picidx is not None:
        vp8_set_tl0picidx(buf, &d, tl0picidx)


cdef const uint8_t[:] _readonly_view(object data):
    if isinstance(data, (bytes, bytearray, memoryview)):
        return memoryview(data).cast("B")
    raise TypeError(f"expected bytes-like payload, got {type(data).__name__}")
