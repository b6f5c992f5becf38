/*
 * crc32c.h: CRC-32C (Castagnoli), the checksum of layer file blocks and of Postgres' pg_control.
 * The SSE4.2 crc32 instruction when the CPU has it, software slicing-by-8 otherwise.
 */
#ifndef SHARED_CRC32C_H
#define SHARED_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* crc32c: the checksum of len bytes (initial value ~0, final xor ~0, as Postgres computes it). */
uint32_t crc32c(const void *data, size_t len);

/* crc32c_extend: continue a checksum over more data: crc32c(a+b) == crc32c_extend(crc32c(a), b). */
uint32_t crc32c_extend(uint32_t crc, const void *data, size_t len);

#endif
