# Recording journals: the data plane's side (docs/recording.md, "Journal format"), and the
# CRC-32C the journals' readers use too.
#
# A JournalSink collects complete, checksummed records in memory as packets are forwarded to a
# recording consumer; Python takes the bytes at its flush interval and appends them to the
# journal file (so a killed process loses at most one interval). No Python per packet.

from libc.errno cimport errno, EINTR
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memmove, strerror
from posix.unistd cimport write
from posix.time cimport clock_gettime, timespec, CLOCK_REALTIME
from crc32c cimport mediasrv_crc32c

cdef enum:
    JOURNAL_RTP = 1
    JOURNAL_SR = 2
    JOURNAL_EVENT = 3
    JOURNAL_RECORD_FIXED = 12      # type, flags, reserved, time
    JOURNAL_MAX_RECORD = 1 << 20


cdef inline uint64_t journal_now_us() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <uint64_t>ts.tv_sec * 1000000 + <uint64_t>(ts.tv_nsec // 1000)


def crc32c(const unsigned char[::1] data, unsigned int value=0) -> int:
    """CRC-32C (Castagnoli) of data, continuing from value (like zlib.crc32 for CRC-32)."""
    cdef size_t n = data.shape[0]
    if n == 0:
        return value
    return mediasrv_crc32c(value, &data[0], n)


cdef class JournalSink:
    """Records waiting to be written to one journal file, at most ``limit`` bytes of them (a
    record that would pass the limit is dropped and counted: the flush has fallen behind)."""

    cdef uint8_t* _buf
    cdef Py_ssize_t _size
    cdef Py_ssize_t _capacity
    cdef readonly Py_ssize_t limit
    cdef readonly uint64_t records
    cdef readonly uint64_t bytes
    cdef readonly uint64_t dropped
    cdef readonly bint closed

    def __cinit__(self):
        self._buf = NULL
        self._size = 0
        self._capacity = 0

    def __init__(self, Py_ssize_t limit=32 << 20):
        if limit < 1024:
            raise ValueError("limit must be at least 1024 bytes")
        self.limit = limit

    def __dealloc__(self):
        free(self._buf)

    cdef int _reserve(self, Py_ssize_t extra) noexcept:
        cdef Py_ssize_t want = self._size + extra
        cdef Py_ssize_t capacity
        cdef uint8_t* grown
        if want <= self._capacity:
            return 0
        capacity = self._capacity * 2 if self._capacity else 64 * 1024
        while capacity < want:
            capacity *= 2
        grown = <uint8_t*>realloc(self._buf, capacity)
        if grown == NULL:
            return -1
        self._buf = grown
        self._capacity = capacity
        return 0

    cdef void append_c(self, uint8_t record_type, uint64_t time_us, const uint8_t* data,
                       Py_ssize_t length) noexcept:
        """One record: length, type, flags, reserved, time, payload, CRC-32C."""
        cdef Py_ssize_t body = JOURNAL_RECORD_FIXED + length
        cdef uint8_t* p
        cdef int i
        if self.closed or body > JOURNAL_MAX_RECORD or self._size + body + 8 > self.limit:
            self.dropped += 1
            return
        if self._reserve(body + 8) != 0:
            self.dropped += 1
            return
        p = self._buf + self._size
        p[0] = <uint8_t>(body >> 24)
        p[1] = <uint8_t>(body >> 16)
        p[2] = <uint8_t>(body >> 8)
        p[3] = <uint8_t>body
        p[4] = record_type
        p[5] = 0
        p[6] = 0
        p[7] = 0
        for i in range(8):
            p[8 + i] = <uint8_t>(time_us >> (56 - 8 * i))
        memcpy(p + 16, data, length)
        store32(p + 4 + body, mediasrv_crc32c(0, p + 4, body))
        self._size += body + 8
        self.records += 1
        self.bytes += body + 8

    def append(self, int record_type, bytes payload not None, time_us=None) -> None:
        """A record from Python (sender reports, events); time defaults to now."""
        if not 1 <= record_type <= 255:
            raise ValueError("record type must be in 1..255")
        cdef uint64_t when = journal_now_us() if time_us is None else <uint64_t>time_us
        self.append_c(<uint8_t>record_type, when, <const uint8_t*>PyBytes_AS_STRING(payload),
                      len(payload))

    def pending(self) -> int:
        """Bytes waiting to be taken."""
        return self._size

    def write_to(self, int fd) -> int:
        """Write the collected records to a file descriptor (GIL released, short writes
        continued) and forget them; the bytes written. OSError as the system reports it (the
        records not written stay: a later call retries from where the failure stopped)."""
        cdef Py_ssize_t done = 0
        cdef Py_ssize_t n
        cdef int error = 0
        while done < self._size:
            with nogil:
                n = write(fd, self._buf + done, self._size - done)
                if n < 0:
                    error = errno
            if n < 0:
                if error == EINTR:
                    continue
                if done:
                    memmove(self._buf, self._buf + done, self._size - done)
                    self._size -= done
                raise OSError(error, strerror(error).decode("utf-8", "replace"))
            done += n
        self._emptied()
        return done

    def take(self) -> bytes:
        """The records collected since the last take (possibly b""), now the caller's."""
        cdef bytes data = PyBytes_FromStringAndSize(<char*>self._buf, self._size)
        self._emptied()
        return data

    cdef void _emptied(self) noexcept:
        """Everything was taken: start over, giving a burst's memory back."""
        self._size = 0
        if self._capacity > 4 << 20:
            free(self._buf)
            self._buf = NULL
            self._capacity = 0

    def close(self) -> None:
        """No more records are accepted (what is pending can still be taken)."""
        self.closed = True
