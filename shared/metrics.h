/*
 * metrics.h: counters, gauges and histograms with Prometheus text exposition (GET /metrics).
 *
 * A series is (name, labels); metrics_counter() etc. get or create it, so callers may look a series
 * up once and keep the pointer (the registry owns it until metrics_registry_free). Updates are
 * atomic and may come from any thread. Labels are given pre-rendered: `route="/v1/x",method="GET"`
 * (NULL = no labels); use metrics_label_escape for values from outside.
 */
#ifndef SHARED_METRICS_H
#define SHARED_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct MetricsRegistry MetricsRegistry;
typedef struct MetricCounter MetricCounter;
typedef struct MetricGauge MetricGauge;
typedef struct MetricHistogram MetricHistogram;

MetricsRegistry *metrics_registry_new(void); /* freed with metrics_registry_free */
void metrics_registry_free(MetricsRegistry *reg);

MetricCounter *metrics_counter(MetricsRegistry *reg, const char *name, const char *help,
                               const char *labels);
void metric_counter_add(MetricCounter *c, uint64_t n);
uint64_t metric_counter_get(const MetricCounter *c);

MetricGauge *metrics_gauge(MetricsRegistry *reg, const char *name, const char *help,
                           const char *labels);
void metric_gauge_set(MetricGauge *g, double v);
void metric_gauge_add(MetricGauge *g, double delta);
double metric_gauge_get(const MetricGauge *g);

/* buckets: ascending upper bounds (+Inf is implicit); NULL = METRICS_LATENCY_BUCKETS. */
MetricHistogram *metrics_histogram(MetricsRegistry *reg, const char *name, const char *help,
                                   const char *labels, const double *buckets, size_t n_buckets);
void metric_histogram_observe(MetricHistogram *h, double v);
uint64_t metric_histogram_count(const MetricHistogram *h);

extern const double METRICS_LATENCY_BUCKETS[];
extern const size_t METRICS_LATENCY_BUCKETS_COUNT;

/* metrics_render: the whole registry in Prometheus text format 0.0.4; the caller frees. */
char *metrics_render(MetricsRegistry *reg);

/* metrics_label_escape: escape \, " and newline for a label value into out[cap]. */
void metrics_label_escape(const char *value, char *out, size_t cap);

#endif
