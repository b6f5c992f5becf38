/*
 * metrics.c: the metrics registry and its Prometheus text exposition (format 0.0.4).
 *
 * A registry holds families (name, help, type); each family holds series keyed by their
 * pre-rendered label string. Lookup and creation take the registry mutex (a hash table over
 * "name\0labels" keeps the per-request lookups cheap); updates never do: counters and histogram
 * buckets are atomic integers, gauges and histogram sums are doubles stored as bits in atomic
 * 64-bit integers and updated with compare-and-swap. Series are never freed before the registry,
 * so callers may keep the pointers.
 *
 * Asking for an existing name with another type (or an invalid name, unsorted buckets, a NULL
 * registry) is a programming error: it is logged and the caller gets a per-registry dummy series
 * that works but is never rendered, so a mistake cannot crash a daemon.
 */
#include "shared/metrics.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/log.h"
#include "shared/str.h"

const double METRICS_LATENCY_BUCKETS[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                          0.5,   1.0,   2.5,  5.0,   10.0, 30.0};
const size_t METRICS_LATENCY_BUCKETS_COUNT =
    sizeof(METRICS_LATENCY_BUCKETS) / sizeof(METRICS_LATENCY_BUCKETS[0]);

typedef enum MetricType {
    METRIC_COUNTER,
    METRIC_GAUGE,
    METRIC_HISTOGRAM,
    METRIC_TYPE_COUNT
} MetricType;

static const char *METRIC_TYPE_NAMES[METRIC_TYPE_COUNT] = {"counter", "gauge", "histogram"};

struct MetricCounter {
    _Atomic uint64_t value;
};

struct MetricGauge {
    _Atomic uint64_t bits; /* the double's bit pattern */
};

struct MetricHistogram {
    double *bounds; /* n_bounds ascending upper bounds; +Inf implicit */
    size_t n_bounds;
    _Atomic uint64_t *buckets; /* n_bounds + 1 non-cumulative counts; the last is +Inf */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_bits;
};

typedef struct MetricFamily MetricFamily;

typedef struct MetricSeries {
    MetricFamily *family;
    char *labels; /* "" = no labels */
    uint64_t hash;
    struct MetricSeries *hash_next;
    union {
        MetricCounter counter;
        MetricGauge gauge;
        MetricHistogram histogram;
    } u;
} MetricSeries;

struct MetricFamily {
    char *name;
    char *help;
    MetricType type;
    MetricSeries **series;
    size_t n_series, cap_series;
};

struct MetricsRegistry {
    pthread_mutex_t lock;
    MetricFamily **families;
    size_t n_families, cap_families;
    MetricSeries **table; /* hash buckets over (name, labels) */
    size_t table_size;    /* power of two */
    size_t n_entries;
    MetricSeries *dummy[METRIC_TYPE_COUNT]; /* handed out on programming errors; not rendered */
};

/* ---- doubles in atomics ---- */

static uint64_t double_to_bits(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof(b));
    return b;
}

static double bits_to_double(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof(v));
    return v;
}

/* atomic_double_add: add delta with a CAS loop (no atomic floating add in C11). */
static void atomic_double_add(_Atomic uint64_t *bits, double delta)
{
    uint64_t old = atomic_load_explicit(bits, memory_order_relaxed);
    for (;;) {
        uint64_t next = double_to_bits(bits_to_double(old) + delta);
        if (atomic_compare_exchange_weak_explicit(bits, &old, next, memory_order_relaxed,
                                                  memory_order_relaxed))
            return;
    }
}

/* ---- series ---- */

static uint64_t series_hash(const char *name, const char *labels)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h = (h ^ 0xffu) * 1099511628211ULL; /* separator that cannot occur in a name */
    for (const char *p = labels; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h;
}

/* histogram_init: copy the bounds; the counts start at zero. */
static void histogram_init(MetricHistogram *h, const double *bounds, size_t n)
{
    h->n_bounds = n;
    h->bounds = xcalloc(n ? n : 1, sizeof(double));
    if (n)
        memcpy(h->bounds, bounds, n * sizeof(double));
    h->buckets = xcalloc(n + 1, sizeof(_Atomic uint64_t));
    for (size_t i = 0; i <= n; i++)
        atomic_init(&h->buckets[i], 0);
    atomic_init(&h->count, 0);
    atomic_init(&h->sum_bits, double_to_bits(0.0));
}

static MetricSeries *series_new(MetricFamily *fam, MetricType type, const char *labels,
                                const double *bounds, size_t n_bounds)
{
    MetricSeries *s = xcalloc(1, sizeof(*s));
    s->family = fam;
    s->labels = xstrdup(labels);
    switch (type) {
    case METRIC_COUNTER:
        atomic_init(&s->u.counter.value, 0);
        break;
    case METRIC_GAUGE:
        atomic_init(&s->u.gauge.bits, double_to_bits(0.0));
        break;
    case METRIC_HISTOGRAM:
    case METRIC_TYPE_COUNT:
        histogram_init(&s->u.histogram, bounds, n_bounds);
        break;
    }
    return s;
}

static void series_free(MetricSeries *s, MetricType type)
{
    if (s == NULL)
        return;
    if (type == METRIC_HISTOGRAM) {
        free(s->u.histogram.bounds);
        free((void *)s->u.histogram.buckets);
    }
    free(s->labels);
    free(s);
}

/* ---- registry ---- */

MetricsRegistry *metrics_registry_new(void)
{
    MetricsRegistry *reg = xcalloc(1, sizeof(*reg));
    pthread_mutex_init(&reg->lock, NULL);
    reg->table_size = 256;
    reg->table = xcalloc(reg->table_size, sizeof(MetricSeries *));
    reg->dummy[METRIC_COUNTER] = series_new(NULL, METRIC_COUNTER, "", NULL, 0);
    reg->dummy[METRIC_GAUGE] = series_new(NULL, METRIC_GAUGE, "", NULL, 0);
    reg->dummy[METRIC_HISTOGRAM] = series_new(NULL, METRIC_HISTOGRAM, "", METRICS_LATENCY_BUCKETS,
                                              METRICS_LATENCY_BUCKETS_COUNT);
    return reg;
}

void metrics_registry_free(MetricsRegistry *reg)
{
    if (reg == NULL)
        return;
    for (size_t f = 0; f < reg->n_families; f++) {
        MetricFamily *fam = reg->families[f];
        for (size_t i = 0; i < fam->n_series; i++)
            series_free(fam->series[i], fam->type);
        free(fam->series);
        free(fam->name);
        free(fam->help);
        free(fam);
    }
    for (int t = 0; t < METRIC_TYPE_COUNT; t++)
        series_free(reg->dummy[t], (MetricType)t);
    free(reg->families);
    free(reg->table);
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

/* metric_name_valid: Prometheus metric names are [a-zA-Z_:][a-zA-Z0-9_:]*. */
static bool metric_name_valid(const char *name)
{
    if (name == NULL || name[0] == '\0' || (name[0] >= '0' && name[0] <= '9'))
        return false;
    for (const char *p = name; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == ':';
        if (!ok)
            return false;
    }
    return true;
}

static bool buckets_valid(const double *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(b[i]) || (i > 0 && !(b[i] > b[i - 1])))
            return false;
    }
    return true;
}

static void table_grow(MetricsRegistry *reg)
{
    size_t size = reg->table_size * 2;
    MetricSeries **table = xcalloc(size, sizeof(MetricSeries *));
    for (size_t i = 0; i < reg->table_size; i++) {
        MetricSeries *s = reg->table[i];
        while (s != NULL) {
            MetricSeries *next = s->hash_next;
            size_t slot = (size_t)(s->hash & (size - 1));
            s->hash_next = table[slot];
            table[slot] = s;
            s = next;
        }
    }
    free(reg->table);
    reg->table = table;
    reg->table_size = size;
}

static MetricFamily *family_find(MetricsRegistry *reg, const char *name)
{
    for (size_t i = 0; i < reg->n_families; i++) {
        if (strcmp(reg->families[i]->name, name) == 0)
            return reg->families[i];
    }
    return NULL;
}

/* null_registry: where a lookup in a NULL registry gets its dummy series from; created once and
 * kept for the life of the process. */
static MetricsRegistry *g_null_registry;
static pthread_once_t g_null_registry_once = PTHREAD_ONCE_INIT;

static void null_registry_init(void)
{
    g_null_registry = metrics_registry_new();
}

static MetricsRegistry *null_registry(void)
{
    pthread_once(&g_null_registry_once, null_registry_init);
    return g_null_registry;
}

/* metrics_get_or_create: the common lookup. Holding the lock, find (name, labels) in the hash
 * table; on a miss find or create the family, then create the series. Any misuse returns the
 * dummy of the requested type. */
static MetricSeries *metrics_get_or_create(MetricsRegistry *reg, MetricType type, const char *name,
                                           const char *help, const char *labels,
                                           const double *bounds, size_t n_bounds)
{
    if (reg == NULL) {
        log_error("metrics: %s looked up in a NULL registry", name ? name : "(null)");
        return null_registry()->dummy[type];
    }
    if (labels == NULL)
        labels = "";
    if (!metric_name_valid(name)) {
        log_error("metrics: invalid metric name \"%s\"", name ? name : "(null)");
        return reg->dummy[type];
    }
    if (type == METRIC_HISTOGRAM) {
        if (bounds == NULL) {
            bounds = METRICS_LATENCY_BUCKETS;
            n_bounds = METRICS_LATENCY_BUCKETS_COUNT;
        }
        if (!buckets_valid(bounds, n_bounds)) {
            log_error("metrics: histogram %s: buckets must be finite and strictly ascending", name);
            return reg->dummy[type];
        }
    }
    uint64_t hash = series_hash(name, labels);

    pthread_mutex_lock(&reg->lock);
    MetricSeries *found = NULL;
    for (MetricSeries *s = reg->table[hash & (reg->table_size - 1)]; s; s = s->hash_next) {
        if (s->hash == hash && strcmp(s->family->name, name) == 0 &&
            strcmp(s->labels, labels) == 0) {
            found = s;
            break;
        }
    }
    MetricFamily *fam = found ? found->family : family_find(reg, name);
    if (fam != NULL && fam->type != type) {
        pthread_mutex_unlock(&reg->lock);
        log_error("metrics: %s is registered as a %s, asked for a %s", name,
                  METRIC_TYPE_NAMES[fam->type], METRIC_TYPE_NAMES[type]);
        return reg->dummy[type];
    }
    if (found == NULL) {
        if (fam == NULL) {
            fam = xcalloc(1, sizeof(*fam));
            fam->name = xstrdup(name);
            fam->help = xstrdup(help ? help : "");
            fam->type = type;
            if (reg->n_families == reg->cap_families) {
                reg->cap_families = reg->cap_families ? reg->cap_families * 2 : 32;
                reg->families = xrealloc(reg->families, reg->cap_families * sizeof(MetricFamily *));
            }
            reg->families[reg->n_families++] = fam;
        }
        found = series_new(fam, type, labels, bounds, n_bounds);
        found->hash = hash;
        if (fam->n_series == fam->cap_series) {
            fam->cap_series = fam->cap_series ? fam->cap_series * 2 : 8;
            fam->series = xrealloc(fam->series, fam->cap_series * sizeof(MetricSeries *));
        }
        fam->series[fam->n_series++] = found;
        if (reg->n_entries + 1 > reg->table_size)
            table_grow(reg);
        size_t slot = (size_t)(hash & (reg->table_size - 1));
        found->hash_next = reg->table[slot];
        reg->table[slot] = found;
        reg->n_entries++;
    }
    pthread_mutex_unlock(&reg->lock);
    return found;
}

MetricCounter *metrics_counter(MetricsRegistry *reg, const char *name, const char *help,
                               const char *labels)
{
    return &metrics_get_or_create(reg, METRIC_COUNTER, name, help, labels, NULL, 0)->u.counter;
}

void metric_counter_add(MetricCounter *c, uint64_t n)
{
    atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

uint64_t metric_counter_get(const MetricCounter *c)
{
    return atomic_load_explicit(&((MetricCounter *)c)->value, memory_order_relaxed);
}

MetricGauge *metrics_gauge(MetricsRegistry *reg, const char *name, const char *help,
                           const char *labels)
{
    return &metrics_get_or_create(reg, METRIC_GAUGE, name, help, labels, NULL, 0)->u.gauge;
}

void metric_gauge_set(MetricGauge *g, double v)
{
    atomic_store_explicit(&g->bits, double_to_bits(v), memory_order_relaxed);
}

void metric_gauge_add(MetricGauge *g, double delta)
{
    atomic_double_add(&g->bits, delta);
}

double metric_gauge_get(const MetricGauge *g)
{
    return bits_to_double(atomic_load_explicit(&((MetricGauge *)g)->bits, memory_order_relaxed));
}

MetricHistogram *metrics_histogram(MetricsRegistry *reg, const char *name, const char *help,
                                   const char *labels, const double *buckets, size_t n_buckets)
{
    return &metrics_get_or_create(reg, METRIC_HISTOGRAM, name, help, labels, buckets, n_buckets)
                ->u.histogram;
}

/* metric_histogram_observe: binary search for the first bound >= v (NaN lands in +Inf). */
void metric_histogram_observe(MetricHistogram *h, double v)
{
    size_t lo = 0, hi = h->n_bounds;
    if (isnan(v)) {
        lo = h->n_bounds;
    } else {
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (v <= h->bounds[mid])
                hi = mid;
            else
                lo = mid + 1;
        }
    }
    atomic_fetch_add_explicit(&h->buckets[lo], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_double_add(&h->sum_bits, v);
}

uint64_t metric_histogram_count(const MetricHistogram *h)
{
    return atomic_load_explicit(&((MetricHistogram *)h)->count, memory_order_relaxed);
}

/* ---- rendering ---- */

void metrics_label_escape(const char *value, char *out, size_t cap)
{
    if (cap == 0)
        return;
    size_t n = 0;
    for (const char *p = value ? value : ""; *p; p++) {
        const char *rep = NULL;
        if (*p == '\\')
            rep = "\\\\";
        else if (*p == '"')
            rep = "\\\"";
        else if (*p == '\n')
            rep = "\\n";
        size_t need = rep ? 2 : 1;
        if (n + need >= cap) /* never cut an escape in half */
            break;
        if (rep) {
            out[n++] = rep[0];
            out[n++] = rep[1];
        } else {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
}

/* format_double: the shortest of %.15g/%.17g that reads back exactly, and the Prometheus
 * spellings of the special values. */
static void format_double(double v, char *out, size_t cap)
{
    if (isnan(v)) {
        str_copy(out, cap, "NaN");
    } else if (isinf(v)) {
        str_copy(out, cap, v > 0 ? "+Inf" : "-Inf");
    } else {
        snprintf(out, cap, "%.15g", v);
        if (strtod(out, NULL) != v)
            snprintf(out, cap, "%.17g", v);
    }
}

/* append_help: HELP text escapes backslash and newline (not quotes). */
static void append_help(StrBuf *b, const char *help)
{
    for (const char *p = help; *p; p++) {
        if (*p == '\\')
            strbuf_append_str(b, "\\\\");
        else if (*p == '\n')
            strbuf_append_str(b, "\\n");
        else
            strbuf_append(b, p, 1);
    }
}

static void append_series_name(StrBuf *b, const char *name, const char *suffix, const char *labels,
                               const char *le)
{
    strbuf_append_str(b, name);
    strbuf_append_str(b, suffix);
    bool has_labels = labels[0] != '\0';
    if (!has_labels && le == NULL)
        return;
    strbuf_append_str(b, "{");
    strbuf_append_str(b, labels);
    if (le != NULL)
        strbuf_printf(b, "%sle=\"%s\"", has_labels ? "," : "", le);
    strbuf_append_str(b, "}");
}

static void render_histogram(StrBuf *b, const char *name, const MetricSeries *s)
{
    MetricHistogram *h = (MetricHistogram *)&s->u.histogram;
    char num[64];
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= h->n_bounds; i++) {
        cumulative += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        if (i < h->n_bounds)
            format_double(h->bounds[i], num, sizeof(num));
        else
            str_copy(num, sizeof(num), "+Inf");
        append_series_name(b, name, "_bucket", s->labels, num);
        strbuf_printf(b, " %" PRIu64 "\n", cumulative);
    }
    format_double(bits_to_double(atomic_load_explicit(&h->sum_bits, memory_order_relaxed)), num,
                  sizeof(num));
    append_series_name(b, name, "_sum", s->labels, NULL);
    strbuf_printf(b, " %s\n", num);
    /* _count from the buckets so it always equals the +Inf bucket, even mid-update */
    append_series_name(b, name, "_count", s->labels, NULL);
    strbuf_printf(b, " %" PRIu64 "\n", cumulative);
}

static int family_cmp(const void *a, const void *b)
{
    const MetricFamily *fa = *(const MetricFamily *const *)a;
    const MetricFamily *fb = *(const MetricFamily *const *)b;
    return strcmp(fa->name, fb->name);
}

static int series_cmp(const void *a, const void *b)
{
    const MetricSeries *sa = *(const MetricSeries *const *)a;
    const MetricSeries *sb = *(const MetricSeries *const *)b;
    return strcmp(sa->labels, sb->labels);
}

/* metrics_render: sorts families by name and series by labels in place (under the lock, so the
 * arrays are never seen half-sorted); names and labels are unique, so the order is total. */
char *metrics_render(MetricsRegistry *reg)
{
    StrBuf b = STRBUF_INIT;
    char num[64];
    pthread_mutex_lock(&reg->lock);
    if (reg->n_families > 1)
        qsort(reg->families, reg->n_families, sizeof(MetricFamily *), family_cmp);
    for (size_t f = 0; f < reg->n_families; f++) {
        MetricFamily *fam = reg->families[f];
        if (fam->n_series > 1)
            qsort(fam->series, fam->n_series, sizeof(MetricSeries *), series_cmp);
        strbuf_printf(&b, "# HELP %s ", fam->name);
        append_help(&b, fam->help);
        strbuf_printf(&b, "\n# TYPE %s %s\n", fam->name, METRIC_TYPE_NAMES[fam->type]);
        for (size_t i = 0; i < fam->n_series; i++) {
            const MetricSeries *s = fam->series[i];
            switch (fam->type) {
            case METRIC_COUNTER:
                append_series_name(&b, fam->name, "", s->labels, NULL);
                strbuf_printf(&b, " %" PRIu64 "\n", metric_counter_get(&s->u.counter));
                break;
            case METRIC_GAUGE:
                format_double(metric_gauge_get(&s->u.gauge), num, sizeof(num));
                append_series_name(&b, fam->name, "", s->labels, NULL);
                strbuf_printf(&b, " %s\n", num);
                break;
            case METRIC_HISTOGRAM:
            case METRIC_TYPE_COUNT:
                render_histogram(&b, fam->name, s);
                break;
            }
        }
    }
    pthread_mutex_unlock(&reg->lock);
    return strbuf_detach(&b);
}
