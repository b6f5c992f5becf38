/*
 * failpoint.c: the process-wide failpoint table.
 *
 * The table (name -> armed action) is protected by a mutex; g_armed counts the armed entries so
 * the common case, nothing armed anywhere, costs one relaxed atomic load in failpoint_check.
 *
 * Action grammar (after trimming spaces): ["<p>%"]["<n>*"]<action>, where <p> is a percentage in
 * [0, 100] (decimals allowed), <n> a firing count >= 1, and <action> one of off, return,
 * return(<message>), sleep(<ms>), exit, abort. A spec string for failpoint_configure is
 * "name=action;name2=action": the separator is ';' only (a return message may contain commas),
 * spaces around names and actions are ignored, empty items are skipped. Both configure functions
 * validate the whole input before changing anything, so a typo does not leave half a spec armed.
 */
#include "shared/failpoint.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shared/log.h"
#include "shared/str.h"

#define FAILPOINT_NAME_MAX 64
#define FAILPOINT_MSG_MAX  256

typedef enum FailpointAction {
    FAILPOINT_OFF,
    FAILPOINT_RETURN,
    FAILPOINT_SLEEP,
    FAILPOINT_EXIT,
    FAILPOINT_ABORT,
    FAILPOINT_ACTION_COUNT
} FailpointAction;

typedef struct Failpoint {
    char name[FAILPOINT_NAME_MAX];
    FailpointAction action;
    char message[FAILPOINT_MSG_MAX]; /* return(<message>); "" = default message */
    long sleep_ms;
    int64_t remaining;  /* firings left; -1 = unlimited */
    double probability; /* percent; 100 = always */
} Failpoint;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static Failpoint *g_points;
static size_t g_n_points, g_cap_points;
static _Atomic int g_armed;
static uint64_t g_rng_state; /* xorshift64*, under g_lock */

/* ---- parsing ---- */

static const char *skip_space(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    return s;
}

/* trim_copy: the bytes [s, s+len) without surrounding whitespace into out[cap]. */
static bool trim_copy(const char *s, size_t len, char *out, size_t cap)
{
    while (len > 0 && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
        s++, len--;
    while (len > 0 &&
           (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\n' || s[len - 1] == '\r'))
        len--;
    if (len >= cap)
        return false;
    memcpy(out, s, len);
    out[len] = '\0';
    return true;
}

static bool name_valid(const char *name, Err *err)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len >= FAILPOINT_NAME_MAX) {
        err_set(err, ERR_BAD_REQUEST, "failpoint name must be 1 to %d characters",
                FAILPOINT_NAME_MAX - 1);
        return false;
    }
    for (const char *p = name; *p; p++) {
        if (*p == '=' || *p == ';' || *p == ' ' || *p == '\t' || *p == '\n' || *p == '"') {
            err_set(err, ERR_BAD_REQUEST, "invalid failpoint name \"%s\"", name);
            return false;
        }
    }
    return true;
}

/* action_parse: the grammar in the file header into *fp (name untouched). */
static bool action_parse(const char *text, Failpoint *fp, Err *err)
{
    char buf[FAILPOINT_MSG_MAX + 64];
    if (text == NULL || !trim_copy(text, strlen(text), buf, sizeof(buf))) {
        err_set(err, ERR_BAD_REQUEST, "failpoint action too long");
        return false;
    }
    fp->action = FAILPOINT_OFF;
    fp->message[0] = '\0';
    fp->sleep_ms = 0;
    fp->remaining = -1;
    fp->probability = 100.0;

    const char *p = buf;
    /* "<p>%" */
    const char *pct = strchr(p, '%');
    const char *paren = strchr(p, '(');
    if (pct != NULL && (paren == NULL || pct < paren)) {
        char num[32];
        if (!trim_copy(p, (size_t)(pct - p), num, sizeof(num)) || num[0] < '0' || num[0] > '9') {
            err_set(err, ERR_BAD_REQUEST, "invalid probability in failpoint action \"%s\"", buf);
            return false;
        }
        char *end = NULL;
        errno = 0;
        double prob = strtod(num, &end);
        if (errno != 0 || *end != '\0' || !(prob >= 0.0 && prob <= 100.0)) {
            err_set(err, ERR_BAD_REQUEST, "invalid probability in failpoint action \"%s\"", buf);
            return false;
        }
        fp->probability = prob;
        p = skip_space(pct + 1);
    }
    /* "<n>*" */
    const char *star = strchr(p, '*');
    paren = strchr(p, '(');
    if (star != NULL && (paren == NULL || star < paren)) {
        char num[32];
        uint64_t n = 0;
        if (!trim_copy(p, (size_t)(star - p), num, sizeof(num)) ||
            !parse_u64(num, 1, INT64_MAX, &n)) {
            err_set(err, ERR_BAD_REQUEST, "invalid count in failpoint action \"%s\"", buf);
            return false;
        }
        fp->remaining = (int64_t)n;
        p = skip_space(star + 1);
    }

    /* "<word>" or "<word>(<arg>)" */
    size_t word_len = strcspn(p, "(");
    char word[32];
    if (!trim_copy(p, word_len, word, sizeof(word))) {
        err_set(err, ERR_BAD_REQUEST, "unknown failpoint action \"%s\"", buf);
        return false;
    }
    const char *arg = NULL;
    size_t arg_len = 0;
    if (p[word_len] == '(') {
        arg = p + word_len + 1;
        const char *close = strrchr(arg, ')');
        if (close == NULL || close[1] != '\0') {
            err_set(err, ERR_BAD_REQUEST, "missing ')' in failpoint action \"%s\"", buf);
            return false;
        }
        arg_len = (size_t)(close - arg);
    }

    if (strcmp(word, "off") == 0 && arg == NULL) {
        fp->action = FAILPOINT_OFF;
    } else if (strcmp(word, "return") == 0) {
        fp->action = FAILPOINT_RETURN;
        if (arg != NULL && !trim_copy(arg, arg_len, fp->message, sizeof(fp->message))) {
            err_set(err, ERR_BAD_REQUEST, "failpoint return message too long");
            return false;
        }
    } else if (strcmp(word, "sleep") == 0 && arg != NULL) {
        char num[32];
        uint64_t ms = 0;
        if (!trim_copy(arg, arg_len, num, sizeof(num)) ||
            !parse_u64(num, 0, 24ull * 3600 * 1000, &ms)) {
            err_set(err, ERR_BAD_REQUEST, "invalid milliseconds in failpoint action \"%s\"", buf);
            return false;
        }
        fp->action = FAILPOINT_SLEEP;
        fp->sleep_ms = (long)ms;
    } else if (strcmp(word, "exit") == 0 && arg == NULL) {
        fp->action = FAILPOINT_EXIT;
    } else if (strcmp(word, "abort") == 0 && arg == NULL) {
        fp->action = FAILPOINT_ABORT;
    } else {
        err_set(err, ERR_BAD_REQUEST, "unknown failpoint action \"%s\"", buf);
        return false;
    }
    return true;
}

/* ---- the table ---- */

static Failpoint *table_find(const char *name)
{
    for (size_t i = 0; i < g_n_points; i++) {
        if (strcmp(g_points[i].name, name) == 0)
            return &g_points[i];
    }
    return NULL;
}

/* table_remove: drop an entry (swap with the last). Caller holds g_lock. */
static void table_remove(Failpoint *fp)
{
    size_t i = (size_t)(fp - g_points);
    g_points[i] = g_points[g_n_points - 1];
    g_n_points--;
    atomic_fetch_sub_explicit(&g_armed, 1, memory_order_relaxed);
}

/* table_put: arm (or disarm, for "off") a parsed failpoint. Caller holds g_lock. */
static void table_put(const Failpoint *parsed)
{
    Failpoint *fp = table_find(parsed->name);
    if (parsed->action == FAILPOINT_OFF) {
        if (fp != NULL)
            table_remove(fp);
        return;
    }
    if (fp == NULL) {
        if (g_n_points == g_cap_points) {
            g_cap_points = g_cap_points ? g_cap_points * 2 : 16;
            g_points = xrealloc(g_points, g_cap_points * sizeof(Failpoint));
        }
        fp = &g_points[g_n_points++];
        atomic_fetch_add_explicit(&g_armed, 1, memory_order_relaxed);
    }
    *fp = *parsed;
}

static bool failpoint_parse(const char *name, const char *action, Failpoint *out, Err *err)
{
    if (!name_valid(name, err))
        return false;
    if (!action_parse(action, out, err)) {
        err_prefix(err, "failpoint %s: ", name);
        return false;
    }
    str_copy(out->name, sizeof(out->name), name);
    return true;
}

static void apply_all(const Failpoint *parsed, size_t n)
{
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < n; i++)
        table_put(&parsed[i]);
    pthread_mutex_unlock(&g_lock);
    for (size_t i = 0; i < n; i++) {
        if (parsed[i].action == FAILPOINT_OFF)
            log_info("failpoint %s disarmed", parsed[i].name);
        else
            log_info("failpoint %s armed", parsed[i].name);
    }
}

bool failpoint_set(const char *name, const char *action, Err *err)
{
    Failpoint fp;
    if (!failpoint_parse(name, action, &fp, err))
        return false;
    apply_all(&fp, 1);
    return true;
}

bool failpoint_configure(const char *spec, Err *err)
{
    size_t cap = 8, n = 0;
    Failpoint *parsed = xcalloc(cap, sizeof(Failpoint));
    bool ok = true;
    const char *p = spec ? spec : "";
    while (*p) {
        size_t item_len = strcspn(p, ";");
        char item[FAILPOINT_NAME_MAX + FAILPOINT_MSG_MAX + 64];
        if (!trim_copy(p, item_len, item, sizeof(item))) {
            err_set(err, ERR_BAD_REQUEST, "failpoint spec item too long");
            ok = false;
            goto cleanup;
        }
        p += item_len;
        if (*p == ';')
            p++;
        if (item[0] == '\0')
            continue;
        char *eq = strchr(item, '=');
        if (eq == NULL) {
            err_set(err, ERR_BAD_REQUEST, "failpoint spec item \"%s\": expected name=action", item);
            ok = false;
            goto cleanup;
        }
        *eq = '\0';
        char name[FAILPOINT_NAME_MAX];
        if (!trim_copy(item, strlen(item), name, sizeof(name))) {
            err_set(err, ERR_BAD_REQUEST, "failpoint name too long");
            ok = false;
            goto cleanup;
        }
        if (n == cap) {
            cap *= 2;
            parsed = xrealloc(parsed, cap * sizeof(Failpoint));
        }
        if (!failpoint_parse(name, eq + 1, &parsed[n], err)) {
            ok = false;
            goto cleanup;
        }
        n++;
    }
    apply_all(parsed, n);
cleanup:
    free(parsed);
    return ok;
}

bool failpoint_configure_json(const json_t *body, Err *err)
{
    if (!json_is_array(body)) {
        err_set(err, ERR_BAD_REQUEST, "failpoints: expected an array of {\"name\", \"actions\"}");
        return false;
    }
    size_t n = json_array_size(body);
    Failpoint *parsed = xcalloc(n ? n : 1, sizeof(Failpoint));
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        const json_t *item = json_array_get(body, i);
        if (!json_is_object(item)) {
            err_set(err, ERR_BAD_REQUEST, "failpoints[%zu]: expected an object", i);
            ok = false;
            goto cleanup;
        }
        const char *key;
        const json_t *value;
        json_object_foreach((json_t *)item, key, value)
        {
            if (strcmp(key, "name") != 0 && strcmp(key, "actions") != 0) {
                err_set(err, ERR_BAD_REQUEST, "failpoints[%zu]: unknown field \"%s\"", i, key);
                ok = false;
                goto cleanup;
            }
        }
        const json_t *name = json_object_get(item, "name");
        const json_t *actions = json_object_get(item, "actions");
        if (!json_is_string(name) || !json_is_string(actions)) {
            err_set(err, ERR_BAD_REQUEST,
                    "failpoints[%zu]: \"name\" and \"actions\" must be strings", i);
            ok = false;
            goto cleanup;
        }
        if (!failpoint_parse(json_string_value(name), json_string_value(actions), &parsed[i],
                             err)) {
            ok = false;
            goto cleanup;
        }
    }
    apply_all(parsed, n);
cleanup:
    free(parsed);
    return ok;
}

void failpoint_reset_all(void)
{
    pthread_mutex_lock(&g_lock);
    free(g_points);
    g_points = NULL;
    g_n_points = g_cap_points = 0;
    atomic_store_explicit(&g_armed, 0, memory_order_relaxed);
    pthread_mutex_unlock(&g_lock);
}

/* ---- evaluation ---- */

/* rng_percent: a uniform number in [0, 100). Caller holds g_lock. */
static double rng_percent(void)
{
    if (g_rng_state == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        g_rng_state = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^
                      ((uint64_t)getpid() << 40) ^ 0x9e3779b97f4a7c15ULL;
    }
    g_rng_state ^= g_rng_state >> 12;
    g_rng_state ^= g_rng_state << 25;
    g_rng_state ^= g_rng_state >> 27;
    uint64_t r = g_rng_state * 0x2545F4914F6CDD1DULL;
    return (double)(r >> 11) * (100.0 / 9007199254740992.0); /* 53 bits -> [0, 100) */
}

/* failpoint_fire: decide whether the point fires now and copy what it does into *out, consuming
 * one firing of a counted action. */
static bool failpoint_fire(const char *name, Failpoint *out)
{
    bool fire = false;
    pthread_mutex_lock(&g_lock);
    Failpoint *fp = table_find(name);
    if (fp != NULL && (fp->probability >= 100.0 || rng_percent() < fp->probability)) {
        fire = true;
        *out = *fp;
        if (fp->remaining > 0 && --fp->remaining == 0)
            table_remove(fp);
    }
    pthread_mutex_unlock(&g_lock);
    return fire;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* failpoint_eval: the shared part of check and delay: fire, then act on the terminal actions
 * here. Returns the action that fired (OFF if none); a RETURN has filled *err. */
static FailpointAction failpoint_eval(const char *name, long *ms, Err *err)
{
    if (atomic_load_explicit(&g_armed, memory_order_relaxed) == 0)
        return FAILPOINT_OFF;
    Failpoint fp;
    if (!failpoint_fire(name, &fp))
        return FAILPOINT_OFF;
    switch (fp.action) {
    case FAILPOINT_RETURN:
        if (fp.message[0] != '\0')
            err_set(err, ERR_INTERNAL, "%s", fp.message);
        else
            err_set(err, ERR_INTERNAL, "failpoint %s", name);
        break;
    case FAILPOINT_SLEEP:
        *ms = fp.sleep_ms;
        break;
    case FAILPOINT_EXIT:
        log_error("failpoint %s: exit", name);
        _exit(1);
    case FAILPOINT_ABORT:
        log_error("failpoint %s: abort", name);
        abort();
    case FAILPOINT_OFF:
    case FAILPOINT_ACTION_COUNT:
        break;
    }
    return fp.action;
}

bool failpoint_check(const char *name, Err *err)
{
    long ms = 0;
    FailpointAction a = failpoint_eval(name, &ms, err);
    if (a == FAILPOINT_RETURN)
        return false;
    if (a == FAILPOINT_SLEEP && ms > 0)
        sleep_ms(ms);
    return true;
}

bool failpoint_any_armed(void)
{
    return atomic_load_explicit(&g_armed, memory_order_relaxed) != 0;
}

long failpoint_delay_ms(const char *name, Err *err)
{
    long ms = 0;
    FailpointAction a = failpoint_eval(name, &ms, err);
    if (a == FAILPOINT_RETURN)
        return -1;
    return a == FAILPOINT_SLEEP ? ms : 0;
}
