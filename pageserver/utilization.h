/*
 * utilization.h: GET /v1/utilization, the numbers the storage controller schedules by
 * (pageserver.md "Utilization"):
 *
 *   {"disk_usage_bytes", "free_space_bytes", "disk_wanted_bytes", "disk_usable_pct",
 *    "shard_count", "max_shard_count", "utilization_score", "captured_at"}
 *
 * disk_usage_bytes is what the work directory's tenants/ tree occupies; free_space_bytes the
 * file system's space available to us (statvfs f_bavail); disk_wanted_bytes = disk_usage_bytes
 * (no eviction yet: we want what we hold); usable disk = (usage + free) * disk_usable_pct / 100;
 * utilization_score = max(wanted * 1e6 / usable, shard_count * 1e6 / max_shard_count), so
 * 1,000,000 is full and >= 2,000,000 overloaded. The disk is measured on a worker thread.
 */
#ifndef PAGESERVER_UTILIZATION_H
#define PAGESERVER_UTILIZATION_H

#include <stdint.h>

#include <jansson.h>

#include "shared/err.h"

struct PageserverApp;

typedef struct Utilization {
    uint64_t disk_usage_bytes;
    uint64_t free_space_bytes;
    uint64_t disk_wanted_bytes;
    uint32_t disk_usable_pct;
    uint32_t shard_count;
    uint32_t max_shard_count;
    uint64_t utilization_score;
    int64_t captured_at_ms; /* unix ms */
} Utilization;

/* utilization_compute: fill wanted and score from the measured fields (pure). */
void utilization_compute(Utilization *u);
/* utilization_to_json: the wire object; new reference. */
json_t *utilization_to_json(const Utilization *u);
/* UtilizationFn: u is valid during the call; NULL exactly when err != NULL. */
typedef void (*UtilizationFn)(const Err *err, const Utilization *u, void *arg);
/* utilization_measure: measure on a worker (the disk) and on the loop (the shard count); one
 * callback, never from inside the call. */
void utilization_measure(struct PageserverApp *app, UtilizationFn cb, void *arg);

#endif
