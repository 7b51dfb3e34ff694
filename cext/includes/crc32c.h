/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of journal records:
 * with SSE 4.2's crc32 instruction where the CPU has it (chosen at run time), a table
 * otherwise. crc32c(crc32c(0, a), b) == crc32c(0, a + b), like zlib's crc32. */
#ifndef MEDIASRV_CRC32C_H
#define MEDIASRV_CRC32C_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static uint32_t mediasrv_crc32c_table[256];
static int mediasrv_crc32c_ready = 0;

static void mediasrv_crc32c_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        mediasrv_crc32c_table[i] = c;
    }
    mediasrv_crc32c_ready = 1;
}

static uint32_t mediasrv_crc32c_sw(uint32_t crc, const uint8_t *p, size_t n) {
    if (!mediasrv_crc32c_ready) mediasrv_crc32c_init();
    crc = ~crc;
    while (n--) crc = mediasrv_crc32c_table[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
__attribute__((target("sse4.2"))) static uint32_t mediasrv_crc32c_hw(uint32_t crc,
                                                                     const uint8_t *p,
                                                                     size_t n) {
    uint64_t c = ~crc & 0xFFFFFFFFu;
    while (n && ((uintptr_t)p & 7)) {
        c = _mm_crc32_u8((uint32_t)c, *p++);
        n--;
    }
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = _mm_crc32_u64(c, v);
        p += 8;
        n -= 8;
    }
    while (n--) c = _mm_crc32_u8((uint32_t)c, *p++);
    return ~(uint32_t)c;
}

static int mediasrv_crc32c_has_hw = -1;

static uint32_t mediasrv_crc32c(uint32_t crc, const uint8_t *p, size_t n) {
    if (mediasrv_crc32c_has_hw < 0) mediasrv_crc32c_has_hw = __builtin_cpu_supports("sse4.2");
    return mediasrv_crc32c_has_hw ? mediasrv_crc32c_hw(crc, p, n) : mediasrv_crc32c_sw(crc, p, n);
}
#else
static uint32_t mediasrv_crc32c(uint32_t crc, const uint8_t *p, size_t n) {
    return mediasrv_crc32c_sw(crc, p, n);
}
#endif

#endif
