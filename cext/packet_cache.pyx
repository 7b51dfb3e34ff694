# Packet cache: a fixed-size ring of recent RTP packets of one stream, keyed by sequence number,
# answering NACKs with retransmissions.
#
# Slots are indexed by sequence number modulo the capacity. Each slot remembers the packet's
# extended (wrap-counted) sequence number, so a lookup after a 16-bit wrap-around, or for a
# sequence number whose slot has since been reused, finds nothing rather than a stale packet.

from cpython.mem cimport PyMem_Calloc, PyMem_Free
from libc.stdint cimport int64_t, uint64_t

cdef enum:
    # The first stored packet's extended sequence number is seq + CACHE_EXTENDED_BASE, so packets
    # that precede it across a wrap (seq 65535 after seq 0) keep a non-negative extended number
    # and never meet the -1 that marks an empty slot.
    CACHE_EXTENDED_BASE = 0x10000


cdef struct CacheSlot:
    int64_t extended_seq     # -1 when empty
    uint64_t stored_at_ms
    int length


cdef inline int64_t extend_sequence(int64_t highest, uint16_t seq) noexcept nogil:
    """The extended sequence number of seq closest to the highest extended one seen so far."""
    cdef int64_t candidate
    cdef int64_t delta
    if highest < 0:
        return seq
    candidate = (highest & ~(<int64_t>0xFFFF)) | seq
    delta = candidate - highest
    if delta > 0x8000:
        candidate -= 0x10000
    elif delta < -0x8000:
        candidate += 0x10000
    return candidate


cdef class PacketCache:
    """Recent packets of one RTP stream, for retransmission on NACK."""

    cdef CacheSlot* _slots
    cdef uint8_t* _data
    cdef int _capacity
    cdef int _mask
    cdef int _slot_size
    cdef int64_t _highest


    def __cinit__(self, int capacity=512, int max_packet_size=1500):
        if capacity < 1 or capacity > 32768 or capacity & (capacity - 1):
            raise ValueError(f"packet cache capacity {capacity} must be a power of two in 1..32768")
        if not 12 <= max_packet_size <= 65535:
            raise ValueError(f"packet cache slot size {max_packet_size} is outside 12..65535")
        self._capacity = capacity
        self._mask = capacity - 1
        self._slot_size = max_packet_size
        self._slots = <CacheSlot*>PyMem_Calloc(capacity, sizeof(CacheSlot))
        self._data = <uint8_t*>PyMem_Calloc(capacity, max_packet_size)
        if self._slots == NULL or self._data == NULL:
            raise MemoryError()
        self._reset()

    def __dealloc__(self):
        PyMem_Free(self._slots)
        PyMem_Free(self._data)

    cdef void _reset(self) noexcept nogil:
        cdef int i
        for i in range(self._capacity):
            self._slots[i].extended_seq = -1
            self._slots[i].length = 0
        self._highest = -1


    cdef int put_c(self, uint16_t seq, const uint8_t* data, int length,
                   uint64_t now_ms) noexcept nogil:
        """Store a packet. 1 if stored, 0 if too old to keep, -1 if larger than a slot."""
        cdef int64_t ext
        cdef CacheSlot* slot
        if length > self._slot_size or length < 0:
            return -1
        if self._highest < 0:
            ext = CACHE_EXTENDED_BASE + seq
        else:
            ext = extend_sequence(self._highest, seq)
        if self._highest >= 0 and ext <= self._highest - self._capacity:
            return 0
        if ext > self._highest:
            self._highest = ext
        slot = &self._slots[ext & self._mask]
        slot.extended_seq = ext
        slot.stored_at_ms = now_ms
        slot.length = length
        memcpy(self._data + (ext & self._mask) * self._slot_size, data, length)
        return 1

    cdef const uint8_t* get_c(self, uint16_t seq, int* length,
                              uint64_t* stored_at_ms) noexcept nogil:
        """The stored packet with this sequence number, or NULL."""
        cdef int64_t ext
        cdef CacheSlot* slot
        if self._highest < 0:
            return NULL
        ext = extend_sequence(self._highest, seq)
        slot = &self._slots[ext & self._mask]
        if slot.extended_seq != ext:
            return NULL
        length[0] = slot.length
        stored_at_ms[0] = slot.stored_at_ms
        return self._data + (ext & self._mask) * self._slot_size

    def put(self, int seq, data, unsigned long long now_ms=0) -> bool:
        """Store packet bytes under seq; False if it is too old to keep."""
        if not 0 <= seq <= 0xFFFF:
            raise ValueError(f"sequence number {seq} is outside 0..65535")
        cdef const uint8_t[:] view = _readonly_view(data)
        cdef int length = <int>view.shape[0]
        cdef int stored = self.put_c(seq, &view[0] if length else NULL, length, now_ms)
        if stored < 0:
            raise ValueError(
                f"packet of {view.shape[0]} bytes exceeds the cache's {self._slot_size}-byte slots")
        return stored == 1

    def get(self, int seq):
        """The packet stored under seq, or None."""
        if not 0 <= seq <= 0xFFFF:
            raise ValueError(f"sequence number {seq} is outside 0..65535")
        cdef int length
        cdef uint64_t stored_at
        cdef const uint8_t* data = self.get_c(seq, &length, &stored_at)
        if data == NULL:
            return None
        return PyBytes_FromStringAndSize(<const char*>data, length)

    def stored_at(self, int seq):
        """The now_ms given when seq was stored, or None."""
        cdef int length
        cdef uint64_t stored_at
        if not 0 <= seq <= 0xFFFF or self.get_c(seq, &length, &stored_at) == NULL:
            return None
        return stored_at

    def clear(self) -> None:
        self._reset()

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def max_packet_size(self) -> int:
        return self._slot_size

    @property
    def highest_sequence(self):
        """The highest extended sequence number stored (the first packet's is its seq), or None."""
        return self._highest - CACHE_EXTENDED_BASE if self._highest >= 0 else None

    def __len__(self):
        cdef int i
        cdef int live = 0
        for i in range(self._capacity):
            if self._slots[i].extended_seq >= 0 and self._slots[i].extended_seq > self._highest - self._capacity:
                live += 1
        return live
