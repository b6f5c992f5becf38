/* page_cache.c: sharded CLOCK cache of decoded layer values (page_cache.h). */
#include "pageserver/page_cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shared/hash.h"
#include "shared/str.h"

/* Slot: one cached value; `next` chains the slots of a hash bucket (index + 1, 0 = end). */
typedef struct Slot {
    uint64_t owner; /* 0: the slot is free */
    uint64_t offset;
    uint32_t len;
    uint32_t next;
    bool referenced; /* CLOCK: hit since the hand last passed */
} Slot;

typedef struct Shard {
    pthread_mutex_t mu;
    Slot *slots;
    uint8_t *data;     /* n_slots x PAGE_CACHE_VALUE_MAX */
    uint32_t *buckets; /* n_buckets heads (slot index + 1, 0 = empty) */
    uint32_t n_slots;
    uint32_t n_buckets; /* a power of two */
    uint32_t hand;
} Shard;

struct PageCache {
    Shard *shards;
    uint32_t n_shards;
    uint64_t capacity_bytes;
    PageCacheMetrics m;
    atomic_uint_fast64_t hits, misses, evictions, entries, bytes;
};

static atomic_uint_fast64_t next_owner = 1;

uint64_t page_cache_owner_new(void)
{
    return atomic_fetch_add(&next_owner, 1);
}

/* hash: a 64-bit mix of the key. */
static uint64_t hash_key(uint64_t owner, uint64_t offset)
{
    return hash_mix64(owner * HASH_GOLDEN64 ^ offset);
}

PageCache *page_cache_new(uint64_t capacity_bytes, const PageCacheMetrics *metrics)
{
    uint64_t n_slots = capacity_bytes / PAGE_CACHE_VALUE_MAX;
    if (n_slots == 0)
        return NULL;
    if (n_slots > UINT32_MAX / 2)
        n_slots = UINT32_MAX / 2;
    PageCache *pc = xcalloc(1, sizeof(*pc));
    pc->n_shards = n_slots < PAGE_CACHE_SHARDS ? (uint32_t)n_slots : PAGE_CACHE_SHARDS;
    pc->shards = xcalloc(pc->n_shards, sizeof(*pc->shards));
    if (metrics != NULL)
        pc->m = *metrics;
    for (uint32_t i = 0; i < pc->n_shards; i++) {
        Shard *s = &pc->shards[i];
        s->n_slots = (uint32_t)(n_slots / pc->n_shards + (i < n_slots % pc->n_shards ? 1 : 0));
        s->n_buckets = 1;
        while (s->n_buckets < s->n_slots * 2u)
            s->n_buckets *= 2;
        s->slots = xcalloc(s->n_slots, sizeof(*s->slots));
        s->buckets = xcalloc(s->n_buckets, sizeof(*s->buckets));
        s->data = xmalloc((size_t)s->n_slots * PAGE_CACHE_VALUE_MAX);
        pthread_mutex_init(&s->mu, NULL);
        pc->capacity_bytes += (uint64_t)s->n_slots * PAGE_CACHE_VALUE_MAX;
    }
    return pc;
}

void page_cache_free(PageCache *pc)
{
    if (pc == NULL)
        return;
    for (uint32_t i = 0; i < pc->n_shards; i++) {
        Shard *s = &pc->shards[i];
        pthread_mutex_destroy(&s->mu);
        free(s->slots);
        free(s->buckets);
        free(s->data);
    }
    free(pc->shards);
    free(pc);
}

static Shard *shard_of(PageCache *pc, uint64_t h)
{
    return &pc->shards[(h >> 32) % pc->n_shards];
}

/* shard_find: the slot index of the key in s, or -1; under s->mu. */
static int64_t shard_find(const Shard *s, uint64_t h, uint64_t owner, uint64_t offset)
{
    for (uint32_t i = s->buckets[h & (s->n_buckets - 1)]; i != 0; i = s->slots[i - 1].next) {
        const Slot *e = &s->slots[i - 1];
        if (e->owner == owner && e->offset == offset)
            return (int64_t)i - 1;
    }
    return -1;
}

/* shard_unlink: remove slot idx (in use) from its bucket chain and free it; under s->mu. */
static void shard_unlink(PageCache *pc, Shard *s, uint32_t idx)
{
    Slot *e = &s->slots[idx];
    uint32_t *p = &s->buckets[hash_key(e->owner, e->offset) & (s->n_buckets - 1)];
    while (*p != idx + 1)
        p = &s->slots[*p - 1].next;
    *p = e->next;
    atomic_fetch_sub(&pc->entries, 1);
    atomic_fetch_sub(&pc->bytes, e->len);
    if (pc->m.bytes != NULL)
        metric_gauge_add(pc->m.bytes, -(double)e->len);
    e->owner = 0;
    e->next = 0;
    e->len = 0;
    e->referenced = false;
}

/* shard_victim: a free slot, evicting by CLOCK when there is none; under s->mu. */
static uint32_t shard_victim(PageCache *pc, Shard *s)
{
    for (;;) {
        uint32_t idx = s->hand;
        s->hand = (s->hand + 1) % s->n_slots;
        Slot *e = &s->slots[idx];
        if (e->owner == 0)
            return idx;
        if (e->referenced) {
            e->referenced = false;
            continue;
        }
        shard_unlink(pc, s, idx);
        atomic_fetch_add(&pc->evictions, 1);
        if (pc->m.evictions != NULL)
            metric_counter_add(pc->m.evictions, 1);
        return idx;
    }
}

/* lookup: the hit or miss of page_cache_get; a miss is counted when count_miss. */
static bool lookup(PageCache *pc, uint64_t owner, uint64_t offset, void *buf, size_t cap,
                   void **alloc, size_t *len, bool count_miss)
{
    if (pc == NULL)
        return false;
    uint64_t h = hash_key(owner, offset);
    Shard *s = shard_of(pc, h);
    bool hit = false;
    pthread_mutex_lock(&s->mu);
    int64_t i = shard_find(s, h, owner, offset);
    if (i >= 0 && s->slots[i].len <= cap) {
        Slot *e = &s->slots[i];
        e->referenced = true;
        if (alloc != NULL)
            buf = *alloc = xmalloc(e->len ? e->len : 1);
        memcpy(buf, s->data + (size_t)i * PAGE_CACHE_VALUE_MAX, e->len);
        *len = e->len;
        hit = true;
    }
    pthread_mutex_unlock(&s->mu);
    if (!hit && !count_miss)
        return false;
    atomic_fetch_add(hit ? &pc->hits : &pc->misses, 1);
    MetricCounter *c = hit ? pc->m.hits : pc->m.misses;
    if (c != NULL)
        metric_counter_add(c, 1);
    return hit;
}

bool page_cache_get(PageCache *pc, uint64_t owner, uint64_t offset, void *buf, size_t cap,
                    size_t *len)
{
    return lookup(pc, owner, offset, buf, cap, NULL, len, true);
}

bool page_cache_get_copy(PageCache *pc, uint64_t owner, uint64_t offset, bool count_miss,
                         void **value, size_t *len)
{
    return lookup(pc, owner, offset, NULL, SIZE_MAX, value, len, count_miss);
}

void page_cache_put(PageCache *pc, uint64_t owner, uint64_t offset, const void *value, size_t len)
{
    if (pc == NULL || len > PAGE_CACHE_VALUE_MAX || owner == 0)
        return;
    uint64_t h = hash_key(owner, offset);
    Shard *s = shard_of(pc, h);
    pthread_mutex_lock(&s->mu);
    int64_t found = shard_find(s, h, owner, offset);
    if (found >= 0)
        shard_unlink(pc, s, (uint32_t)found);
    uint32_t idx = shard_victim(pc, s);
    Slot *e = &s->slots[idx];
    e->owner = owner;
    e->offset = offset;
    e->len = (uint32_t)len;
    e->referenced = false;
    memcpy(s->data + (size_t)idx * PAGE_CACHE_VALUE_MAX, value, len);
    uint32_t *head = &s->buckets[h & (s->n_buckets - 1)];
    e->next = *head;
    *head = idx + 1;
    atomic_fetch_add(&pc->entries, 1);
    atomic_fetch_add(&pc->bytes, len);
    if (pc->m.bytes != NULL)
        metric_gauge_add(pc->m.bytes, (double)len);
    pthread_mutex_unlock(&s->mu);
}

void page_cache_stats(PageCache *pc, PageCacheStats *out)
{
    memset(out, 0, sizeof(*out));
    if (pc == NULL)
        return;
    out->hits = atomic_load(&pc->hits);
    out->misses = atomic_load(&pc->misses);
    out->evictions = atomic_load(&pc->evictions);
    out->entries = atomic_load(&pc->entries);
    out->bytes = atomic_load(&pc->bytes);
    out->capacity_bytes = pc->capacity_bytes;
}
