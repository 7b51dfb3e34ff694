# Batched UDP I/O: recvmmsg/sendmmsg over a DatagramBatch, and asyncio integration.
#
# A DatagramBatch holds up to UDP_BATCH_MAX datagrams with their peer addresses in fixed slots of
# UDP_DATAGRAM_MAX bytes (heap-allocate it: ~140 KB). Received datagrams are at most UDP_RECV_MAX
# bytes, so each slot keeps room to SRTP-protect its packet in place; a longer datagram arrives
# with MSG_TRUNC and is dropped and counted (`truncated`), never delivered cut.
#
# The C level (recv_c, send_c) returns counts or -errno and never touches Python objects; the
# Python methods release the GIL around the system calls. Sockets use MSG_DONTWAIT on every call,
# so a socket adopted with from_socket() works whatever its blocking mode.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.errno cimport EAGAIN, EBADF, EINTR, EINVAL, EMSGSIZE, errno
from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcpy, memset
from posix.uio cimport iovec
from posix.unistd cimport close as _udp_close_fd

cimport srtp2
from sockets cimport (AF_INET, AF_INET6, EWOULDBLOCK, INET6_ADDRSTRLEN, MSG_DONTWAIT, MSG_TRUNC,
                      getsockname, htonl, htons, in_addr, inet_ntop, inet_pton, mmsghdr, ntohs,
                      recvmmsg, sendmmsg, sockaddr, sockaddr_in, sockaddr_in6, sockaddr_storage,
                      socklen_t)

import logging
import os
import socket as _udp_socket

cpdef enum:
    UDP_BATCH_MAX = 64
    UDP_DATAGRAM_MAX = 2048
    # Largest datagram received: the rest of a slot is room for an SRTP/SRTCP trailer.
    UDP_RECV_MAX = UDP_DATAGRAM_MAX - srtp2.SRTP_MAX_TRAILER_LEN - SRTCP_INDEX_LEN

cdef enum:
    UDP_BATCHES_PER_WAKEUP = 16      # recvmmsg calls per readiness callback, so one socket can't
                                     # starve the event loop

cdef struct DatagramBatch:
    int count
    int lengths[UDP_BATCH_MAX]
    sockaddr_storage addrs[UDP_BATCH_MAX]
    socklen_t addrlens[UDP_BATCH_MAX]
    uint8_t data[UDP_BATCH_MAX][UDP_DATAGRAM_MAX]

_udp_logger = logging.getLogger("mediasrv.udp")


cdef DatagramBatch* datagram_batch_new() except NULL:
    """A heap-allocated, empty batch; free it with datagram_batch_free()."""
    cdef DatagramBatch* batch = <DatagramBatch*>PyMem_Malloc(sizeof(DatagramBatch))
    if batch == NULL:
        raise MemoryError()
    batch.count = 0
    return batch


cdef void datagram_batch_free(DatagramBatch* batch) noexcept:
    PyMem_Free(batch)


# ---- addresses ----

cdef object sockaddr_to_tuple(const sockaddr_storage* addr):
    """(host, port) of an IPv4 or IPv6 socket address (an IPv6 scope id is not carried)."""
    cdef char text[INET6_ADDRSTRLEN]
    cdef const sockaddr_in* sin
    cdef const sockaddr_in6* sin6
    if addr.ss_family == AF_INET:
        sin = <const sockaddr_in*>addr
        if inet_ntop(AF_INET, &sin.sin_addr, text, sizeof(text)) == NULL:
            raise OSError(errno, os.strerror(errno))
        return (text.decode("ascii"), ntohs(sin.sin_port))
    if addr.ss_family == AF_INET6:
        sin6 = <const sockaddr_in6*>addr
        if inet_ntop(AF_INET6, &sin6.sin6_addr, text, sizeof(text)) == NULL:
            raise OSError(errno, os.strerror(errno))
        return (text.decode("ascii"), ntohs(sin6.sin6_port))
    raise ValueError(f"unsupported address family {addr.ss_family}")


cdef int tuple_to_sockaddr(object addr, int family, sockaddr_storage* out,
                           socklen_t* outlen) except -1:
    """Fill out/outlen from a numeric (host, port) tuple for a socket of the given family.

    IPv6 also takes (host, port, flowinfo, scope_id), and maps an IPv4 host to ::ffff:a.b.c.d.
    """
    cdef int max_items = 4 if family == AF_INET6 else 2
    if not isinstance(addr, tuple) or not 2 <= len(addr) <= max_items:
        raise TypeError(f"address must be a (host, port) tuple, got {addr!r}")
    host, port = addr[0], addr[1]
    if not isinstance(host, str):
        raise TypeError(f"host must be a str, got {type(host).__name__}")
    if not isinstance(port, int):
        raise TypeError(f"port must be an int, got {type(port).__name__}")
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be in 0..65535, got {port}")
    memset(out, 0, sizeof(sockaddr_storage))
    if family == AF_INET:
        _udp_fill_inet(<sockaddr_in*>out, host, port)
        outlen[0] = sizeof(sockaddr_in)
    elif family == AF_INET6:
        _udp_fill_inet6(<sockaddr_in6*>out, host, port, addr[2:])
        outlen[0] = sizeof(sockaddr_in6)
    else:
        raise ValueError(f"unsupported address family {family}")
    return 0


cdef bytes _udp_host_bytes(str host):
    if "\0" in host or not host.isascii():
        raise ValueError(f"{host!r} is not a numeric IP address")
    return host.encode("ascii")


cdef int _udp_fill_inet(sockaddr_in* sin, str host, int port) except -1:
    if inet_pton(AF_INET, _udp_host_bytes(host), &sin.sin_addr) != 1:
        raise ValueError(f"{host!r} is not a numeric IPv4 address")
    sin.sin_family = AF_INET
    sin.sin_port = htons(port)
    return 0


cdef int _udp_fill_inet6(sockaddr_in6* sin6, str host, int port, tuple extra) except -1:
    cdef bytes encoded = _udp_host_bytes(host)
    cdef in_addr v4
    if inet_pton(AF_INET6, encoded, &sin6.sin6_addr) != 1:
        if inet_pton(AF_INET, encoded, &v4) != 1:
            raise ValueError(f"{host!r} is not a numeric IPv6 or IPv4 address")
        sin6.sin6_addr.s6_addr[10] = 0xFF    # IPv4-mapped: ::ffff:a.b.c.d
        sin6.sin6_addr.s6_addr[11] = 0xFF
        memcpy(&sin6.sin6_addr.s6_addr[12], &v4, 4)
    sin6.sin6_family = AF_INET6
    sin6.sin6_port = htons(port)
    if len(extra) > 0:
        sin6.sin6_flowinfo = htonl(extra[0])
    if len(extra) > 1:
        sin6.sin6_scope_id = extra[1]
    return 0


# ---- system calls: -errno on failure, EINTR retried ----

cdef inline int _udp_recvmmsg(int fd, mmsghdr* msgs, int count) noexcept nogil:
    cdef int n = recvmmsg(fd, msgs, count, MSG_DONTWAIT, NULL)
    while n < 0 and errno == EINTR:
        n = recvmmsg(fd, msgs, count, MSG_DONTWAIT, NULL)
    return n if n >= 0 else -errno


cdef inline int _udp_sendmmsg(int fd, mmsghdr* msgs, int count) noexcept nogil:
    cdef int n = sendmmsg(fd, msgs, count, MSG_DONTWAIT)
    while n < 0 and errno == EINTR:
        n = sendmmsg(fd, msgs, count, MSG_DONTWAIT)
    return n if n >= 0 else -errno


cdef inline bint _udp_would_block(int result) noexcept nogil:
    return result == -EAGAIN or result == -EWOULDBLOCK


cdef object _udp_os_error(int err):
    return OSError(err, os.strerror(err))


cdef int _udp_check_datagram(object data) except -1:
    if not isinstance(data, bytes):
        raise TypeError(f"datagram must be bytes, got {type(data).__name__}")
    if len(data) > UDP_DATAGRAM_MAX:
        raise ValueError(f"datagram of {len(data)} bytes exceeds UDP_DATAGRAM_MAX "
                         f"({UDP_DATAGRAM_MAX})")
    return 0


cdef list _udp_batch_to_list(const DatagramBatch* batch):
    cdef int i
    return [
        (PyBytes_FromStringAndSize(<const char*>&batch.data[i][0], batch.lengths[i]),
         sockaddr_to_tuple(&batch.addrs[i]))
        for i in range(batch.count)
    ]


cdef class UdpBatchSocket:
    """A non-blocking UDP socket (IPv4 or IPv6) read and written in batches."""

    cdef int _fd
    cdef int _family
    cdef DatagramBatch* _recv_buf      # private batches of the Python methods, allocated on use
    cdef DatagramBatch* _send_buf
    cdef bint _recv_busy               # a Python method is using the batch (GIL released)
    cdef bint _send_busy
    cdef bint _close_pending           # close() came while busy: close when the call returns
    cdef object _loop
    cdef object _on_datagrams
    cdef readonly uint64_t datagrams_received
    cdef readonly uint64_t datagrams_sent
    cdef readonly uint64_t bytes_received
    cdef readonly uint64_t bytes_sent
    cdef readonly uint64_t send_errors
    cdef readonly uint64_t recv_errors
    cdef readonly uint64_t truncated
    cdef readonly uint64_t callback_errors

    def __cinit__(self):
        self._fd = -1
        self._recv_buf = NULL
        self._send_buf = NULL

    def __init__(self, str host not None="127.0.0.1", int port=0, *, bint reuse_port=False,
                 recv_buffer=None, send_buffer=None):
        if self._fd >= 0:
            raise RuntimeError("UdpBatchSocket is already initialised")
        family = _udp_socket.AF_INET6 if ":" in host else _udp_socket.AF_INET
        sock = _udp_socket.socket(family, _udp_socket.SOCK_DGRAM)
        try:
            if reuse_port:
                sock.setsockopt(_udp_socket.SOL_SOCKET, _udp_socket.SO_REUSEPORT, 1)
            if recv_buffer is not None:
                sock.setsockopt(_udp_socket.SOL_SOCKET, _udp_socket.SO_RCVBUF, recv_buffer)
            if send_buffer is not None:
                sock.setsockopt(_udp_socket.SOL_SOCKET, _udp_socket.SO_SNDBUF, send_buffer)
            sock.bind((host, port))
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._fd = sock.detach()
        self._family = family

    @classmethod
    def from_socket(cls, sock):
        """Wrap a duplicate of a bound UDP socket's descriptor; the caller keeps `sock`."""
        cdef UdpBatchSocket self
        if sock.type != _udp_socket.SOCK_DGRAM or sock.family not in (_udp_socket.AF_INET,
                                                                     _udp_socket.AF_INET6):
            raise ValueError(f"from_socket() needs an IPv4 or IPv6 UDP socket, got {sock!r}")
        self = cls.__new__(cls)
        self._fd = os.dup(sock.fileno())
        self._family = sock.family
        return self

    def __dealloc__(self):
        if self._fd >= 0:
            _udp_close_fd(self._fd)
            self._fd = -1
        datagram_batch_free(self._recv_buf)
        datagram_batch_free(self._send_buf)

    # ---- state ----

    def fileno(self) -> int:
        return -1 if self._closed() else self._fd

    @property
    def family(self):
        return _udp_socket.AddressFamily(self._family)

    @property
    def closed(self) -> bool:
        return self._closed()

    @property
    def local_address(self):
        cdef sockaddr_storage addr
        cdef socklen_t addrlen = sizeof(addr)
        self._require_open()
        if getsockname(self._fd, <sockaddr*>&addr, &addrlen) != 0:
            raise _udp_os_error(errno)
        return sockaddr_to_tuple(&addr)

    cdef inline bint _closed(self) noexcept:
        return self._fd < 0 or self._close_pending

    cdef int _require_open(self) except -1:
        if self._closed():
            raise OSError(EBADF, "UdpBatchSocket is closed")
        return 0

    cdef DatagramBatch* _acquire(self, bint send) except NULL:
        """The private batch for a Python-level receive or send, marked busy."""
        self._require_open()
        if (self._send_busy if send else self._recv_busy):
            raise RuntimeError(f"another thread is in {'send' if send else 'recv'} on this socket")
        if send:
            if self._send_buf == NULL:
                self._send_buf = datagram_batch_new()
            self._send_busy = True
            return self._send_buf
        if self._recv_buf == NULL:
            self._recv_buf = datagram_batch_new()
        self._recv_busy = True
        return self._recv_buf

    cdef void _release(self, bint send) noexcept:
        if send:
            self._send_busy = False
        else:
            self._recv_busy = False
        if self._close_pending and not self._recv_busy and not self._send_busy:
            self._close_now()

    cdef void _close_now(self) noexcept:
        if self._fd >= 0:
            _udp_close_fd(self._fd)
            self._fd = -1
        self._close_pending = False

    def close(self) -> None:
        """Stop reading and close the descriptor. Idempotent."""
        self.stop()
        if self._fd < 0:
            return
        if self._recv_busy or self._send_busy:
            self._close_pending = True
        else:
            self._close_now()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __repr__(self) -> str:
        if self._closed():
            return "<UdpBatchSocket closed>"
        return f"<UdpBatchSocket {self.local_address[0]}:{self.local_address[1]} fd={self._fd}>"

    # ---- C level ----

    cdef int recv_c(self, DatagramBatch* batch) noexcept nogil:
        """Receive up to UDP_BATCH_MAX datagrams: their count (0 when none is waiting) or -errno."""
        return self._recv(batch, UDP_BATCH_MAX)

    cdef int _recv(self, DatagramBatch* batch, int max_count) noexcept nogil:
        cdef mmsghdr msgs[UDP_BATCH_MAX]
        cdef iovec iovs[UDP_BATCH_MAX]
        cdef int i
        cdef int n
        batch.count = 0
        if self._fd < 0:
            return -EBADF
        if max_count < 1 or max_count > UDP_BATCH_MAX:
            return -EINVAL
        memset(msgs, 0, max_count * sizeof(mmsghdr))
        for i in range(max_count):
            iovs[i].iov_base = &batch.data[i][0]
            iovs[i].iov_len = UDP_RECV_MAX
            msgs[i].msg_hdr.msg_name = &batch.addrs[i]
            msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage)
            msgs[i].msg_hdr.msg_iov = &iovs[i]
            msgs[i].msg_hdr.msg_iovlen = 1
        n = _udp_recvmmsg(self._fd, msgs, max_count)
        if n < 0:
            if _udp_would_block(n):
                return 0
            self.recv_errors += 1
            return n
        return self._keep_whole(batch, msgs, n)

    cdef int _keep_whole(self, DatagramBatch* batch, const mmsghdr* msgs, int n) noexcept nogil:
        """Drop truncated datagrams (compacting the batch) and count the rest."""
        cdef int i
        cdef int kept = 0
        cdef unsigned int length
        for i in range(n):
            length = msgs[i].msg_len
            if msgs[i].msg_hdr.msg_flags & MSG_TRUNC or length > UDP_RECV_MAX:
                self.truncated += 1
                continue
            if kept != i:
                memcpy(&batch.data[kept][0], &batch.data[i][0], length)
                memcpy(&batch.addrs[kept], &batch.addrs[i], sizeof(sockaddr_storage))
            batch.lengths[kept] = <int>length
            batch.addrlens[kept] = msgs[i].msg_hdr.msg_namelen
            self.datagrams_received += 1
            self.bytes_received += length
            kept += 1
        batch.count = kept
        return kept

    cdef int send_c(self, DatagramBatch* batch, int start, int count) noexcept nogil:
        """Send entries [start, start + count) in one sendmmsg: how many went out, or -errno.

        Entries need lengths in 0..UDP_DATAGRAM_MAX (else -EMSGSIZE, nothing sent). sendmmsg
        stops at the first failing datagram: a short count means the next one failed (retry
        from there to learn why) or the socket buffer is full. Errors other than EAGAIN are
        counted in send_errors.
        """
        cdef mmsghdr msgs[UDP_BATCH_MAX]
        cdef iovec iovs[UDP_BATCH_MAX]
        cdef int i
        cdef int j
        cdef int n
        if self._fd < 0:
            return -EBADF
        if start < 0 or count < 0 or count > UDP_BATCH_MAX - start:
            return -EINVAL
        if count == 0:
            return 0
        memset(msgs, 0, count * sizeof(mmsghdr))
        for i in range(count):
            j = start + i
            if batch.lengths[j] < 0 or batch.lengths[j] > UDP_DATAGRAM_MAX \
                    or batch.addrlens[j] > sizeof(sockaddr_storage):
                self.send_errors += 1
                return -EMSGSIZE
            iovs[i].iov_base = &batch.data[j][0]
            iovs[i].iov_len = batch.lengths[j]
            msgs[i].msg_hdr.msg_name = &batch.addrs[j]
            msgs[i].msg_hdr.msg_namelen = batch.addrlens[j]
            msgs[i].msg_hdr.msg_iov = &iovs[i]
            msgs[i].msg_hdr.msg_iovlen = 1
        n = _udp_sendmmsg(self._fd, msgs, count)
        if n < 0:
            if not _udp_would_block(n):
                self.send_errors += 1
            return n
        for i in range(n):
            self.datagrams_sent += 1
            self.bytes_sent += batch.lengths[start + i]
        return n

    cdef int flush_c(self, DatagramBatch* batch, int* dropped) noexcept nogil:
        """Send the whole batch (sendmmsg until done) and empty it: how many went out. What the
        kernel refuses (buffer full or an error) is dropped and added to dropped[0]."""
        cdef int start = 0
        cdef int sent
        while start < batch.count:
            sent = self.send_c(batch, start, batch.count - start)
            if sent <= 0:
                dropped[0] += batch.count - start
                break
            start += sent
        batch.count = 0
        return start

    # ---- Python level ----

    def recv_batch(self, int max_count=UDP_BATCH_MAX):
        """Up to max_count waiting datagrams as (data, (host, port)); [] when none is waiting."""
        cdef DatagramBatch* batch
        cdef int n
        if not 1 <= max_count <= UDP_BATCH_MAX:
            raise ValueError(f"max_count must be in 1..{UDP_BATCH_MAX}, got {max_count}")
        batch = self._acquire(False)
        try:
            with nogil:
                n = self._recv(batch, max_count)
            if n < 0:
                raise _udp_os_error(-n)
            return _udp_batch_to_list(batch)
        finally:
            self._release(False)

    def send_batch(self, items):
        """Send (data, (host, port)) items; returns how many were sent.

        Every item is checked before anything is sent. A full socket buffer (EAGAIN) ends the
        call early; a datagram the kernel refuses otherwise is skipped and counted in send_errors.
        """
        cdef DatagramBatch* batch
        cdef Py_ssize_t total
        cdef Py_ssize_t start
        cdef int chunk
        cdef int i
        cdef bint blocked = False
        cdef Py_ssize_t sent = 0
        if not isinstance(items, (list, tuple)):
            items = list(items)
        total = len(items)
        for i in range(UDP_BATCH_MAX, total):       # the first chunk is checked as it is filled
            self._check_item(items[i])
        batch = self._acquire(True)
        try:
            for start in range(0, total, UDP_BATCH_MAX):
                chunk = <int>min(total - start, UDP_BATCH_MAX)
                for i in range(chunk):
                    data, addr = items[start + i]
                    self._fill(batch, i, data, addr)
                sent += self._send_all(batch, chunk, &blocked)
                if blocked:
                    break
        finally:
            self._release(True)
        return sent

    def sendto(self, bytes data not None, addr) -> int:
        """Send one datagram; returns its length. Raises BlockingIOError or OSError on failure."""
        cdef DatagramBatch* batch = self._acquire(True)
        cdef int n
        try:
            self._fill(batch, 0, data, addr)
            with nogil:
                n = self.send_c(batch, 0, 1)
            if n != 1:
                raise _udp_os_error(-n if n < 0 else EAGAIN)
            return len(data)
        finally:
            self._release(True)

    cdef int _check_item(self, object item) except -1:
        cdef sockaddr_storage scratch
        cdef socklen_t scratch_len
        data, addr = item
        _udp_check_datagram(data)
        tuple_to_sockaddr(addr, self._family, &scratch, &scratch_len)
        return 0

    cdef int _fill(self, DatagramBatch* batch, int index, object data, object addr) except -1:
        _udp_check_datagram(data)
        tuple_to_sockaddr(addr, self._family, &batch.addrs[index], &batch.addrlens[index])
        memcpy(&batch.data[index][0], PyBytes_AS_STRING(data), len(data))
        batch.lengths[index] = <int>len(data)
        return 0

    cdef int _send_all(self, DatagramBatch* batch, int count, bint* blocked) noexcept:
        """Send batch[0:count], skipping datagrams the kernel refuses; stops on EAGAIN."""
        cdef int pos = 0
        cdef int sent = 0
        cdef int n
        while pos < count:
            with nogil:
                n = self.send_c(batch, pos, count - pos)
            if n > 0:
                pos += n
                sent += n
            elif n == 0 or _udp_would_block(n):
                blocked[0] = True
                break
            else:
                pos += 1        # this datagram failed (counted in send_errors): skip it
        return sent

    # ---- event loop ----

    def start(self, loop, on_datagrams) -> None:
        """Deliver incoming batches to on_datagrams(list) from loop's reader callback."""
        self._require_open()
        if self._loop is not None:
            raise RuntimeError("UdpBatchSocket is already started; call stop() first")
        if not callable(on_datagrams):
            raise TypeError("on_datagrams must be callable")
        loop.add_reader(self._fd, self._on_readable)
        self._loop = loop
        self._on_datagrams = on_datagrams

    def stop(self) -> None:
        """Remove the reader (no-op when not started)."""
        loop = self._loop
        if loop is None:
            return
        self._loop = None
        self._on_datagrams = None
        if not loop.is_closed():
            loop.remove_reader(self._fd)

    def _on_readable(self) -> None:
        cdef DatagramBatch* batch
        cdef int n
        callback = self._on_datagrams
        for _ in range(UDP_BATCHES_PER_WAKEUP):
            # The callback may have stopped or closed us; another thread may be receiving.
            if self._closed() or self._on_datagrams is not callback or self._recv_busy:
                return
            batch = self._acquire(False)
            try:
                with nogil:
                    n = self.recv_c(batch)
                datagrams = _udp_batch_to_list(batch) if n > 0 else None
            finally:
                self._release(False)
            if n < 0:
                _udp_logger.warning("recvmmsg on fd %d failed: %s", self._fd, os.strerror(-n))
                return
            if n == 0:
                return
            self._deliver(callback, datagrams)
            if n < UDP_BATCH_MAX:
                return

    cdef int _deliver(self, object callback, list datagrams) except -1:
        try:
            callback(datagrams)
        except Exception:
            self.callback_errors += 1
            _udp_logger.exception("on_datagrams callback %r raised; still reading", callback)
        return 0
