# H.264 RTP payloads (RFC 6184, packetization-mode 1): keyframe detection.
#
# A payload starts a keyframe when it carries an IDR slice (NAL type 5) or a sequence parameter
# set (7), which encoders send just before an IDR; in an FU-A only the first fragment counts.

cdef enum:
    H264_NAL_IDR = 5
    H264_NAL_SPS = 7
    H264_STAP_A = 24
    H264_FU_A = 28
    H264_MAX_NALS = 64

cdef enum H264Error:
    H264_ERR_EMPTY = -1
    H264_ERR_STAP_TRUNCATED = -2
    H264_ERR_STAP_EMPTY_NAL = -3
    H264_ERR_FU_TRUNCATED = -4
    H264_ERR_UNSUPPORTED_TYPE = -5
    H264_ERR_TOO_MANY_NALS = -6


cdef int h264_nal_types(const uint8_t* buf, Py_ssize_t size, uint8_t* types,
                        int* count, bint* fragment_start) noexcept nogil:
    """List the NAL unit types a payload carries (for FU-A: the fragmented NAL's type)."""
    cdef uint8_t nal_type
    cdef Py_ssize_t pos
    cdef Py_ssize_t nal_size
    count[0] = 0
    fragment_start[0] = 1
    if size < 1:
        return H264_ERR_EMPTY
    nal_type = buf[0] & 0x1F
    if 1 <= nal_type <= 23:
        types[0] = nal_type
        count[0] = 1
        return 0
    if nal_type == H264_STAP_A:
        pos = 1
        while pos < size:
            if pos + 2 > size:
                return H264_ERR_STAP_TRUNCATED
            nal_size = load16(buf + pos)
            pos += 2
            if nal_size == 0:
                return H264_ERR_STAP_EMPTY_NAL
            if pos + nal_size > size:
                return H264_ERR_STAP_TRUNCATED
            if count[0] >= H264_MAX_NALS:
                return H264_ERR_TOO_MANY_NALS
            types[count[0]] = buf[pos] & 0x1F
            count[0] += 1
            pos += nal_size
        if count[0] == 0:
            return H264_ERR_STAP_TRUNCATED
        return 0
    if nal_type == H264_FU_A:
        if size < 3:
            return H264_ERR_FU_TRUNCATED
        types[0] = buf[1] & 0x1F
        count[0] = 1
        fragment_start[0] = (buf[1] >> 7) & 1
        return 0
    return H264_ERR_UNSUPPORTED_TYPE


cdef int h264_is_keyframe(const uint8_t* buf, Py_ssize_t size) noexcept nogil:
    """1 if the payload starts a keyframe, 0 if not, a negative H264Error if malformed."""
    cdef uint8_t types[H264_MAX_NALS]
    cdef int count
    cdef bint start
    cdef int i
    cdef int err = h264_nal_types(buf, size, types, &count, &start)
    if err:
        return err
    if not start:
        return 0
    for i in range(count):
        if types[i] == H264_NAL_IDR or types[i] == H264_NAL_SPS:
            return 1
    return 0


cdef object _h264_error(int code, const uint8_t* buf, Py_ssize_t size):
    if code == H264_ERR_EMPTY:
        return ValueError("H.264 payload is empty")
    if code == H264_ERR_STAP_TRUNCATED:
        return ValueError(f"H.264 STAP-A aggregation unit is truncated ({size} bytes)")
    if code == H264_ERR_STAP_EMPTY_NAL:
        return ValueError("H.264 STAP-A holds a NAL unit of size 0")
    if code == H264_ERR_FU_TRUNCATED:
        return ValueError(f"H.264 FU-A payload is truncated ({size} bytes, needs at least 3)")
    if code == H264_ERR_UNSUPPORTED_TYPE:
        return ValueError(
            f"H.264 NAL type {buf[0] & 0x1F} is not allowed in packetization-mode 1")
    if code == H264_ERR_TOO_MANY_NALS:
        return ValueError(f"H.264 STAP-A holds more than {H264_MAX_NALS} NAL units")
    return ValueError(f"H.264 payload is invalid (error {code})")


def h264_payload_nal_types(payload) -> list:
    """The NAL unit types an H.264 RTP payload carries (FU-A: the fragmented NAL's type)."""
    cdef const uint8_t[:] view = _readonly_view(payload)
    cdef Py_ssize_t size = view.shape[0]
    cdef const uint8_t* buf = &view[0] if size else NULL
    cdef uint8_t types[H264_MAX_NALS]
    cdef int count
    cdef bint start
    cdef int err = h264_nal_types(buf, size, types, &count, &start)
    if err:
        raise _h264_error(err, buf, size)
    return [types[i] for i in range(count)]


def h264_keyframe(payload) -> bool:
    """True if this H.264 RTP payload starts a keyframe (IDR or SPS; FU-A start fragment)."""
    cdef const uint8_t[:] view = _readonly_view(payload)
    cdef Py_ssize_t size = view.shape[0]
    cdef const uint8_t* buf = &view[0] if size else NULL
    cdef int result = h264_is_keyframe(buf, size)
    if result < 0:
        raise _h264_error(result, buf, size)
    return result == 1
