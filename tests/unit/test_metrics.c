/* test_metrics.c: unit tests for shared/metrics.c (registry, atomics, Prometheus rendering). */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shared/log.h"
#include "shared/metrics.h"
#include "shared/str.h"

/* Parsed exposition: every sample line as (series key, value text), checked against the format
 * grammar while parsing: HELP then TYPE before the samples of a family, names valid, samples of a
 * family only with its name (plus _bucket/_sum/_count for histograms). */
typedef struct Sample {
    char key[256]; /* name{labels} exactly as rendered */
    char value[64];
} Sample;

typedef struct Parsed {
    Sample samples[512];
    size_t n;
    char families[64][64];
    char types[64][16];
    size_t n_families;
} Parsed;

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == ':';
}

static void parse_exposition(const char *text, Parsed *p)
{
    memset(p, 0, sizeof(*p));
    char current[64] = "";
    char current_type[16] = "";
    bool saw_help = false;
    const char *line = text;
    assert_true(text[0] == '\0' || text[strlen(text) - 1] == '\n');
    while (*line) {
        const char *nl = strchr(line, '\n');
        assert_non_null(nl);
        size_t len = (size_t)(nl - line);
        char buf[1024];
        assert_true(len < sizeof(buf));
        memcpy(buf, line, len);
        buf[len] = '\0';
        line = nl + 1;

        if (strncmp(buf, "# HELP ", 7) == 0) {
            const char *name = buf + 7;
            const char *sp = strchr(name, ' ');
            assert_non_null(sp);
            assert_true((size_t)(sp - name) < sizeof(current));
            memcpy(current, name, (size_t)(sp - name));
            current[sp - name] = '\0';
            for (size_t i = 0; i < p->n_families; i++)
                assert_string_not_equal(p->families[i], current); /* each family once */
            saw_help = true;
            current_type[0] = '\0';
            continue;
        }
        if (strncmp(buf, "# TYPE ", 7) == 0) {
            assert_true(saw_help);
            char name[64], type[16];
            assert_int_equal(sscanf(buf + 7, "%63s %15s", name, type), 2);
            assert_string_equal(name, current);
            assert_true(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
                        strcmp(type, "histogram") == 0);
            str_copy(current_type, sizeof(current_type), type);
            assert_true(p->n_families < 64);
            str_copy(p->families[p->n_families], sizeof(p->families[0]), current);
            str_copy(p->types[p->n_families], sizeof(p->types[0]), type);
            p->n_families++;
            continue;
        }
        assert_true(buf[0] != '#');
        assert_true(current_type[0] != '\0'); /* a sample before any TYPE */
        /* name */
        size_t i = 0;
        while (name_char(buf[i]))
            i++;
        assert_true(i > 0);
        char name[128];
        memcpy(name, buf, i);
        name[i] = '\0';
        if (strcmp(current_type, "histogram") == 0) {
            char expect_bucket[96], expect_sum[96], expect_count[96];
            snprintf(expect_bucket, sizeof(expect_bucket), "%s_bucket", current);
            snprintf(expect_sum, sizeof(expect_sum), "%s_sum", current);
            snprintf(expect_count, sizeof(expect_count), "%s_count", current);
            assert_true(strcmp(name, expect_bucket) == 0 || strcmp(name, expect_sum) == 0 ||
                        strcmp(name, expect_count) == 0);
        } else {
            assert_string_equal(name, current);
        }
        /* labels: {k="v",...} with escapes inside values */
        if (buf[i] == '{') {
            i++;
            while (buf[i] != '}') {
                size_t k = i;
                while (name_char(buf[i]))
                    i++;
                assert_true(i > k);
                assert_int_equal(buf[i], '=');
                assert_int_equal(buf[i + 1], '"');
                i += 2;
                while (buf[i] != '"') {
                    assert_true(buf[i] != '\0');
                    if (buf[i] == '\\') {
                        assert_true(buf[i + 1] == '\\' || buf[i + 1] == '"' || buf[i + 1] == 'n');
                        i++;
                    }
                    i++;
                }
                i++;
                if (buf[i] == ',')
                    i++;
                else
                    assert_int_equal(buf[i], '}');
            }
            i++;
        }
        assert_int_equal(buf[i], ' ');
        const char *value = buf + i + 1;
        assert_true(value[0] != '\0');
        if (strcmp(value, "NaN") != 0 && strcmp(value, "+Inf") != 0 && strcmp(value, "-Inf") != 0) {
            char *end = NULL;
            strtod(value, &end);
            assert_true(end != value && *end == '\0');
        }
        assert_true(p->n < sizeof(p->samples) / sizeof(p->samples[0]));
        assert_true(i < sizeof(p->samples[0].key));
        memcpy(p->samples[p->n].key, buf, i);
        p->samples[p->n].key[i] = '\0';
        assert_true(str_copy(p->samples[p->n].value, sizeof(p->samples[0].value), value));
        p->n++;
    }
}

static const char *sample(const Parsed *p, const char *key)
{
    for (size_t i = 0; i < p->n; i++) {
        if (strcmp(p->samples[i].key, key) == 0)
            return p->samples[i].value;
    }
    return NULL;
}

static void assert_sample(const Parsed *p, const char *key, const char *value)
{
    const char *v = sample(p, key);
    if (v == NULL)
        fail_msg("no sample %s", key);
    assert_string_equal(v, value);
}

static void test_counter_and_gauge_render(void **state)
{
    MetricsRegistry *reg = metrics_registry_new();
    MetricCounter *c = metrics_counter(reg, "requests_total", "Requests served.", "method=\"GET\"");
    metric_counter_add(c, 3);
    metric_counter_add(c, 4);
    assert_int_equal(metric_counter_get(c), 7);
    /* same series -> same pointer */
    assert_ptr_equal(metrics_counter(reg, "requests_total", "ignored", "method=\"GET\""), c);
    MetricCounter *c2 = metrics_counter(reg, "requests_total", NULL, "method=\"PUT\"");
    assert_ptr_not_equal(c, c2);
    metric_counter_add(c2, 1);

    MetricGauge *g = metrics_gauge(reg, "temperature", "Line one\nback\\slash", NULL);
    metric_gauge_set(g, 1.5);
    metric_gauge_add(g, -0.25);
    assert_true(metric_gauge_get(g) == 1.25);
    MetricGauge *g2 = metrics_gauge(reg, "temperature", NULL, "");
    assert_ptr_equal(g, g2); /* "" and NULL both mean no labels */

    char *text = metrics_render(reg);
    const char *expected = "# HELP requests_total Requests served.\n"
                           "# TYPE requests_total counter\n"
                           "requests_total{method=\"GET\"} 7\n"
                           "requests_total{method=\"PUT\"} 1\n"
                           "# HELP temperature Line one\\nback\\\\slash\n"
                           "# TYPE temperature gauge\n"
                           "temperature 1.25\n";
    assert_string_equal(text, expected);
    Parsed *p = malloc(sizeof(*p));
    parse_exposition(text, p);
    assert_int_equal(p->n, 3);
    free(p);
    free(text);
    metrics_registry_free(reg);
}

static void test_histogram_render(void **state)
{
    MetricsRegistry *reg = metrics_registry_new();
    static const double bounds[] = {0.1, 1, 10};
    MetricHistogram *h =
        metrics_histogram(reg, "op_seconds", "Operation latency.", "op=\"read\"", bounds, 3);
    static const double obs[] = {0.05, 0.1, 0.5, 1, 5, 50, 100};
    for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++)
        metric_histogram_observe(h, obs[i]);
    assert_int_equal(metric_histogram_count(h), 7);
    MetricHistogram *unlabelled = metrics_histogram(reg, "op_seconds", NULL, NULL, bounds, 3);
    metric_histogram_observe(unlabelled, 0.2);

    char *text = metrics_render(reg);
    Parsed *p = malloc(sizeof(*p));
    parse_exposition(text, p);
    assert_int_equal(p->n_families, 1);
    assert_string_equal(p->types[0], "histogram");
    /* cumulative, le merged after the series labels, bounds inclusive */
    assert_sample(p, "op_seconds_bucket{op=\"read\",le=\"0.1\"}", "2");
    assert_sample(p, "op_seconds_bucket{op=\"read\",le=\"1\"}", "4");
    assert_sample(p, "op_seconds_bucket{op=\"read\",le=\"10\"}", "5");
    assert_sample(p, "op_seconds_bucket{op=\"read\",le=\"+Inf\"}", "7");
    assert_sample(p, "op_seconds_sum{op=\"read\"}", "156.65");
    assert_sample(p, "op_seconds_count{op=\"read\"}", "7");
    assert_sample(p, "op_seconds_bucket{le=\"0.1\"}", "0");
    assert_sample(p, "op_seconds_bucket{le=\"1\"}", "1");
    assert_sample(p, "op_seconds_bucket{le=\"+Inf\"}", "1");
    assert_sample(p, "op_seconds_sum", "0.2");
    assert_sample(p, "op_seconds_count", "1");
    assert_int_equal(p->n, 12);
    /* the unlabelled series ("" sorts first) precedes op="read" */
    assert_string_equal(p->samples[0].key, "op_seconds_bucket{le=\"0.1\"}");
    free(p);
    free(text);
    metrics_registry_free(reg);
}

static void test_default_buckets(void **state)
{
    assert_true(METRICS_LATENCY_BUCKETS_COUNT >= 10 && METRICS_LATENCY_BUCKETS_COUNT <= 16);
    assert_true(METRICS_LATENCY_BUCKETS[0] == 0.001);
    assert_true(METRICS_LATENCY_BUCKETS[METRICS_LATENCY_BUCKETS_COUNT - 1] == 30.0);
    for (size_t i = 1; i < METRICS_LATENCY_BUCKETS_COUNT; i++)
        assert_true(METRICS_LATENCY_BUCKETS[i] > METRICS_LATENCY_BUCKETS[i - 1]);

    MetricsRegistry *reg = metrics_registry_new();
    MetricHistogram *h = metrics_histogram(reg, "lat_seconds", "h", NULL, NULL, 0);
    metric_histogram_observe(h, 0.0005);
    metric_histogram_observe(h, 31);
    char *text = metrics_render(reg);
    Parsed *p = malloc(sizeof(*p));
    parse_exposition(text, p);
    assert_int_equal(p->n, METRICS_LATENCY_BUCKETS_COUNT + 3);
    assert_sample(p, "lat_seconds_bucket{le=\"0.001\"}", "1");
    assert_sample(p, "lat_seconds_bucket{le=\"30\"}", "1");
    assert_sample(p, "lat_seconds_bucket{le=\"+Inf\"}", "2");
    assert_sample(p, "lat_seconds_count", "2");
    free(p);
    free(text);
    metrics_registry_free(reg);
}

static void test_sorted_output(void **state)
{
    MetricsRegistry *reg = metrics_registry_new();
    metric_counter_add(metrics_counter(reg, "zeta_total", "z", "b=\"2\""), 1);
    metric_gauge_set(metrics_gauge(reg, "alpha", "a", NULL), 2);
    metric_counter_add(metrics_counter(reg, "zeta_total", "z", "a=\"9\""), 1);
    metric_counter_add(metrics_counter(reg, "mid_total", "m", NULL), 1);
    metric_counter_add(metrics_counter(reg, "zeta_total", "z", "a=\"1\""), 1);
    char *text = metrics_render(reg);
    Parsed *p = malloc(sizeof(*p));
    parse_exposition(text, p);
    assert_int_equal(p->n_families, 3);
    assert_string_equal(p->families[0], "alpha");
    assert_string_equal(p->families[1], "mid_total");
    assert_string_equal(p->families[2], "zeta_total");
    assert_int_equal(p->n, 5);
    assert_string_equal(p->samples[2].key, "zeta_total{a=\"1\"}");
    assert_string_equal(p->samples[3].key, "zeta_total{a=\"9\"}");
    assert_string_equal(p->samples[4].key, "zeta_total{b=\"2\"}");
    free(p);
    free(text);
    /* rendering twice gives the same text */
    char *a = metrics_render(reg);
    char *b = metrics_render(reg);
    assert_string_equal(a, b);
    free(a);
    free(b);
    metrics_registry_free(reg);
}

static void test_gauge_values(void **state)
{
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0, "0"},
        {0.1, "0.1"},
        {-3, "-3"},
        {1e-9, "1e-09"},
        {1e20, "1e+20"},
        {123456789, "123456789"},
        {1.0 / 3, "0.33333333333333331"},
        {NAN, "NaN"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
    };
    MetricsRegistry *reg = metrics_registry_new();
    MetricGauge *g = metrics_gauge(reg, "g", "gauge", NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        metric_gauge_set(g, cases[i].v);
        char *text = metrics_render(reg);
        Parsed *p = malloc(sizeof(*p));
        parse_exposition(text, p);
        assert_sample(p, "g", cases[i].text);
        free(p);
        free(text);
    }
    metrics_registry_free(reg);
}

static void test_type_mismatch_returns_dummy(void **state)
{
    MetricsRegistry *reg = metrics_registry_new();
    LogLevel saved = log_get_level();
    log_set_level(LOG_LEVEL_COUNT); /* the misuse is logged; keep the test output quiet */
    MetricCounter *c = metrics_counter(reg, "things", "t", NULL);
    metric_counter_add(c, 5);
    MetricGauge *g = metrics_gauge(reg, "things", "t", NULL);
    assert_non_null(g);
    metric_gauge_set(g, 42); /* works, but goes nowhere visible */
    assert_true(metric_gauge_get(g) == 42);
    MetricGauge *g_other_labels = metrics_gauge(reg, "things", "t", "x=\"1\"");
    assert_non_null(g_other_labels);
    MetricHistogram *h = metrics_histogram(reg, "things", "t", NULL, NULL, 0);
    assert_non_null(h);
    metric_histogram_observe(h, 1);
    static const double bad[] = {1, 1};
    MetricHistogram *hb = metrics_histogram(reg, "bad_buckets", "t", NULL, bad, 2);
    assert_non_null(hb);
    metric_histogram_observe(hb, 1);
    MetricCounter *bad_name = metrics_counter(reg, "0bad-name", "t", NULL);
    assert_non_null(bad_name);
    metric_counter_add(bad_name, 1);
    MetricCounter *no_registry = metrics_counter(NULL, "anything", "t", NULL);
    assert_non_null(no_registry);
    metric_counter_add(no_registry, 1);
    metric_histogram_observe(metrics_histogram(NULL, "anything", "t", NULL, NULL, 0), 1);
    log_set_level(saved);

    char *text = metrics_render(reg);
    assert_string_equal(text, "# HELP things t\n# TYPE things counter\nthings 5\n");
    free(text);
    metrics_registry_free(reg);
}

static void test_label_escape(void **state)
{
    static const struct {
        const char *in;
        size_t cap;
        const char *out;
    } cases[] = {
        {"plain", 64, "plain"},
        {"a\"b", 64, "a\\\"b"},
        {"back\\slash", 64, "back\\\\slash"},
        {"two\nlines", 64, "two\\nlines"},
        {"", 64, ""},
        {"abcdef", 4, "abc"},
        {"ab\"c", 4, "ab"}, /* the escape does not fit: never emitted half */
        {"a\"", 4, "a\\\""},
        {NULL, 8, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[64];
        memset(out, 'X', sizeof(out));
        metrics_label_escape(cases[i].in, out, cases[i].cap);
        assert_string_equal(out, cases[i].out);
    }
    char untouched = 'X';
    metrics_label_escape("x", &untouched, 0);
    assert_int_equal(untouched, 'X');
}

#define THREADS    4
#define ITERATIONS 100000

typedef struct Worker {
    MetricsRegistry *reg;
    int index;
} Worker;

static void *worker_main(void *arg)
{
    Worker *w = arg;
    char labels[32];
    snprintf(labels, sizeof(labels), "t=\"%d\"", w->index);
    for (int i = 0; i < ITERATIONS; i++) {
        /* look up every time, as a request handler would, racing with creation */
        metric_counter_add(metrics_counter(w->reg, "shared_total", "s", NULL), 1);
        metric_counter_add(metrics_counter(w->reg, "per_thread_total", "p", labels), 1);
        metric_gauge_add(metrics_gauge(w->reg, "shared_gauge", "g", NULL), 1.0);
        metric_histogram_observe(metrics_histogram(w->reg, "shared_hist", "h", NULL, NULL, 0),
                                 (i % 2) ? 0.002 : 100.0);
    }
    return NULL;
}

static void test_concurrent_updates(void **state)
{
    MetricsRegistry *reg = metrics_registry_new();
    pthread_t threads[THREADS];
    Worker workers[THREADS];
    for (int i = 0; i < THREADS; i++) {
        workers[i] = (Worker){reg, i};
        assert_int_equal(pthread_create(&threads[i], NULL, worker_main, &workers[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);

    assert_int_equal(metric_counter_get(metrics_counter(reg, "shared_total", "s", NULL)),
                     THREADS * ITERATIONS);
    assert_true(metric_gauge_get(metrics_gauge(reg, "shared_gauge", "g", NULL)) ==
                (double)(THREADS * ITERATIONS));
    MetricHistogram *h = metrics_histogram(reg, "shared_hist", "h", NULL, NULL, 0);
    assert_int_equal(metric_histogram_count(h), THREADS * ITERATIONS);

    char *text = metrics_render(reg);
    Parsed *p = malloc(sizeof(*p));
    parse_exposition(text, p);
    assert_sample(p, "shared_total", "400000");
    assert_sample(p, "shared_gauge", "400000");
    assert_sample(p, "per_thread_total{t=\"0\"}", "100000");
    assert_sample(p, "per_thread_total{t=\"3\"}", "100000");
    assert_sample(p, "shared_hist_bucket{le=\"0.001\"}", "0");
    assert_sample(p, "shared_hist_bucket{le=\"0.005\"}", "200000");
    assert_sample(p, "shared_hist_bucket{le=\"30\"}", "200000");
    assert_sample(p, "shared_hist_bucket{le=\"+Inf\"}", "400000");
    assert_sample(p, "shared_hist_count", "400000");
    /* 200000 * 100 + 200000 * 0.002 = 20000400 (float addition in any order: within 1e-3) */
    assert_true(fabs(strtod(sample(p, "shared_hist_sum"), NULL) - 20000400.0) < 1e-3);
    free(p);
    free(text);
    metrics_registry_free(reg);
}

static void test_many_series(void **state)
{
    /* enough series to grow the hash table several times; all distinct and retrievable */
    MetricsRegistry *reg = metrics_registry_new();
    MetricCounter *ptrs[2000];
    for (int i = 0; i < 2000; i++) {
        char labels[32];
        snprintf(labels, sizeof(labels), "i=\"%d\"", i);
        ptrs[i] = metrics_counter(reg, i % 2 ? "odd_total" : "even_total", "n", labels);
        metric_counter_add(ptrs[i], (uint64_t)i);
    }
    for (int i = 0; i < 2000; i++) {
        char labels[32];
        snprintf(labels, sizeof(labels), "i=\"%d\"", i);
        MetricCounter *c = metrics_counter(reg, i % 2 ? "odd_total" : "even_total", "n", labels);
        assert_ptr_equal(c, ptrs[i]);
        assert_int_equal(metric_counter_get(c), i);
    }
    metrics_registry_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_and_gauge_render),
        cmocka_unit_test(test_histogram_render),
        cmocka_unit_test(test_default_buckets),
        cmocka_unit_test(test_sorted_output),
        cmocka_unit_test(test_gauge_values),
        cmocka_unit_test(test_type_mismatch_returns_dummy),
        cmocka_unit_test(test_label_escape),
        cmocka_unit_test(test_concurrent_updates),
        cmocka_unit_test(test_many_series),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
