# ICE-TCP (RFC 6544) connections of a worker's data plane, framed as RFC 4571 says: each
# datagram (STUN, DTLS, SRTP, SRTCP) is preceded by its length in two bytes.
#
# A TcpConnection is one accepted connection of the worker's passive candidate. Its reads are
# drained into a buffer in large recv() calls, every complete frame is dispatched in place by
# the same code as a UDP datagram (WorkerPlane._dispatch, with the connection as the source
# instead of an address), and what the plane sends to a transport bound to a connection is
# appended, framed, to the connection's bounded send buffer and written with one send() per
# connection per batch. A reader that does not keep up fills its buffer: packets for it are
# dropped and counted (never buffered without bound, never blocking the other consumers), and
# when its buffer has drained the handler is told so that its video can restart from a
# keyframe. Python sees a connection when it is accepted, bound by ICE, recovered or closed.

from libc.errno cimport ECONNRESET, EPIPE

from sockets cimport MSG_NOSIGNAL, recv, send


cdef enum:
    TCP_READ_BUFFER = 65536              # a recv() reads up to this much (many frames)
    TCP_READ_ROUNDS = 16                 # recv() calls per readiness callback
    TCP_DEFAULT_SEND_BUFFER = 262144     # framed bytes waiting for the kernel, per connection

TCP_CLOSE_REASONS = (
    "peer_closed", "read_error", "write_error", "bad_frame", "frame_timeout", "ice_timeout",
    "send_stalled", "transport_closed", "server",
)


cdef class TcpConnection:
    """One ICE-TCP connection accepted on a worker's passive candidate."""

    cdef WorkerPlane _plane
    cdef object _sock                    # the socket.socket that owns the descriptor
    cdef object _loop
    cdef int _fd
    cdef sockaddr_storage _addr
    cdef socklen_t _addrlen
    cdef readonly object remote_address
    cdef PlaneTransport _transport       # bound by a successful ICE check on this connection
    cdef uint8_t* _rbuf
    cdef int _rlen
    cdef uint8_t* _wbuf
    cdef Py_ssize_t _wstart
    cdef Py_ssize_t _wend
    cdef readonly Py_ssize_t send_buffer_size
    cdef bint _pending                   # in the plane's list of connections to write at flush
    cdef bint _writing                   # waiting for the socket to become writable
    cdef readonly uint64_t frames_in
    cdef readonly uint64_t bytes_in
    cdef readonly uint64_t frames_out
    cdef readonly uint64_t bytes_out
    cdef readonly uint64_t dropped_full  # frames refused because the send buffer was full
    cdef uint64_t _dropped_since_recovery
    cdef readonly uint64_t opened_ms
    cdef uint64_t _partial_since_ms      # a frame has been started and not finished since
    cdef uint64_t _full_since_ms         # the send buffer has refused frames since
    cdef readonly bint closed
    cdef readonly object close_reason

    def __cinit__(self):
        self._rbuf = NULL
        self._wbuf = NULL

    def __init__(self, WorkerPlane plane not None, object sock not None, *,
                 Py_ssize_t send_buffer=TCP_DEFAULT_SEND_BUFFER):
        """Take over an accepted, non-blocking socket.socket (its descriptor is closed with
        the connection)."""
        if send_buffer < 4 * (UDP_DATAGRAM_MAX + 2):
            raise ValueError(f"send_buffer: at least {4 * (UDP_DATAGRAM_MAX + 2)} bytes")
        self._plane = plane
        self._sock = sock
        self._fd = sock.fileno()
        if self._fd < 0:
            raise ValueError("the socket is closed")
        self.remote_address = tuple(sock.getpeername()[:2])
        tuple_to_sockaddr(self.remote_address, plane._sock._family, &self._addr, &self._addrlen)
        self._rbuf = <uint8_t*>PyMem_Malloc(TCP_READ_BUFFER)
        self._wbuf = <uint8_t*>PyMem_Malloc(send_buffer)
        if self._rbuf == NULL or self._wbuf == NULL:
            raise MemoryError()
        self.send_buffer_size = send_buffer
        self.opened_ms = plane_now_ms()
        plane.tcp_connections += 1
        plane.tcp_accepted += 1

    def __dealloc__(self):
        PyMem_Free(self._rbuf)
        PyMem_Free(self._wbuf)

    @property
    def transport(self):
        """The PlaneTransport an ICE check on this connection bound, or None."""
        return self._transport

    @property
    def queued_bytes(self) -> int:
        return self._wend - self._wstart

    def start(self, loop) -> None:
        if self.closed:
            raise ValueError("the connection is closed")
        self._loop = loop
        loop.add_reader(self._fd, self._on_readable)

    def fileno(self) -> int:
        return -1 if self.closed else self._fd

    # ---- reading ----

    def _on_readable(self) -> None:
        cdef int rounds
        cdef Py_ssize_t n
        cdef int space
        for rounds in range(TCP_READ_ROUNDS):
            if self.closed:
                return
            space = TCP_READ_BUFFER - self._rlen
            n = recv(self._fd, self._rbuf + self._rlen, space, MSG_DONTWAIT)
            if n == 0:
                self.close("peer_closed")
                return
            if n < 0:
                if errno == EAGAIN or errno == EINTR:   # EWOULDBLOCK is EAGAIN on Linux
                    return
                self.close("read_error")
                return
            self._rlen += <int>n
            self.bytes_in += <uint64_t>n
            if not self._frames():
                return
            if n < space:
                return

    cdef bint _frames(self):
        """Dispatch every complete frame in the read buffer; False if the connection closed."""
        cdef WorkerPlane plane = self._plane
        cdef int pos = 0
        cdef int length
        cdef int count = 0
        cdef uint64_t now = plane_now_ms()
        plane._batch_start_ns = plane_now_ns()
        plane._source = self
        try:
            while self._rlen - pos >= 2:
                length = load16(self._rbuf + pos)
                if length == 0 or length > UDP_RECV_MAX:
                    # RFC 4571 allows 65535, but nothing this server accepts is larger than a
                    # UDP datagram: garbage or an attack, and the stream cannot be resynchronised
                    plane.tcp_bad_frames += 1
                    self.close("bad_frame")
                    return False
                if self._rlen - pos - 2 < length:
                    break
                self.frames_in += 1
                count += 1
                # in place: unprotect and RTX unwrapping only shorten the frame
                plane._dispatch(self._rbuf + pos + 2, length, &self._addr, now)
                pos += 2 + length
                if self.closed:
                    return False
        finally:
            plane._source = None
            plane.received += count
            plane._flush()
            plane._batch_start_ns = 0
        if pos:
            memmove(self._rbuf, self._rbuf + pos, self._rlen - pos)
            self._rlen -= pos
            self._partial_since_ms = now if self._rlen else 0
        elif self._rlen and self._partial_since_ms == 0:
            self._partial_since_ms = now
        return True

    # ---- writing ----

    cdef bint _enqueue(self, const uint8_t* data, int length) noexcept:
        """Append one framed datagram to the send buffer; False (dropped, counted) when full."""
        cdef Py_ssize_t need = length + 2
        if self.closed:
            return False
        if self._wend + need > self.send_buffer_size and self._wstart > 0:
            memmove(self._wbuf, self._wbuf + self._wstart, self._wend - self._wstart)
            self._wend -= self._wstart
            self._wstart = 0
        if self._wend + need > self.send_buffer_size:
            self.dropped_full += 1
            self._dropped_since_recovery += 1
            self._plane.tcp_send_dropped += 1
            if self._full_since_ms == 0:
                self._full_since_ms = plane_now_ms()
            return False
        store16(self._wbuf + self._wend, <uint16_t>length)
        memcpy(self._wbuf + self._wend + 2, data, length)
        self._wend += need
        self.frames_out += 1
        if not self._pending and not self._writing:
            self._pending = True
            self._plane._tcp_pending.append(self)
        return True

    cdef void _write(self) noexcept:
        """One send() of what is buffered (called at the plane's flush and when writable)."""
        cdef Py_ssize_t n
        self._pending = False
        if self.closed or self._wend == self._wstart:
            return
        n = send(self._fd, self._wbuf + self._wstart, self._wend - self._wstart,
                 MSG_DONTWAIT | MSG_NOSIGNAL)
        if n < 0:
            if errno != EAGAIN and errno != EINTR:
                self.close("peer_closed" if errno == EPIPE or errno == ECONNRESET
                           else "write_error")
                return
            n = 0
        self.bytes_out += <uint64_t>n
        self._wstart += n
        if self._wstart == self._wend:
            self._wstart = self._wend = 0
            if self._writing:
                self._writing = False
                self._loop.remove_writer(self._fd)
        elif not self._writing and self._loop is not None:
            self._writing = True
            self._loop.add_writer(self._fd, self._on_writable)
        if self._wend - self._wstart <= self.send_buffer_size // 4:
            self._full_since_ms = 0
            if self._dropped_since_recovery:
                dropped = self._dropped_since_recovery
                self._dropped_since_recovery = 0
                if self._transport is not None:
                    self._plane._call(self._plane._handler.on_tcp_recovered, self._transport,
                                      dropped)

    def _on_writable(self) -> None:
        self._write()

    def send_frame(self, bytes data not None) -> bool:
        """Send one datagram (STUN, DTLS) framed; False when closed, too large or full."""
        if len(data) > UDP_DATAGRAM_MAX or len(data) == 0:
            return False
        if not self._enqueue(<const uint8_t*>PyBytes_AS_STRING(data), len(data)):
            return False
        if self._pending:
            self._write()
        return True

    # ---- ending ----

    def expire(self, uint64_t now_ms, *, uint64_t frame_timeout_ms, uint64_t ice_timeout_ms,
               uint64_t stalled_timeout_ms):
        """Close the connection if it has had a frame unfinished, no ICE binding, or a full send
        buffer for too long; the reason it was closed for, or None."""
        reason = None
        if self.closed:
            return None
        if self._partial_since_ms and now_ms - self._partial_since_ms > frame_timeout_ms:
            reason = "frame_timeout"
        elif self._transport is None and now_ms - self.opened_ms > ice_timeout_ms:
            reason = "ice_timeout"
        elif self._full_since_ms and now_ms - self._full_since_ms > stalled_timeout_ms:
            reason = "send_stalled"
        if reason is not None:
            self.close(reason)
        return reason

    def close(self, str reason="server") -> None:
        cdef PlaneTransport t
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        self._plane.tcp_connections -= 1
        if self._loop is not None:
            self._loop.remove_reader(self._fd)
            if self._writing:
                self._loop.remove_writer(self._fd)
            self._writing = False
        self._sock.close()
        self._fd = -1
        self._wstart = self._wend = 0
        t = self._transport
        self._transport = None
        if t is not None and t._tcp is self:
            t._tcp = None
            t.remote_address = None
        self._plane._call(self._plane._handler.on_tcp_closed, self, reason)
