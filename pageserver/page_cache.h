/*
 * page_cache.h: a bounded in-memory cache of decoded layer values (docs/pageserver.md, Page
 * cache), so that a read of a value read before skips the pread, the CRC-32C and the zstd
 * decompression.
 *
 * Key: (owner, offset). The owner is a number handed out once per opened layer reader by
 * page_cache_owner_new (a process-wide counter, never reused); the offset is the value blob's
 * offset in that layer file. A layer file's bytes never change while a reader has it open, and a
 * replaced, re-downloaded, re-attached or split layer is opened by a new reader with a new owner
 * number: a cached value can only ever be returned for the very file it was read (and verified)
 * from. Entries of readers that are gone are never hit again and age out.
 *
 * Values of up to PAGE_CACHE_VALUE_MAX bytes are cached (pages, size keys, small directories),
 * each in one fixed slot of that size: capacity_bytes / PAGE_CACHE_VALUE_MAX slots, split over up
 * to PAGE_CACHE_SHARDS shards by a hash of the key. Eviction: CLOCK within a shard (a slot hit
 * since the hand last passed gets a second chance). The slots' memory is allocated once at
 * page_cache_new (untouched slots cost no resident memory).
 *
 * Threads: every function may be called from any thread at once; each shard has its own mutex,
 * held only for the lookup and the copy of one value. Statistics are atomic counters. The cache
 * must outlive every thread that uses it.
 */
#ifndef PAGESERVER_PAGE_CACHE_H
#define PAGESERVER_PAGE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/metrics.h"

#define PAGE_CACHE_VALUE_MAX 8192u /* BLCKSZ: larger values are never cached */
#define PAGE_CACHE_SHARDS    16u

typedef struct PageCache PageCache;

/* PageCacheMetrics: series the cache updates besides its own counters (any may be NULL). */
typedef struct PageCacheMetrics {
    MetricCounter *hits;
    MetricCounter *misses;
    MetricCounter *evictions;
    MetricGauge *bytes; /* bytes of the cached values */
} PageCacheMetrics;

/* PageCacheStats: the cache's counters since page_cache_new. */
typedef struct PageCacheStats {
    uint64_t hits;
    uint64_t misses;
    uint64_t evictions;
    uint64_t entries;
    uint64_t bytes;          /* of the cached values */
    uint64_t capacity_bytes; /* slots x PAGE_CACHE_VALUE_MAX */
} PageCacheStats;

/* page_cache_owner_new: a new owner number (>= 1, never returned twice in this process). */
uint64_t page_cache_owner_new(void);

/* page_cache_new: a cache of capacity_bytes (rounded down to whole slots). NULL when that is less
 * than one slot: callers pass the NULL on, and every function below treats a NULL cache as one
 * that never hits. metrics may be NULL; its pointers are kept. The caller frees the cache with
 * page_cache_free. */
PageCache *page_cache_new(uint64_t capacity_bytes, const PageCacheMetrics *metrics);
void page_cache_free(PageCache *pc); /* NULL is fine */

/* page_cache_get: copy the value of (owner, offset) into buf (cap bytes) and set *len: true on a
 * hit. A value longer than cap is a miss. Counts a hit or a miss. */
bool page_cache_get(PageCache *pc, uint64_t owner, uint64_t offset, void *buf, size_t cap,
                    size_t *len);

/* page_cache_get_copy: on a hit, *value is a new buffer (the caller frees) holding the *len
 * bytes of the value: one copy, made under the shard's lock. Counts a hit, and a miss only when
 * count_miss: a lookup that, when it misses, is repeated on another thread (the page service's
 * loop thread first tries what is in memory, then hands the rest to a worker) counts once. */
bool page_cache_get_copy(PageCache *pc, uint64_t owner, uint64_t offset, bool count_miss,
                         void **value, size_t *len);

/* page_cache_put: cache a copy of value (len bytes, at most PAGE_CACHE_VALUE_MAX; longer is
 * ignored) for (owner, offset), evicting by CLOCK when the shard is full. Only verified bytes may
 * be put: the cache returns them as they are. Putting a key already cached replaces its value. */
void page_cache_put(PageCache *pc, uint64_t owner, uint64_t offset, const void *value, size_t len);

/* page_cache_stats: a snapshot of the counters (zeros for NULL). */
void page_cache_stats(PageCache *pc, PageCacheStats *out);

#endif
