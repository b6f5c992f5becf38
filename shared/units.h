/*
 * units.h: human durations ("10m", "1h", "20 s", "7 days", "1h 30m", "500ms") and byte sizes
 * (123, "64MiB", "1 GB"), as used in tenant config and daemon flags.
 */
#ifndef SHARED_UNITS_H
#define SHARED_UNITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

/* duration_parse_ms: one or more "<integer><space?><unit>" terms. Units: ms, msec(s),
 * s/sec/secs/second/seconds, m/min/mins/minute/minutes, h/hr/hrs/hour/hours, d/day/days,
 * w/week/weeks. A bare number, an unknown unit, an empty string or overflow -> ERR_BAD_REQUEST. */
bool duration_parse_ms(const char *s, uint64_t *out_ms, Err *err) MUST_CHECK;

/* duration_format_ms: the shortest exact form, e.g. 600000 -> "10m", 5400000 -> "1h 30m",
 * 1500 -> "1s 500ms", 0 -> "0s". */
void duration_format_ms(uint64_t ms, char *out, size_t cap);

/* bytes_parse: a plain integer, or an integer with unit B, K/KB/KiB, M/MB/MiB, G/GB/GiB,
 * T/TB/TiB (KB = 1000, KiB = 1024; K/M/G/T alone are binary), optional space. */
bool bytes_parse(const char *s, uint64_t *out, Err *err) MUST_CHECK;

#endif
