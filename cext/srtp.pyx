# SRTP and SRTCP (RFC 3711; AES-GCM: RFC 7714) on libsrtp2, keyed by DTLS-SRTP (RFC 5764).
#
# An SrtpSession is one libsrtp context for one direction: outbound (protect) or inbound
# (unprotect), matching every SSRC (ssrc_any_outbound / ssrc_any_inbound), replay protection on.
# The C level works in place on a caller's buffer, which must have room for the trailer:
# capacity >= *length + SRTP_MAX_TRAILER_LEN (SRTCP adds a 4-byte index, which fits in that
# margin because no MKI is used). The Python methods copy into a private buffer and hold the GIL;
# a session is not thread-safe.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport uint8_t
from libc.string cimport memcpy, memset

cimport srtp2

from enum import IntEnum

cdef enum:
    SRTCP_INDEX_LEN = 4          # E flag + 31-bit SRTCP index, before the tag
    SRTP_RTP_HEADER_LEN = 12
    SRTP_RTCP_HEADER_LEN = 8
    SRTP_PACKET_MAX = 65535      # the Python methods refuse anything longer than a UDP payload
    SRTP_WINDOW_MIN = 64         # libsrtp's bounds for the replay window
    SRTP_WINDOW_MAX = 0x7FFF

cdef enum SrtpOp:
    SRTP_OP_PROTECT_RTP
    SRTP_OP_UNPROTECT_RTP
    SRTP_OP_PROTECT_RTCP
    SRTP_OP_UNPROTECT_RTCP

SRTP_MAX_TRAILER_LEN = srtp2.SRTP_MAX_TRAILER_LEN


class SrtpProfile(IntEnum):
    """DTLS-SRTP protection profiles (IANA ids, RFC 5764 / RFC 7714)."""

    AES_CM_128_HMAC_SHA1_80 = 1
    AEAD_AES_128_GCM = 7


# (master key length, master salt length) per profile.
_SRTP_KEY_SALT_LENGTHS = {
    SrtpProfile.AES_CM_128_HMAC_SHA1_80: (16, 14),
    SrtpProfile.AEAD_AES_128_GCM: (16, 12),
}

# libsrtp status -> message, after an "SRTP " or "SRTCP " prefix.
_SRTP_STATUS_MESSAGES = {
    srtp2.srtp_err_status_fail: "operation failed",
    srtp2.srtp_err_status_bad_param: "malformed packet: header runs past the end of the packet",
    srtp2.srtp_err_status_alloc_fail: "memory allocation failed",
    srtp2.srtp_err_status_init_fail: "initialisation failed",
    srtp2.srtp_err_status_auth_fail: "authentication failed",
    srtp2.srtp_err_status_cipher_fail: "cipher failure",
    srtp2.srtp_err_status_replay_fail: "replay check failed: packet already received",
    srtp2.srtp_err_status_replay_old: "replay check failed: packet too old",
    srtp2.srtp_err_status_algo_fail: "algorithm self-test failed",
    srtp2.srtp_err_status_no_such_op: "unsupported operation",
    srtp2.srtp_err_status_no_ctx: "no context for this SSRC",
    srtp2.srtp_err_status_key_expired: "key expired: too many packets under one master key",
    srtp2.srtp_err_status_parse_err: "malformed packet: header leaves no room for the auth tag",
    srtp2.srtp_err_status_pkt_idx_old: "packet index too old",
    srtp2.srtp_err_status_pkt_idx_adv: "packet index advanced too far, reset needed",
}


class SrtpError(Exception):
    """An SRTP operation failed; ``status`` is the libsrtp status (srtp_err_status_t)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


cdef bint _srtp_initialized = False


cdef int _srtp_init_once() except -1:
    global _srtp_initialized
    cdef srtp2.srtp_err_status_t status
    if not _srtp_initialized:
        status = srtp2.srtp_init()
        if status != srtp2.srtp_err_status_ok:
            raise SrtpError(f"srtp_init() failed (libsrtp status {status})", status)
        _srtp_initialized = True
    return 0


cdef object _srtp_profile(object profile):
    try:
        return SrtpProfile(profile)
    except ValueError:
        supported = ", ".join(f"{p.name} ({p.value})" for p in SrtpProfile)
        raise ValueError(f"unsupported SRTP profile {profile!r}; supported: {supported}") from None


def srtp_key_length(profile: int) -> int:
    """Bytes of master key + master salt for a profile (30 for AES-CM, 28 for AES-GCM)."""
    key_length, salt_length = _SRTP_KEY_SALT_LENGTHS[_srtp_profile(profile)]
    return key_length + salt_length


cdef inline bint _srtp_op_is_rtcp(SrtpOp op) noexcept:
    return op == SRTP_OP_PROTECT_RTCP or op == SRTP_OP_UNPROTECT_RTCP


cdef inline bint _srtp_op_is_protect(SrtpOp op) noexcept:
    return op == SRTP_OP_PROTECT_RTP or op == SRTP_OP_PROTECT_RTCP


cdef str _srtp_message(SrtpOp op, int status):
    prefix = "SRTCP" if _srtp_op_is_rtcp(op) else "SRTP"
    if _srtp_op_is_protect(op) and status == srtp2.srtp_err_status_replay_fail:
        text = ("replay check failed: this packet index was already protected "
                "(allow_repeat_tx is off)")
    elif _srtp_op_is_protect(op) and status == srtp2.srtp_err_status_replay_old:
        text = "replay check failed: this packet index is too old to protect"
    else:
        text = _SRTP_STATUS_MESSAGES.get(status, f"error (libsrtp status {status})")
    return f"{prefix} {text}"


cdef class SrtpSession:
    """One direction of SRTP + SRTCP for every SSRC, keyed with master key || master salt."""

    cdef srtp2.srtp_t _ctx
    cdef readonly object profile
    cdef readonly bint outbound
    cdef int _rtp_min_length        # shortest SRTP packet: RTP header + auth tag
    cdef int _rtcp_min_length       # shortest SRTCP packet: RTCP header + index + auth tag

    def __cinit__(self):
        self._ctx = NULL

    def __init__(self, profile, bytes key not None, *, bint outbound, int window_size=1024,
                 bint allow_repeat_tx=False):
        cdef srtp2.srtp_policy_t policy
        cdef srtp2.srtp_t ctx = NULL
        if self._ctx != NULL:
            raise RuntimeError("SrtpSession is already initialised")
        profile = _srtp_profile(profile)
        if len(key) != srtp_key_length(profile):
            raise SrtpError(
                f"SRTP key must be {srtp_key_length(profile)} bytes for {profile.name}, "
                f"got {len(key)}", srtp2.srtp_err_status_bad_param)
        if not SRTP_WINDOW_MIN <= window_size <= SRTP_WINDOW_MAX:
            raise ValueError(f"window_size must be between {SRTP_WINDOW_MIN} and "
                             f"{SRTP_WINDOW_MAX}, got {window_size}")
        _srtp_init_once()
        self._fill_policy(&policy, profile, key, outbound, window_size, allow_repeat_tx)
        status = srtp2.srtp_create(&ctx, &policy)
        if status != srtp2.srtp_err_status_ok:
            raise SrtpError(f"SRTP session creation failed (libsrtp status {status})", status)
        self._ctx = ctx
        self.profile = profile
        self.outbound = outbound
        self._rtp_min_length = SRTP_RTP_HEADER_LEN + policy.rtp.auth_tag_len
        self._rtcp_min_length = SRTP_RTCP_HEADER_LEN + SRTCP_INDEX_LEN + policy.rtcp.auth_tag_len

    cdef int _fill_policy(self, srtp2.srtp_policy_t* policy, object profile, bytes key,
                          bint outbound, int window_size, bint allow_repeat_tx) except -1:
        cdef srtp2.srtp_profile_t libsrtp_profile = <srtp2.srtp_profile_t><int>profile
        cdef srtp2.srtp_err_status_t status
        memset(policy, 0, sizeof(srtp2.srtp_policy_t))
        status = srtp2.srtp_crypto_policy_set_from_profile_for_rtp(&policy.rtp, libsrtp_profile)
        if status == srtp2.srtp_err_status_ok:
            status = srtp2.srtp_crypto_policy_set_from_profile_for_rtcp(&policy.rtcp,
                                                                        libsrtp_profile)
        if status != srtp2.srtp_err_status_ok:
            raise SrtpError(f"this libsrtp build does not support {profile.name}", status)
        policy.ssrc.type = srtp2.ssrc_any_outbound if outbound else srtp2.ssrc_any_inbound
        policy.key = <unsigned char*>PyBytes_AS_STRING(key)   # copied by srtp_create
        policy.window_size = window_size
        policy.allow_repeat_tx = allow_repeat_tx
        policy.next = NULL
        return 0

    def __dealloc__(self):
        self._free()

    cdef void _free(self) noexcept:
        if self._ctx != NULL:
            srtp2.srtp_dealloc(self._ctx)
            self._ctx = NULL

    def close(self) -> None:
        """Free the libsrtp context; later calls raise SrtpError. Idempotent."""
        self._free()

    @property
    def closed(self) -> bool:
        return self._ctx == NULL

    # ---- C level: in place, returns the libsrtp status (0 = ok) ----

    cdef int _usable(self, bint protect) noexcept nogil:
        if self._ctx == NULL:
            return srtp2.srtp_err_status_no_ctx
        if protect != self.outbound:
            return srtp2.srtp_err_status_no_such_op
        return srtp2.srtp_err_status_ok

    cdef int protect_rtp_c(self, uint8_t* buf, int* length) noexcept nogil:
        cdef int status = self._usable(True)
        if status != srtp2.srtp_err_status_ok:
            return status
        return srtp2.srtp_protect(self._ctx, buf, length)

    cdef int unprotect_rtp_c(self, uint8_t* buf, int* length) noexcept nogil:
        cdef int status = self._usable(False)
        if status != srtp2.srtp_err_status_ok:
            return status
        if length[0] < self._rtp_min_length:
            return srtp2.srtp_err_status_bad_param
        return srtp2.srtp_unprotect(self._ctx, buf, length)

    cdef int protect_rtcp_c(self, uint8_t* buf, int* length) noexcept nogil:
        cdef int status = self._usable(True)
        if status != srtp2.srtp_err_status_ok:
            return status
        return srtp2.srtp_protect_rtcp(self._ctx, buf, length)

    cdef int unprotect_rtcp_c(self, uint8_t* buf, int* length) noexcept nogil:
        cdef int status = self._usable(False)
        if status != srtp2.srtp_err_status_ok:
            return status
        if length[0] < self._rtcp_min_length:
            return srtp2.srtp_err_status_bad_param
        return srtp2.srtp_unprotect_rtcp(self._ctx, buf, length)

    # ---- Python level: copies, raises SrtpError ----

    def protect(self, bytes rtp not None) -> bytes:
        """Encrypt and authenticate an RTP packet."""
        return self._run(SRTP_OP_PROTECT_RTP, rtp)

    def unprotect(self, bytes srtp not None) -> bytes:
        """Authenticate and decrypt an SRTP packet (replay-checked)."""
        return self._run(SRTP_OP_UNPROTECT_RTP, srtp)

    def protect_rtcp(self, bytes rtcp not None) -> bytes:
        """Encrypt and authenticate an RTCP compound packet."""
        return self._run(SRTP_OP_PROTECT_RTCP, rtcp)

    def unprotect_rtcp(self, bytes srtcp not None) -> bytes:
        """Authenticate and decrypt an SRTCP packet (replay-checked)."""
        return self._run(SRTP_OP_UNPROTECT_RTCP, srtcp)

    cdef int _apply(self, SrtpOp op, uint8_t* buf, int* length) noexcept:
        if op == SRTP_OP_PROTECT_RTP:
            return self.protect_rtp_c(buf, length)
        if op == SRTP_OP_UNPROTECT_RTP:
            return self.unprotect_rtp_c(buf, length)
        if op == SRTP_OP_PROTECT_RTCP:
            return self.protect_rtcp_c(buf, length)
        return self.unprotect_rtcp_c(buf, length)

    cdef bytes _run(self, SrtpOp op, bytes packet):
        cdef Py_ssize_t size = len(packet)
        cdef int length = <int>size
        cdef int status
        cdef uint8_t* buf
        self._check(op, size)
        # libsrtp documents SRTP_MAX_TRAILER_LEN (+ the SRTCP index) of room past the packet.
        buf = <uint8_t*>PyMem_Malloc(size + srtp2.SRTP_MAX_TRAILER_LEN + SRTCP_INDEX_LEN)
        if buf == NULL:
            raise MemoryError()
        try:
            memcpy(buf, PyBytes_AS_STRING(packet), size)
            status = self._apply(op, buf, &length)
            if status != srtp2.srtp_err_status_ok:
                raise SrtpError(_srtp_message(op, status), status)
            return PyBytes_FromStringAndSize(<char*>buf, length)
        finally:
            PyMem_Free(buf)

    cdef int _check(self, SrtpOp op, Py_ssize_t size) except -1:
        """Raise SrtpError for a closed session, the wrong direction or a bad length."""
        cdef bint protect = _srtp_op_is_protect(op)
        cdef bint rtcp = _srtp_op_is_rtcp(op)
        if self._ctx == NULL:
            raise SrtpError("SRTP session is closed", srtp2.srtp_err_status_no_ctx)
        if protect != self.outbound:
            method = ("protect" if protect else "unprotect") + ("_rtcp" if rtcp else "")
            raise SrtpError(
                f"{method}() needs an {'outbound' if protect else 'inbound'} SrtpSession, "
                f"this one is {'outbound' if self.outbound else 'inbound'}",
                srtp2.srtp_err_status_no_such_op)
        kind = ("S" if not protect else "") + ("RTCP" if rtcp else "RTP")
        if size > SRTP_PACKET_MAX:
            raise SrtpError(f"{kind} packet is too long ({size} bytes, at most {SRTP_PACKET_MAX})",
                            srtp2.srtp_err_status_bad_param)
        if size < self._min_length(op):
            raise SrtpError(f"{kind} packet is too short ({size} bytes)",
                            srtp2.srtp_err_status_bad_param)
        return 0

    cdef int _min_length(self, SrtpOp op) noexcept:
        if op == SRTP_OP_PROTECT_RTP:
            return SRTP_RTP_HEADER_LEN
        if op == SRTP_OP_UNPROTECT_RTP:
            return self._rtp_min_length
        if op == SRTP_OP_PROTECT_RTCP:
            return SRTP_RTCP_HEADER_LEN
        return self._rtcp_min_length

    def __repr__(self) -> str:
        state = "closed" if self._ctx == NULL else ("outbound" if self.outbound else "inbound")
        return f"<SrtpSession {self.profile.name if self.profile else '?'} {state}>"


def srtp_sessions_from_keying_material(bytes material not None, profile, *, bint is_client,
                                       int window_size=1024, bint allow_repeat_tx=False):
    """(outbound, inbound) sessions from the DTLS exporter output (label "EXTRACTOR-dtls_srtp").

    RFC 5764 section 4.2 lays the material out as client_key | server_key | client_salt |
    server_salt; each side sends with its own key and salt. allow_repeat_tx applies to the
    outbound session (an SFU re-protects retransmissions).
    """
    profile = _srtp_profile(profile)
    key_length, salt_length = _SRTP_KEY_SALT_LENGTHS[profile]
    expected = 2 * (key_length + salt_length)
    if len(material) != expected:
        raise SrtpError(f"DTLS-SRTP keying material must be {expected} bytes for {profile.name}, "
                        f"got {len(material)}", srtp2.srtp_err_status_bad_param)
    salts = 2 * key_length
    client = material[:key_length] + material[salts:salts + salt_length]
    server = material[key_length:salts] + material[salts + salt_length:]
    local, remote = (client, server) if is_client else (server, client)
    outbound = SrtpSession(profile, local, outbound=True, window_size=window_size,
                           allow_repeat_tx=allow_repeat_tx)
    inbound = SrtpSession(profile, remote, outbound=False, window_size=window_size)
    return outbound, inbound
