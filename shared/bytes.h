/*
 * bytes.h: big- and little-endian integer get/put over byte buffers: big-endian for the wire
 * formats of key.h and pgwire.h, little-endian for Postgres' on-disk structures (pg_control, page
 * headers, SLRU and relmap files, WAL records). The caller guarantees the bytes are there.
 */
#ifndef SHARED_BYTES_H
#define SHARED_BYTES_H

#include <stdint.h>

static inline void be_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void be_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void be_put_u64(uint8_t *p, uint64_t v)
{
    be_put_u32(p, (uint32_t)(v >> 32));
    be_put_u32(p + 4, (uint32_t)v);
}
static inline uint16_t be_get_u16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}
static inline uint32_t be_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t be_get_u64(const uint8_t *p)
{
    return (uint64_t)be_get_u32(p) << 32 | be_get_u32(p + 4);
}

static inline void le_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void le_put_u32(uint8_t *p, uint32_t v)
{
    le_put_u16(p, (uint16_t)v);
    le_put_u16(p + 2, (uint16_t)(v >> 16));
}
static inline void le_put_u64(uint8_t *p, uint64_t v)
{
    le_put_u32(p, (uint32_t)v);
    le_put_u32(p + 4, (uint32_t)(v >> 32));
}
static inline uint16_t le_get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (unsigned)p[1] << 8);
}
static inline uint32_t le_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t le_get_u64(const uint8_t *p)
{
    return (uint64_t)le_get_u32(p) | (uint64_t)le_get_u32(p + 4) << 32;
}

#endif
