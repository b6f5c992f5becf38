/*
 * hash.h: one 64-bit integer mixer for the in-memory hash tables and the request-id generator.
 *
 * hash_mix64 is splitmix64's finaliser: every input bit reaches every output bit, so keys that
 * differ in a few low or high bits (sequential ids, offsets, related halves) spread over a table.
 * Not a cryptographic hash; never for anything an attacker must not predict.
 */
#ifndef SHARED_HASH_H
#define SHARED_HASH_H

#include <stdint.h>

static inline uint64_t hash_mix64(uint64_t x)
{
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* HASH_GOLDEN64: 2^64 / phi, the increment of splitmix64's sequence and a multiplier that spreads
 * one field before it is combined with another. */
#define HASH_GOLDEN64 0x9e3779b97f4a7c15ull

#endif
