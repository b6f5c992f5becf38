/*
 * http_client.c: outgoing HTTP calls on the event loop, curl multi driven by libevent.
 *
 * One CURLM per client. curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION: one
 * persistent libevent event per socket, created, modified and freed as curl asks) and when to
 * wake it up (CURLMOPT_TIMERFUNCTION: one evtimer); both end in curl_multi_socket_action, after
 * which curl_multi_info_read hands us finished transfers. Connections are reused through the
 * multi handle's connection cache: at most max_host_connections per host (more calls queue inside
 * curl instead of opening more sockets), and a cache (CURLMOPT_MAXCONNECTS) sized to hold that
 * many for many hosts, so that the connections stay open between bursts (HTTP/1.1 keep-alive;
 * both daemons' HTTP servers keep idle connections for 60 s). Every connection curl opens is
 * counted (CURLINFO_NUM_CONNECTS of each finished transfer).
 *
 * A call is a small state machine (HTTP_CALL_FSM, diagram in docs/state-machines.md) driven by one
 * evtimer of its own:
 *
 *   NEW --attempt started--> RUNNING
 *   RUNNING --transfer done, retriable, attempts and deadline left--> BACKOFF --timer--> RUNNING
 *   RUNNING --transfer done otherwise--> DELIVERING --timer(0)--> IN_CALLBACK --> freed
 *   (start failures, from NEW or BACKOFF, go straight to DELIVERING)
 *
 * The done callback only ever runs from the call's own timer callback, never from inside a curl
 * callback or from http_client_start, so a callback may start, cancel or free anything, including
 * the whole client.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>

#include "shared/defer.h"
#include "shared/fsm.h"
#include "shared/log.h"
#include "shared/metrics.h"
#include "shared/str.h"

#include "shared/http_client.h"

#define HTTP_CLIENT_MAX_BODY             ((size_t)64 << 20) /* response bodies above: error */
#define HTTP_CLIENT_DEFAULT_TIMEOUT_MS   30000L
#define HTTP_CLIENT_DEFAULT_BASE_MS      100L
#define HTTP_CLIENT_DEFAULT_MAX_MS       10000L
#define HTTP_CLIENT_MAX_HOST_CONNECTIONS 16L
/* The connection cache holds this many hosts' worth of idle connections by default. curl's own
 * default (4 x the transfers added at that moment) shrinks whenever few calls run, closing
 * connections that the next burst has to open again. */
#define HTTP_CLIENT_CACHED_HOSTS   64L
#define HTTP_CLIENT_ERR_BODY_CHARS 200

typedef enum HttpCallState {
    HTTP_CALL_NEW,         /* created, first attempt not started */
    HTTP_CALL_RUNNING,     /* easy handle on the multi handle */
    HTTP_CALL_BACKOFF,     /* waiting on call->ev before the next attempt */
    HTTP_CALL_DELIVERING,  /* result ready; call->deliver queued on the client's LoopDefer */
    HTTP_CALL_IN_CALLBACK, /* the done callback is running */
    HTTP_CALL_STATE_COUNT
} HttpCallState;

static const char *const HTTP_CALL_STATE_NAMES[HTTP_CALL_STATE_COUNT] = {
    [HTTP_CALL_NEW] = "New",
    [HTTP_CALL_RUNNING] = "Running",
    [HTTP_CALL_BACKOFF] = "Backoff",
    [HTTP_CALL_DELIVERING] = "Delivering",
    [HTTP_CALL_IN_CALLBACK] = "InCallback",
};

static const FsmTransition HTTP_CALL_TRANSITIONS[] = {
    {HTTP_CALL_NEW, HTTP_CALL_RUNNING, "first attempt started"},
    {HTTP_CALL_NEW, HTTP_CALL_DELIVERING, "could not start"},
    {HTTP_CALL_RUNNING, HTTP_CALL_BACKOFF, "retriable failure, attempts and time left"},
    {HTTP_CALL_RUNNING, HTTP_CALL_DELIVERING, "transfer done"},
    {HTTP_CALL_BACKOFF, HTTP_CALL_RUNNING, "timer"},
    {HTTP_CALL_BACKOFF, HTTP_CALL_DELIVERING, "could not start"},
    {HTTP_CALL_DELIVERING, HTTP_CALL_IN_CALLBACK, "loop_defer"},
};

static const int HTTP_CALL_TERMINAL[] = {HTTP_CALL_IN_CALLBACK};

static const FsmDef HTTP_CALL_FSM = {
    .name = "http_call",
    .doc = "docs/state-machines.md",
    .state_names = HTTP_CALL_STATE_NAMES,
    .n_states = HTTP_CALL_STATE_COUNT,
    .initial = HTTP_CALL_NEW,
    .terminal = HTTP_CALL_TERMINAL,
    .n_terminal = FSM_COUNT(HTTP_CALL_TERMINAL),
    .transitions = HTTP_CALL_TRANSITIONS,
    .n_transitions = FSM_COUNT(HTTP_CALL_TRANSITIONS),
};
FSM_REGISTER(HTTP_CALL_FSM)

/* One socket curl asked us to watch. */
typedef struct HttpSock {
    HttpClient *client;
    curl_socket_t fd;
    struct event *ev;
    struct HttpSock *prev, *next;
} HttpSock;

struct HttpCall {
    HttpClient *client;
    HttpCall *prev, *next; /* in client->calls */
    HttpCallState state;

    char *method;
    char *url;
    char *body; /* NULL = no body */
    size_t body_len;
    struct curl_slist *headers;
    long timeout_ms;
    int max_attempts;
    long base_ms, max_ms;
    int64_t deadline; /* monotonic ms; 0 = none */

    HttpClientDone done;
    void *arg;

    CURL *easy;            /* only while RUNNING */
    struct event *ev;      /* the backoff timer */
    LoopDeferItem deliver; /* the result to the callback, from the loop */
    StrBuf resp_body;
    bool body_too_large;
    int attempts;
    int status;
    Err err;
    char errbuf[CURL_ERROR_SIZE];
};

struct HttpClient {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    LoopDefer *defer; /* deliveries */
    HttpCall *calls;  /* every call not yet delivered or cancelled */
    HttpSock *socks;
    size_t inflight;
    uint64_t opened;         /* connections opened (CURLINFO_NUM_CONNECTS summed) */
    MetricCounter *m_opened; /* NULL: no metrics */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_FAILED_INIT;

static void curl_global_init_once(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
    const curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);
    if (info != NULL && (info->features & CURL_VERSION_ASYNCHDNS) == 0)
        log_warn("libcurl %s resolves host names synchronously: DNS lookups block the event loop",
                 info->version);
}

bool http_curl_global_init(Err *err)
{
    pthread_once(&curl_once, curl_global_init_once);
    if (curl_init_result != CURLE_OK) {
        err_set(err, ERR_INTERNAL, "curl_global_init: %s", curl_easy_strerror(curl_init_result));
        return false;
    }
    return true;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timeval ms_to_tv(long ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

/* rand_u64: xorshift64* per thread, seeded lazily from the clock and the thread; jitter only
 * needs to decorrelate callers, not to be unpredictable. */
static uint64_t rand_u64(void)
{
    static _Thread_local uint64_t state;
    if (state == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        state = ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec ^
                ((uint64_t)(uintptr_t)&state << 17) ^ (uint64_t)pthread_self();
        if (state == 0)
            state = 0x9e3779b97f4a7c15u;
    }
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545f4914f6cdd1du;
}

/* backoff_delay_ms: full jitter (uniform in [0, min(max, base * 2^(attempt-1))]) so that many
 * callers retrying against the same peer spread out instead of arriving in waves. */
long backoff_delay_ms(int attempt, long base_ms, long max_ms)
{
    if (base_ms <= 0)
        base_ms = HTTP_CLIENT_DEFAULT_BASE_MS;
    if (max_ms <= 0)
        max_ms = HTTP_CLIENT_DEFAULT_MAX_MS;
    if (attempt < 1)
        attempt = 1;
    long cap = base_ms < max_ms ? base_ms : max_ms;
    for (int i = 1; i < attempt && cap < max_ms; i++)
        cap = cap > max_ms / 2 ? max_ms : cap * 2;
    return (long)(rand_u64() % ((uint64_t)cap + 1));
}

static bool header_value_ok(const char *s)
{
    return strpbrk(s, "\r\n") == NULL;
}

static void calls_link(HttpClient *client, HttpCall *call)
{
    call->prev = NULL;
    call->next = client->calls;
    if (client->calls)
        client->calls->prev = call;
    client->calls = call;
    client->inflight++;
}

static void calls_unlink(HttpClient *client, HttpCall *call)
{
    if (call->prev)
        call->prev->next = call->next;
    else
        client->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    call->prev = call->next = NULL;
    client->inflight--;
}

/* call_destroy: free a call that is no longer linked and has no easy handle. */
static void call_destroy(HttpCall *call)
{
    event_free(call->ev);
    if (call->client != NULL)
        loop_defer_cancel(call->client->defer, &call->deliver);
    curl_slist_free_all(call->headers);
    strbuf_finish(&call->resp_body);
    free(call->method);
    free(call->url);
    free(call->body);
    free(call);
}

/* call_detach_easy: take the call's transfer off the multi handle (if any). Never called from
 * inside a curl callback. */
static void call_detach_easy(HttpCall *call)
{
    if (call->easy == NULL)
        return;
    curl_multi_remove_handle(call->client->multi, call->easy);
    curl_easy_cleanup(call->easy);
    call->easy = NULL;
}

/* call_schedule_delivery: the result is final; hand it to the callback on the next loop
 * iteration (never synchronously, so callers of http_client_start never see a reentrant
 * callback). */
static void call_set_state(HttpCall *call, HttpCallState to)
{
    (void)fsm_set_state(&HTTP_CALL_FSM, &call->state, to, call->url);
}

static void call_schedule_delivery(HttpCall *call)
{
    call_set_state(call, HTTP_CALL_DELIVERING);
    (void)loop_defer_item(call->client->defer, &call->deliver);
}

static void call_fail_async(HttpCall *call, ErrCode code, const char *what)
{
    call->status = 0;
    err_set(&call->err, code, "%s %s: %s", call->method ? call->method : "?",
            call->url ? call->url : "?", what);
    call_schedule_delivery(call);
}

static size_t call_write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
    HttpCall *call = userp;
    size_t n = size * nmemb;
    if (n > HTTP_CLIENT_MAX_BODY - call->resp_body.len) {
        call->body_too_large = true;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    strbuf_append(&call->resp_body, data, n);
    return n;
}

/* call_setup_easy: configure one attempt's easy handle; false on a setopt failure. */
static bool call_setup_easy(HttpCall *call, CURL *e, long timeout_ms)
{
    CURLcode rc = curl_easy_setopt(e, CURLOPT_URL, call->url);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)call);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_ERRORBUFFER, call->errbuf);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, call_write_cb);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)call);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_HTTPHEADER, call->headers);

    bool is_get = strcmp(call->method, "GET") == 0;
    bool is_head = strcmp(call->method, "HEAD") == 0;
    if (call->body != NULL) {
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)call->body_len);
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(e, CURLOPT_POSTFIELDS, call->body);
    } else if (is_head) {
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(call->method, "POST") == 0 || strcmp(call->method, "PUT") == 0 ||
               strcmp(call->method, "PATCH") == 0) {
        /* An explicit empty body ("Content-Length: 0") so servers do not wait for one. */
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
    }
    /* a GET with a body (storcon's timeline_import_status) must stay a GET */
    if ((!is_get || call->body != NULL) && !is_head && strcmp(call->method, "POST") != 0) {
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, call->method);
    }
    return rc == CURLE_OK;
}

/* call_start_attempt: begin the next attempt. The per-attempt timeout is shortened to what is
 * left of the overall deadline. Failures are reported asynchronously. */
static void call_start_attempt(HttpCall *call)
{
    call->attempts++;
    call->status = 0;
    call->body_too_large = false;
    call->errbuf[0] = '\0';
    err_clear(&call->err);
    strbuf_reset(&call->resp_body);

    long timeout = call->timeout_ms;
    if (call->deadline != 0) {
        int64_t left = call->deadline - now_ms();
        if (left < timeout)
            timeout = left > 0 ? (long)left : 1;
    }

    CURL *e = curl_easy_init();
    if (e == NULL) {
        call_fail_async(call, ERR_UNAVAILABLE, "curl_easy_init failed");
        return;
    }
    if (!call_setup_easy(call, e, timeout)) {
        curl_easy_cleanup(e);
        call_fail_async(call, ERR_INTERNAL, "setting curl options failed");
        return;
    }
    CURLMcode mc = curl_multi_add_handle(call->client->multi, e);
    if (mc != CURLM_OK) {
        curl_easy_cleanup(e);
        call_fail_async(call, ERR_UNAVAILABLE, curl_multi_strerror(mc));
        return;
    }
    call->easy = e;
    call_set_state(call, HTTP_CALL_RUNNING);
}

/* call_deliver: run the done callback once, then free the call. The call is unlinked first so
 * that the callback may free the client (which then no longer sees this call). */
static void call_deliver(HttpCall *call)
{
    calls_unlink(call->client, call);
    call->client = NULL;
    call_set_state(call, HTTP_CALL_IN_CALLBACK);

    HttpClientResponse resp = {
        .method = call->method,
        .url = call->url,
        .status = call->status,
        .body = call->resp_body.data ? call->resp_body.data : "",
        .body_len = call->resp_body.len,
        .attempts = call->attempts,
    };
    if (call->status == 0) {
        resp.err = call->err;
        if (call->attempts > 1) {
            char msg[ERR_MSG_SIZE];
            str_printf(msg, sizeof(msg), "%s (after %d attempts)", call->err.msg,
                       call->attempts); /* truncation acceptable */
            memcpy(resp.err.msg, msg, sizeof(msg));
        }
    }
    call->done(&resp, call->arg);
    call_destroy(call);
}

/* call_event_cb: the backoff timer ended. */
static void call_event_cb(evutil_socket_t fd, short what, void *arg)
{
    HttpCall *call = arg;
    if (call->state == HTTP_CALL_BACKOFF)
        call_start_attempt(call);
}

static void call_deliver_cb(void *arg)
{
    call_deliver(arg);
}

static bool curl_result_retriable(CURLcode res)
{
    switch (res) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_OUT_OF_MEMORY:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_WRITE_ERROR: /* our body cap */
        return false;
    default:
        return true;
    }
}

/* call_attempt_done: classify a finished attempt and either wait and retry (transport errors,
 * timeouts, 503, while attempts remain and the backoff still ends before the deadline) or
 * deliver. */
static void call_attempt_done(HttpCall *call, CURLcode res, long http_status)
{
    bool retriable;
    if (res == CURLE_OK) {
        call->status = (int)http_status;
        retriable = http_status == 503;
    } else if (call->body_too_large) {
        err_set(&call->err, ERR_UNAVAILABLE, "%s %s: response body over %zu MiB", call->method,
                call->url, HTTP_CLIENT_MAX_BODY >> 20);
        retriable = false;
    } else {
        ErrCode code = res == CURLE_OPERATION_TIMEDOUT ? ERR_TIMEOUT : ERR_UNAVAILABLE;
        err_set(&call->err, code, "%s %s: %s", call->method, call->url,
                call->errbuf[0] ? call->errbuf : curl_easy_strerror(res));
        retriable = curl_result_retriable(res);
    }

    if (retriable && call->attempts < call->max_attempts) {
        long delay = backoff_delay_ms(call->attempts, call->base_ms, call->max_ms);
        if (call->deadline == 0 || now_ms() + delay < call->deadline) {
            log_debug("%s %s: attempt %d failed (%s), retrying in %ld ms", call->method, call->url,
                      call->attempts, res == CURLE_OK ? "503" : curl_easy_strerror(res), delay);
            call_set_state(call, HTTP_CALL_BACKOFF);
            struct timeval tv = ms_to_tv(delay);
            evtimer_add(call->ev, &tv);
            return;
        }
    }
    call_schedule_delivery(call);
}

/* client_check_multi_info: collect finished transfers after curl made progress. */
static void client_check_multi_info(HttpClient *client)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(client->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *e = msg->easy_handle;
        CURLcode res = msg->data.result; /* msg is invalid once the handle is removed */
        char *priv = NULL;
        long status = 0;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        long opened = 0;
        if (curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &opened) == CURLE_OK && opened > 0) {
            client->opened += (uint64_t)opened;
            if (client->m_opened != NULL)
                metric_counter_add(client->m_opened, (uint64_t)opened);
        }
        HttpCall *call = (HttpCall *)priv;
        call_detach_easy(call);
        call_attempt_done(call, res, status);
    }
}

static void client_socket_action(HttpClient *client, curl_socket_t fd, int flags)
{
    int running = 0;
    CURLMcode mc = curl_multi_socket_action(client->multi, fd, flags, &running);
    if (mc != CURLM_OK)
        log_warn("curl_multi_socket_action: %s", curl_multi_strerror(mc));
    client_check_multi_info(client);
}

static void sock_event_cb(evutil_socket_t fd, short what, void *arg)
{
    HttpSock *sock = arg;
    HttpClient *client = sock->client; /* sock may be freed during the action */
    int flags =
        ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    client_socket_action(client, fd, flags);
}

static void timer_event_cb(evutil_socket_t fd, short what, void *arg)
{
    client_socket_action(arg, CURL_SOCKET_TIMEOUT, 0);
}

static void sock_free(HttpClient *client, HttpSock *sock)
{
    if (sock->prev)
        sock->prev->next = sock->next;
    else
        client->socks = sock->next;
    if (sock->next)
        sock->next->prev = sock->prev;
    event_free(sock->ev);
    free(sock);
}

/* curl_socket_cb: CURLMOPT_SOCKETFUNCTION. Create, change or drop the event watching fd. */
static int curl_socket_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    HttpClient *client = userp;
    HttpSock *sock = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sock != NULL) {
            curl_multi_assign(client->multi, fd, NULL);
            sock_free(client, sock);
        }
        return 0;
    }
    short kind = EV_PERSIST;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        kind |= EV_READ;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        kind |= EV_WRITE;
    if (sock == NULL) {
        sock = xcalloc(1, sizeof(*sock));
        sock->client = client;
        sock->fd = fd;
        sock->ev = event_new(client->base, fd, kind, sock_event_cb, sock);
        if (sock->ev == NULL) {
            free(sock);
            log_error("http client: event_new for socket %d failed", (int)fd);
            return -1;
        }
        sock->next = client->socks;
        if (client->socks)
            client->socks->prev = sock;
        client->socks = sock;
        curl_multi_assign(client->multi, fd, sock);
    } else {
        event_del(sock->ev);
        event_assign(sock->ev, client->base, fd, kind, sock_event_cb, sock);
    }
    if (event_add(sock->ev, NULL) != 0) {
        log_error("http client: event_add for socket %d failed", (int)fd);
        return -1;
    }
    return 0;
}

/* curl_timer_cb: CURLMOPT_TIMERFUNCTION. -1 removes the timer, otherwise (re)arm it. */
static int curl_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    HttpClient *client = userp;
    if (timeout_ms < 0) {
        evtimer_del(client->timer);
        return 0;
    }
    struct timeval tv = ms_to_tv(timeout_ms);
    return evtimer_add(client->timer, &tv) == 0 ? 0 : -1;
}

bool http_client_new(struct event_base *base, HttpClient **out, Err *err)
{
    return http_client_new_with(base, NULL, out, err);
}

bool http_client_new_with(struct event_base *base, const HttpClientOptions *opts, HttpClient **out,
                          Err *err)
{
    *out = NULL;
    long per_host = opts != NULL && opts->max_host_connections > 0
                        ? opts->max_host_connections
                        : HTTP_CLIENT_MAX_HOST_CONNECTIONS;
    long max_cached = opts != NULL && opts->max_cached_connections > 0
                          ? opts->max_cached_connections
                          : per_host * HTTP_CLIENT_CACHED_HOSTS;
    if (!http_curl_global_init(err))
        return false;
    HttpClient *client = xcalloc(1, sizeof(*client));
    client->base = base;
    client->multi = curl_multi_init();
    client->timer = evtimer_new(base, timer_event_cb, client);
    client->defer = loop_defer_new(base);
    if (client->multi == NULL || client->timer == NULL) {
        err_set(err, ERR_INTERNAL, "http client: curl_multi_init or evtimer_new failed");
        goto fail;
    }
    CURLMcode mc = curl_multi_setopt(client->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(client->multi, CURLMOPT_SOCKETDATA, (void *)client);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(client->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(client->multi, CURLMOPT_TIMERDATA, (void *)client);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(client->multi, CURLMOPT_MAX_HOST_CONNECTIONS, per_host);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(client->multi, CURLMOPT_MAXCONNECTS, max_cached);
    if (mc != CURLM_OK) {
        err_set(err, ERR_INTERNAL, "http client: curl_multi_setopt: %s", curl_multi_strerror(mc));
        goto fail;
    }
    if (opts != NULL && opts->metrics != NULL) {
        char name[128];
        str_printf(name, sizeof(name), "%s_http_client_connections_opened_total",
                   opts->metric_prefix != NULL ? opts->metric_prefix : "http");
        client->m_opened =
            metrics_counter(opts->metrics, name, "TCP connections opened by the HTTP client", NULL);
    }
    *out = client;
    return true;
fail:
    if (client->multi)
        curl_multi_cleanup(client->multi);
    if (client->timer)
        event_free(client->timer);
    loop_defer_free(client->defer);
    free(client);
    return false;
}

void http_client_free(HttpClient *client)
{
    if (client == NULL)
        return;
    while (client->calls != NULL) {
        HttpCall *call = client->calls;
        call_detach_easy(call);
        calls_unlink(client, call);
        call_destroy(call);
    }
    curl_multi_cleanup(client->multi); /* may still call the socket and timer callbacks */
    while (client->socks != NULL)
        sock_free(client, client->socks);
    event_free(client->timer);
    loop_defer_free(client->defer);
    free(client);
}

/* call_new: a linked call with everything from req copied; header problems are recorded in
 * *why for asynchronous failure. */
static HttpCall *call_new(HttpClient *client, const HttpClientRequest *req, HttpClientDone done,
                          void *arg, const char **why)
{
    HttpCall *call = xcalloc(1, sizeof(*call));
    call->client = client;
    loop_defer_item_init(&call->deliver, call_deliver_cb, call);
    call->state = HTTP_CALL_NEW;
    call->done = done;
    call->arg = arg;
    strbuf_init(&call->resp_body);
    call->ev = evtimer_new(client->base, call_event_cb, call);
    if (call->ev == NULL) {
        log_error("http client: evtimer_new failed");
        abort(); /* cannot even report asynchronously; like an allocation failure */
    }
    calls_link(client, call);

    call->method = xstrdup(req->method ? req->method : "GET");
    call->url = xstrdup(req->url ? req->url : "");
    if (req->body != NULL) {
        call->body = xmalloc(req->body_len + 1);
        memcpy(call->body, req->body, req->body_len);
        call->body[req->body_len] = '\0';
        call->body_len = req->body_len;
    }
    call->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : HTTP_CLIENT_DEFAULT_TIMEOUT_MS;
    call->max_attempts = req->retry.max_attempts > 1 ? req->retry.max_attempts : 1;
    call->base_ms = req->retry.base_ms;
    call->max_ms = req->retry.max_ms;
    if (req->retry.deadline_ms > 0)
        call->deadline = now_ms() + req->retry.deadline_ms;

    *why = NULL;
    if (req->url == NULL || req->url[0] == '\0')
        *why = "no URL";
    else if (!header_value_ok(call->method) || strchr(call->method, ' ') != NULL)
        *why = "invalid method";

    const char *ctype = req->content_type ? req->content_type : "application/json";
    char *lines[4] = {NULL, NULL, NULL, NULL};
    lines[0] = xstrdup("Accept: application/json");
    lines[1] = xstrdup("Expect:");
    if (call->body != NULL) {
        if (!header_value_ok(ctype))
            *why = "invalid content type";
        lines[2] = str_dup_printf("Content-Type: %s", ctype);
    } else {
        lines[2] = xstrdup("Content-Type:"); /* no default form-urlencoded type */
    }
    if (req->bearer_token != NULL) {
        if (!header_value_ok(req->bearer_token))
            *why = "invalid bearer token";
        lines[3] = str_dup_printf("Authorization: Bearer %s", req->bearer_token);
    }
    for (size_t i = 0; i < 4; i++) {
        if (lines[i] == NULL)
            continue;
        struct curl_slist *l = curl_slist_append(call->headers, lines[i]);
        if (l == NULL)
            *why = "out of memory building headers";
        else
            call->headers = l;
        free(lines[i]);
    }
    return call;
}

HttpCall *http_client_start(HttpClient *client, const HttpClientRequest *req, HttpClientDone done,
                            void *arg)
{
    const char *why = NULL;
    HttpCall *call = call_new(client, req, done, arg, &why);
    if (why != NULL)
        call_fail_async(call, ERR_INTERNAL, why);
    else
        call_start_attempt(call);
    return call;
}

HttpCall *http_client_start_json(HttpClient *client, const char *method, const char *url,
                                 const json_t *body, const char *bearer_token, long timeout_ms,
                                 HttpRetryPolicy retry, HttpClientDone done, void *arg)
{
    char *text = NULL;
    if (body != NULL)
        text = json_dumps(body, JSON_COMPACT);
    HttpClientRequest req = {
        .method = method,
        .url = url,
        .body = text,
        .body_len = text ? strlen(text) : 0,
        .bearer_token = bearer_token,
        .timeout_ms = timeout_ms,
        .retry = retry,
    };
    HttpCall *call;
    if (body != NULL && text == NULL) {
        const char *why = NULL;
        call = call_new(client, &req, done, arg, &why);
        call_fail_async(call, ERR_INTERNAL, "request body cannot be encoded as JSON");
    } else {
        call = http_client_start(client, &req, done, arg);
    }
    free(text);
    return call;
}

void http_call_cancel(HttpCall *call)
{
    if (call == NULL || call->state == HTTP_CALL_IN_CALLBACK)
        return; /* cancelling from its own callback: it is freed when the callback returns */
    HttpClient *client = call->client;
    call_detach_easy(call);
    calls_unlink(client, call);
    call_destroy(call);
}

size_t http_client_inflight(const HttpClient *client)
{
    return client->inflight;
}

uint64_t http_client_connections_opened(const HttpClient *client)
{
    return client->opened;
}

/* response_context: "<METHOD> <url>" for messages about a response, "" when unknown. */
static void response_context(const HttpClientResponse *resp, char *out, size_t cap)
{
    out[0] = '\0';
    if (resp->method != NULL && resp->url != NULL)
        str_printf(out, cap, "%s %s", resp->method, resp->url); /* truncation acceptable */
}

bool http_response_json(const HttpClientResponse *resp, json_t **out, Err *err)
{
    *out = NULL;
    if (resp->status == 0) {
        if (err != NULL)
            *err = resp->err;
        return false;
    }
    json_error_t jerr;
    json_t *j = json_loadb(resp->body ? resp->body : "", resp->body_len, JSON_DECODE_ANY, &jerr);
    if (j == NULL) {
        char ctx[ERR_MSG_SIZE];
        response_context(resp, ctx, sizeof(ctx));
        err_set(err, ERR_INTERNAL, "%s%sinvalid JSON in response: %s (line %d column %d)", ctx,
                ctx[0] ? ": " : "", jerr.text, jerr.line, jerr.column);
        return false;
    }
    *out = j;
    return true;
}

/* body_excerpt: the first HTTP_CLIENT_ERR_BODY_CHARS bytes of a body, cut at a UTF-8 boundary,
 * with control characters turned into spaces so the message stays one printable line. */
static void body_excerpt(const char *body, size_t len, char *out, size_t cap)
{
    size_t n = len < HTTP_CLIENT_ERR_BODY_CHARS ? len : HTTP_CLIENT_ERR_BODY_CHARS;
    if (n >= cap)
        n = cap - 1;
    if (n < len) {
        while (n > 0 && ((unsigned char)body[n] & 0xC0) == 0x80)
            n--;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)body[i];
        out[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    out[n] = '\0';
}

void http_response_err(const HttpClientResponse *resp, Err *err)
{
    if (resp->status == 0) {
        if (resp->err.code != ERR_NONE)
            *err = resp->err;
        else
            err_set(err, ERR_UNAVAILABLE, "transport error");
        return;
    }
    if (resp->status >= 200 && resp->status < 300) {
        err_clear(err);
        return;
    }
    char ctx[ERR_MSG_SIZE];
    response_context(resp, ctx, sizeof(ctx));

    ErrCode code = err_code_from_http_status(resp->status);
    if (code == ERR_NONE)
        code = ERR_INTERNAL; /* 1xx/3xx: nothing we asked for */

    char text[HTTP_CLIENT_ERR_BODY_CHARS + 1];
    text[0] = '\0';
    const char *body = resp->body ? resp->body : "";
    json_t *j = json_loadb(body, resp->body_len, 0, NULL);
    const char *msg = j != NULL ? json_string_value(json_object_get(j, "msg")) : NULL;
    if (msg != NULL)
        body_excerpt(msg, strlen(msg), text, sizeof(text));
    else
        body_excerpt(body, resp->body_len, text, sizeof(text));
    err_set(err, code, "%s%s%d%s%s", ctx, ctx[0] ? ": " : "", resp->status, text[0] ? " " : "",
            text);
    json_decref(j);
}
