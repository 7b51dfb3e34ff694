# CRC-32C of journal records (cext/includes/crc32c.h: SSE 4.2 when the CPU has it).

from libc.stdint cimport uint8_t, uint32_t

cdef extern from "crc32c.h" nogil:
    uint32_t mediasrv_crc32c(uint32_t crc, const uint8_t* p, size_t n)
