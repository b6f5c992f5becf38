/*
 * remote_storage_s3.c: the s3:// remote storage backend (AWS S3 and S3-compatible stores).
 *
 * URL: s3://<bucket>[/<prefix>][?region=<r>&endpoint=<url>&multipart_threshold=<n>&part_size=<n>]
 * (remote_storage_url_parse). Object <key> is S3 key "<prefix>/<key>". With an endpoint,
 * requests are path-style (<endpoint>/<bucket>/<key>); without one they go to AWS,
 * virtual-hosted (https://<bucket>.s3.<region>.amazonaws.com/<key>).
 *
 * Credentials: the file given to remote_storage_set_credentials_file, else the environment
 * (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, optional AWS_SESSION_TOKEN), read when the storage
 * is opened. Requests are signed by libcurl (CURLOPT_AWS_SIGV4 "aws:amz:<region>:s3"), never by
 * code of ours: we add x-amz-content-sha256 (the SHA-256 of an in-memory body, or
 * UNSIGNED-PAYLOAD for a body streamed from a file) and x-amz-security-token, and libcurl signs
 * every header it sends along with host and x-amz-date (tests/integration/fixtures/s3_proxy.py
 * verifies the signatures in the tests).
 *
 * Every call blocks (remote_storage.h): one CURL easy handle per request, over connections and
 * DNS entries shared by the storage's CURLSH (guarded by one mutex per shared data kind), so
 * worker threads reuse connections. A request is retried with capped jittered backoff
 * (backoff_delay_ms) on transport errors, 500, 503 and SlowDown, up to S3_MAX_ATTEMPTS, unless
 * its deadline passed, it was cancelled, or a get had already passed bytes to its sink. The
 * caller's deadline becomes the request's timeout, the cancel flag is polled by the progress
 * callback; a stalled transfer (under 1 byte/s for S3_STALL_S) counts as a transport error.
 *
 * Errors: 404 -> ERR_NOT_FOUND, 403 -> ERR_FORBIDDEN, 400 -> ERR_BAD_REQUEST, each naming S3's
 * error code and message (XML replies are parsed with libxml2), never retried.
 *
 * Puts over the multipart threshold go in parts (CreateMultipartUpload, UploadPart...,
 * CompleteMultipartUpload); a failure aborts the upload (AbortMultipartUpload), so S3 keeps no
 * parts, and the object is never visible partially: S3 makes it appear at completion.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/evp.h>

#include "shared/err.h"
#include "shared/fsutil.h"
#include "shared/http_client.h"
#include "shared/metrics.h"
#include "shared/str.h"

#include "shared/remote_storage.h"
#include "shared/remote_storage_backend.h"

#define S3_MAX_ATTEMPTS       6
#define S3_BACKOFF_BASE_MS    100
#define S3_BACKOFF_MAX_MS     5000
#define S3_CONNECT_TIMEOUT_MS 10000
#define S3_STALL_S            30                 /* under 1 byte/s this long: transport error */
#define S3_ABORT_TIMEOUT_MS   30000              /* AbortMultipartUpload after a failure */
#define S3_MAX_XML_REPLY      (64 * 1024 * 1024) /* a listing page is well under 1 MiB */
#define S3_SLEEP_SLICE_MS     50
#define S3_EMPTY_SHA256       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define S3_UNSIGNED_PAYLOAD   "UNSIGNED-PAYLOAD"
#define S3_CREDENTIALS_MAX    (64 * 1024)

/* ---- credentials ---- */

typedef struct S3Creds {
    char *access_key;
    char *secret_key;
    char *token; /* NULL = none */
} S3Creds;

static pthread_mutex_t g_creds_mu = PTHREAD_MUTEX_INITIALIZER;
static S3Creds g_file_creds; /* access_key NULL = no file given */

static void creds_free(S3Creds *c)
{
    free(c->access_key);
    free(c->secret_key);
    free(c->token);
    memset(c, 0, sizeof(*c));
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

/* creds_parse: the AWS shared credentials format, profile [default] only. */
static bool creds_parse(const char *path, char *text, S3Creds *out, Err *err)
{
    int lineno = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        char *l = trim(line);
        if (l[0] == '\0' || l[0] == '#' || l[0] == ';')
            continue;
        if (l[0] == '[') {
            if (strcmp(l, "[default]") != 0) {
                err_set(err, ERR_BAD_REQUEST,
                        "%s:%d: only the [default] profile is supported, found %.64s", path, lineno,
                        l);
                return false;
            }
            continue;
        }
        char *eq = strchr(l, '=');
        if (eq == NULL) {
            err_set(err, ERR_BAD_REQUEST, "%s:%d: expected \"name = value\"", path, lineno);
            return false;
        }
        *eq = '\0';
        char *name = trim(l), *value = trim(eq + 1);
        char **slot = strcmp(name, "aws_access_key_id") == 0       ? &out->access_key
                      : strcmp(name, "aws_secret_access_key") == 0 ? &out->secret_key
                      : strcmp(name, "aws_session_token") == 0     ? &out->token
                                                                   : NULL;
        if (slot == NULL) {
            err_set(err, ERR_BAD_REQUEST,
                    "%s:%d: unknown key \"%.64s\" (expected aws_access_key_id, "
                    "aws_secret_access_key, aws_session_token)",
                    path, lineno, name);
            return false;
        }
        if (value[0] == '\0' || *slot != NULL) {
            err_set(err, ERR_BAD_REQUEST, "%s:%d: %s is empty or repeated", path, lineno, name);
            return false;
        }
        *slot = xstrdup(value);
    }
    if (out->access_key == NULL || out->secret_key == NULL) {
        err_set(err, ERR_BAD_REQUEST,
                "%s: aws_access_key_id and aws_secret_access_key are required", path);
        return false;
    }
    return true;
}

bool remote_storage_set_credentials_file(const char *path, Err *err)
{
    char *text = NULL;
    size_t len = 0;
    if (!fs_read_file(path, S3_CREDENTIALS_MAX, &text, &len, err)) {
        err_prefix(err, "credentials file: ");
        return false;
    }
    S3Creds c = {0};
    bool ok = creds_parse(path, text, &c, err);
    free(text);
    if (!ok) {
        creds_free(&c);
        return false;
    }
    pthread_mutex_lock(&g_creds_mu);
    creds_free(&g_file_creds);
    g_file_creds = c;
    pthread_mutex_unlock(&g_creds_mu);
    return true;
}

/* creds_load: the file's credentials, else the environment's. */
static bool creds_load(S3Creds *out, Err *err)
{
    pthread_mutex_lock(&g_creds_mu);
    bool from_file = g_file_creds.access_key != NULL;
    if (from_file) {
        out->access_key = xstrdup(g_file_creds.access_key);
        out->secret_key = xstrdup(g_file_creds.secret_key);
        out->token = g_file_creds.token ? xstrdup(g_file_creds.token) : NULL;
    }
    pthread_mutex_unlock(&g_creds_mu);
    if (from_file)
        return true;
    const char *ak = getenv("AWS_ACCESS_KEY_ID");
    const char *sk = getenv("AWS_SECRET_ACCESS_KEY");
    const char *tok = getenv("AWS_SESSION_TOKEN");
    if (ak == NULL || ak[0] == '\0' || sk == NULL || sk[0] == '\0') {
        err_set(err, ERR_BAD_REQUEST,
                "s3 remote storage needs credentials: AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY in the environment, or --remote-storage-credentials FILE");
        return false;
    }
    out->access_key = xstrdup(ak);
    out->secret_key = xstrdup(sk);
    out->token = tok != NULL && tok[0] != '\0' ? xstrdup(tok) : NULL;
    return true;
}

bool remote_storage_s3_credentials(Err *err)
{
    S3Creds c = {0};
    if (!creds_load(&c, err))
        return false;
    creds_free(&c);
    return true;
}

/* ---- the storage ---- */

typedef struct S3Storage {
    char *base;   /* "<endpoint>/<bucket>" or "https://<bucket>.s3.<region>.amazonaws.com" */
    char *prefix; /* "" or "<prefix>/" */
    char *sigv4;  /* "aws:amz:<region>:s3" */
    S3Creds creds;
    char *token_header; /* "x-amz-security-token: ..." or NULL */
    uint64_t multipart_threshold;
    uint64_t part_size;
    CURLSH *share;
    pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];
} S3Storage;

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *arg)
{
    (void)h;
    (void)access;
    S3Storage *s3 = arg;
    pthread_mutex_lock(&s3->share_mu[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *arg)
{
    (void)h;
    S3Storage *s3 = arg;
    pthread_mutex_unlock(&s3->share_mu[data]);
}

static pthread_once_t g_xml_once = PTHREAD_ONCE_INIT;

static void xml_init_once(void)
{
    xmlInitParser();
}

/* ---- small helpers ---- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* uri_encode: RFC 3986 unreserved characters kept, everything else %XX (and '/' kept when
 * keep_slash): SigV4's encoding, so what we send is already canonical. */
static char *uri_encode(const char *s, bool keep_slash)
{
    static const char HEX[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = xmalloc(3 * n + 1);
    char *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = HEX[c >> 4];
            *o++ = HEX[c & 15];
        }
    }
    *o = '\0';
    return out;
}

static void hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char HEX[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = HEX[in[i] >> 4];
        out[2 * i + 1] = HEX[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* sha256_hex: out[65]. */
static void sha256_hex(const void *data, size_t len, char *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) != 1)
        abort(); /* only fails without memory */
    hex_encode(md, n, out);
}

/* md5_base64: Content-MD5 into out[32]. */
static void md5_base64(const void *data, size_t len, char *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(data, len, md, &n, EVP_md5(), NULL) != 1)
        abort();
    EVP_EncodeBlock((unsigned char *)out, md, (int)n);
}

/* parse_iso8601_ms: "2026-12-06T03:35:50.000Z" -> unix ms (0 when unparsable). */
static int64_t parse_iso8601_ms(const char *s)
{
    struct tm tm = {0};
    int ms = 0;
    int n = sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms);
    if (n < 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + (n == 7 ? ms : 0);
}

/* ---- XML ---- */

/* xml_child: the first element child of node with that local name (namespaces ignored: some
 * S3-compatible servers write a wrong one). */
static xmlNode *xml_child(xmlNode *node, const char *name)
{
    for (xmlNode *c = node ? node->children : NULL; c != NULL; c = c->next) {
        if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0)
            return c;
    }
    return NULL;
}

/* xml_text: the text of node's child element name as a malloc'd string, or NULL. */
static char *xml_text(xmlNode *node, const char *name)
{
    xmlNode *c = xml_child(node, name);
    if (c == NULL)
        return NULL;
    xmlChar *t = xmlNodeGetContent(c);
    char *out = xstrdup(t ? (const char *)t : "");
    xmlFree(t);
    return out;
}

/* xml_parse: the document of an XML reply; its root must be named root (NULL = any). */
static xmlDoc *xml_parse(const char *buf, size_t len, const char *root, const char *what, Err *err)
{
    pthread_once(&g_xml_once, xml_init_once);
    if (len > INT_MAX) {
        err_set(err, ERR_INTERNAL, "s3 %s: reply too large", what);
        return NULL;
    }
    xmlDoc *doc = xmlReadMemory(buf, (int)len, NULL, NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    xmlNode *r = doc ? xmlDocGetRootElement(doc) : NULL;
    if (r == NULL || (root != NULL && strcmp((const char *)r->name, root) != 0)) {
        err_set(err, ERR_INTERNAL, "s3 %s: unexpected reply (expected XML <%s>): %.200s", what,
                root ? root : "...", buf ? buf : "");
        xmlFreeDoc(doc);
        return NULL;
    }
    return doc;
}

/* ---- one request ---- */

typedef struct S3Body {
    const unsigned char *mem; /* or fd */
    int fd;
    uint64_t off, len; /* the slice sent */
    uint64_t pos;      /* sent so far in this attempt */
} S3Body;

typedef struct S3Call S3Call;
typedef bool (*S3HeadersFn)(S3Call *c, Err *err);

struct S3Call {
    /* in */
    const char *method;
    const char *what; /* "GET tenants/x" for messages */
    char *url;
    struct curl_slist *headers;
    S3Body *body;             /* NULL = none */
    const char *payload_hash; /* hex or UNSIGNED-PAYLOAD */
    bool accept_416;
    RemoteSink sink; /* 2xx bodies go here when set, else into buf */
    void *sink_ctx;
    S3HeadersFn on_headers; /* before the first chunk to sink */
    const RemoteOpts *opts;
    /* out, per attempt */
    CURL *h;
    long status;
    char etag[REMOTE_ETAG_SIZE];
    int64_t mtime_ms;
    int64_t content_length; /* -1 unknown */
    int64_t range_total;    /* -1 unknown */
    StrBuf reply;           /* the body when not passed to sink (XML) */
    bool headers_done;
    uint64_t delivered;
    bool sink_failed;
    Err sink_err;
};

static size_t body_read_cb(char *out, size_t size, size_t nmemb, void *arg)
{
    S3Body *b = arg;
    size_t want = size * nmemb;
    uint64_t left = b->len - b->pos;
    if (want > left)
        want = (size_t)left;
    if (want == 0)
        return 0;
    if (b->mem != NULL) {
        memcpy(out, b->mem + b->off + b->pos, want);
    } else {
        ssize_t n;
        do {
            n = pread(b->fd, out, want, (off_t)(b->off + b->pos));
        } while (n < 0 && errno == EINTR);
        if (n <= 0)
            return CURL_READFUNC_ABORT; /* the file shrank or cannot be read */
        want = (size_t)n;
    }
    b->pos += want;
    return want;
}

static void header_value(const char *line, size_t n, char *out, size_t cap)
{
    const char *colon = memchr(line, ':', n);
    size_t i = colon ? (size_t)(colon - line) + 1 : n;
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    size_t end = n;
    while (end > i && (line[end - 1] == '\r' || line[end - 1] == '\n' || line[end - 1] == ' '))
        end--;
    size_t len = end - i < cap - 1 ? end - i : cap - 1;
    memcpy(out, line + i, len);
    out[len] = '\0';
}

static bool header_is(const char *line, size_t n, const char *name)
{
    size_t k = strlen(name);
    return n > k && line[k] == ':' && strncasecmp(line, name, k) == 0;
}

static size_t header_cb(char *line, size_t size, size_t nmemb, void *arg)
{
    S3Call *c = arg;
    size_t n = size * nmemb;
    char v[256];
    if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) { /* a new response (after 100 Continue) */
        c->etag[0] = '\0';
        c->mtime_ms = 0;
        c->content_length = -1;
        c->range_total = -1;
    } else if (header_is(line, n, "etag")) {
        header_value(line, n, c->etag, sizeof(c->etag));
    } else if (header_is(line, n, "last-modified")) {
        header_value(line, n, v, sizeof(v));
        time_t t = curl_getdate(v, NULL);
        c->mtime_ms = t > 0 ? (int64_t)t * 1000 : 0;
    } else if (header_is(line, n, "content-length")) {
        header_value(line, n, v, sizeof(v));
        c->content_length = strtoll(v, NULL, 10);
    } else if (header_is(line, n, "content-range")) {
        header_value(line, n, v, sizeof(v));
        const char *slash = strrchr(v, '/');
        if (slash != NULL && slash[1] != '*')
            c->range_total = strtoll(slash + 1, NULL, 10);
    }
    return n;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
    S3Call *c = arg;
    size_t n = size * nmemb;
    long status = 0;
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
    if (c->sink != NULL && status >= 200 && status < 300) {
        if (!remote_opts_check(c->opts, c->what, &c->sink_err)) { /* between chunks */
            c->sink_failed = true;
            return 0;
        }
        if (!c->headers_done) {
            c->headers_done = true;
            if (c->on_headers != NULL && !c->on_headers(c, &c->sink_err)) {
                c->sink_failed = true;
                return 0;
            }
        }
        if (!c->sink(c->sink_ctx, data, n, &c->sink_err)) {
            c->sink_failed = true;
            return 0;
        }
        c->delivered += n;
        return n;
    }
    if (c->reply.len + n > S3_MAX_XML_REPLY) {
        err_set(&c->sink_err, ERR_INTERNAL, "s3 %s: reply over %d bytes", c->what,
                S3_MAX_XML_REPLY);
        c->sink_failed = true;
        return 0;
    }
    strbuf_append(&c->reply, data, n);
    return n;
}

static int progress_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    const S3Call *c = arg;
    const RemoteOpts *o = c->opts;
    if (o == NULL)
        return 0;
    if (o->cancel != NULL && atomic_load(o->cancel))
        return 1;
    return o->deadline_ms > 0 && mono_ms() >= o->deadline_ms;
}

/* s3_error: err from an S3 error reply; *retry for the transient ones. */
static void s3_error(S3Call *c, bool *retry, Err *err)
{
    char *code = NULL, *msg = NULL;
    if (c->reply.len > 0) {
        xmlDoc *doc = xml_parse(c->reply.data, c->reply.len, "Error", c->what, NULL);
        if (doc != NULL) {
            xmlNode *root = xmlDocGetRootElement(doc);
            code = xml_text(root, "Code");
            msg = xml_text(root, "Message");
            xmlFreeDoc(doc);
        }
    }
    if (code == NULL)
        code = xstrdup(c->status == 404 ? "NoSuchKey" : "(no error code)");
    *retry = c->status == 500 || c->status == 503 || strcmp(code, "SlowDown") == 0 ||
             strcmp(code, "InternalError") == 0;
    ErrCode ec = *retry             ? ERR_UNAVAILABLE
                 : c->status == 403 ? ERR_FORBIDDEN
                 : c->status == 404 ? ERR_NOT_FOUND
                 : c->status == 400 ? ERR_BAD_REQUEST
                 : c->status == 409 ? ERR_CONFLICT
                 : c->status == 412 ? ERR_PRECONDITION_FAILED
                 : c->status >= 400 ? err_code_from_http_status((int)c->status)
                                    : ERR_INTERNAL;
    err_set(err, ec, "s3 %s: %ld %s%s%s", c->what, c->status, code, msg ? ": " : "",
            msg ? msg : "");
    free(code);
    free(msg);
}

/* s3_attempt: one try of the request. False with *retry when it is worth another. */
/* ---- metrics (remote_storage_set_metrics) ---- */

static const char *const METRIC_METHODS[] = {"GET", "PUT", "HEAD", "POST", "DELETE"};
#define N_METRIC_METHODS (sizeof(METRIC_METHODS) / sizeof(METRIC_METHODS[0]))
static const char *const METRIC_CLASSES[] = {"2xx", "3xx", "4xx", "5xx", "error"};
#define N_METRIC_CLASSES (sizeof(METRIC_CLASSES) / sizeof(METRIC_CLASSES[0]))

static struct {
    bool set;
    MetricCounter *requests[N_METRIC_METHODS][N_METRIC_CLASSES];
    MetricHistogram *seconds[N_METRIC_METHODS];
    MetricCounter *bytes_up, *bytes_down;
} g_metrics;

void remote_storage_set_metrics(MetricsRegistry *reg)
{
    for (size_t m = 0; m < N_METRIC_METHODS; m++) {
        char labels[64];
        for (size_t k = 0; k < N_METRIC_CLASSES; k++) {
            snprintf(labels, sizeof(labels), "method=\"%s\",status=\"%s\"", METRIC_METHODS[m],
                     METRIC_CLASSES[k]);
            g_metrics.requests[m][k] =
                metrics_counter(reg, "remote_storage_s3_requests_total",
                                "S3 requests (attempts) by method and status class", labels);
        }
        snprintf(labels, sizeof(labels), "method=\"%s\"", METRIC_METHODS[m]);
        g_metrics.seconds[m] =
            metrics_histogram(reg, "remote_storage_s3_request_seconds",
                              "Latency of S3 requests (attempts)", labels, NULL, 0);
    }
    g_metrics.bytes_up = metrics_counter(reg, "remote_storage_s3_bytes_total",
                                         "Bytes sent to and received from S3", "direction=\"up\"");
    g_metrics.bytes_down =
        metrics_counter(reg, "remote_storage_s3_bytes_total", "Bytes sent to and received from S3",
                        "direction=\"down\"");
    g_metrics.set = true;
}

/* metrics_record: one attempt (transport_ok false: no HTTP status, counted as "error"). */
static void metrics_record(const S3Call *c, bool transport_ok, double secs, uint64_t up)
{
    if (!g_metrics.set)
        return;
    size_t m = 0;
    while (m < N_METRIC_METHODS && strcmp(METRIC_METHODS[m], c->method) != 0)
        m++;
    if (m == N_METRIC_METHODS)
        return;
    size_t k =
        !transport_ok || c->status < 200 || c->status >= 600 ? 4 : (size_t)(c->status / 100 - 2);
    metric_counter_add(g_metrics.requests[m][k], 1);
    metric_histogram_observe(g_metrics.seconds[m], secs);
    metric_counter_add(g_metrics.bytes_up, up);
    metric_counter_add(g_metrics.bytes_down, c->delivered + c->reply.len);
}

static bool s3_attempt(S3Storage *s3, S3Call *c, bool *retry, Err *err)
{
    *retry = false;
    c->status = 0;
    c->etag[0] = '\0';
    c->mtime_ms = 0;
    c->content_length = -1;
    c->range_total = -1;
    strbuf_reset(&c->reply);
    c->headers_done = false;
    c->sink_failed = false;
    if (c->body != NULL)
        c->body->pos = 0;

    CURL *h = curl_easy_init();
    if (h == NULL) {
        err_set(err, ERR_INTERNAL, "s3 %s: curl_easy_init failed", c->what);
        return false;
    }
    c->h = h;
    char hash_hdr[128];
    snprintf(hash_hdr, sizeof(hash_hdr), "x-amz-content-sha256: %s", c->payload_hash);
    struct curl_slist *hdrs = NULL;
    for (struct curl_slist *l = c->headers; l != NULL; l = l->next)
        hdrs = curl_slist_append(hdrs, l->data);
    hdrs = curl_slist_append(hdrs, hash_hdr);
    if (s3->token_header != NULL)
        hdrs = curl_slist_append(hdrs, s3->token_header);
    hdrs = curl_slist_append(hdrs, "Expect:");

    curl_easy_setopt(h, CURLOPT_URL, c->url);
    curl_easy_setopt(h, CURLOPT_SHARE, s3->share);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, s3->sigv4);
    curl_easy_setopt(h, CURLOPT_USERNAME, s3->creds.access_key);
    curl_easy_setopt(h, CURLOPT_PASSWORD, s3->creds.secret_key);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)S3_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)S3_STALL_S);
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 256L * 1024);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, progress_cb);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
    if (c->opts != NULL && c->opts->deadline_ms > 0) {
        int64_t left = c->opts->deadline_ms - mono_ms();
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(left > 1 ? left : 1));
    }
    if (strcmp(c->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(c->method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, body_read_cb);
        curl_easy_setopt(h, CURLOPT_READDATA, c->body);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)c->body->len);
    } else if (strcmp(c->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        if (c->body != NULL) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, (const char *)c->body->mem + c->body->off);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body->len);
        } else {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
        }
    } else if (strcmp(c->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, c->method);
    }

    int64_t started = mono_ms();
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->status);
    curl_off_t sent = 0;
    curl_easy_getinfo(h, CURLINFO_SIZE_UPLOAD_T, &sent);
    metrics_record(c, rc == CURLE_OK, (double)(mono_ms() - started) / 1000.0,
                   sent > 0 ? (uint64_t)sent : 0);
    curl_easy_cleanup(h);
    c->h = NULL;
    curl_slist_free_all(hdrs);

    if (c->sink_failed) {
        if (err != NULL)
            *err = c->sink_err;
        return false;
    }
    if (rc == CURLE_ABORTED_BY_CALLBACK) {
        if (!remote_opts_check(c->opts, c->what, err))
            return false;
        err_set(err, ERR_INTERNAL, "s3 %s: aborted", c->what);
        return false;
    }
    if (rc != CURLE_OK) {
        if (rc == CURLE_OPERATION_TIMEDOUT && !remote_opts_check(c->opts, c->what, err))
            return false; /* the caller's deadline */
        err_set(err, ERR_UNAVAILABLE, "s3 %s: %s", c->what, curl_easy_strerror(rc));
        *retry = true;
        return false;
    }
    if ((c->status >= 200 && c->status < 300) || c->status == 304 ||
        (c->status == 416 && c->accept_416))
        return true;
    s3_error(c, retry, err);
    return false;
}

/* sleep_opts: sleep ms, stopping early (false) when the call's deadline or cancel fires. */
static bool sleep_opts(long ms, const RemoteOpts *opts, const char *what, Err *err)
{
    int64_t until = mono_ms() + ms;
    for (;;) {
        if (!remote_opts_check(opts, what, err))
            return false;
        int64_t left = until - mono_ms();
        if (left <= 0)
            return true;
        struct timespec ts = {0, (left < S3_SLEEP_SLICE_MS ? left : S3_SLEEP_SLICE_MS) * 1000000};
        nanosleep(&ts, NULL);
    }
}

/* s3_call: the request with retries. */
static bool s3_call(S3Storage *s3, S3Call *c, Err *err)
{
    for (int attempt = 1;; attempt++) {
        bool retry = false;
        if (s3_attempt(s3, c, &retry, err))
            return true;
        if (!retry || attempt >= S3_MAX_ATTEMPTS || c->delivered > 0)
            return false;
        if (!sleep_opts(backoff_delay_ms(attempt, S3_BACKOFF_BASE_MS, S3_BACKOFF_MAX_MS), c->opts,
                        c->what, err))
            return false;
    }
}

/* call_init: a request on key (NULL = the bucket) with an optional query (already encoded). */
static void call_init(S3Call *c, S3Storage *s3, const char *method, const char *key,
                      const char *query, const RemoteOpts *opts)
{
    memset(c, 0, sizeof(*c));
    c->method = method;
    c->opts = opts;
    c->payload_hash = S3_EMPTY_SHA256;
    char *full = key ? str_dup_printf("%s%s", s3->prefix, key) : NULL;
    char *enc = full ? uri_encode(full, true) : NULL;
    c->url =
        str_dup_printf("%s/%s%s%s", s3->base, enc ? enc : "", query ? "?" : "", query ? query : "");
    c->what = str_dup_printf("%s %s", method, key ? key : "(bucket)");
    free(enc);
    free(full);
}

static void call_free(S3Call *c)
{
    free(c->url);
    free((char *)c->what);
    strbuf_finish(&c->reply);
    curl_slist_free_all(c->headers);
}

/* call_what: the request's name in messages ("UploadPart 3 of <key>"). */
static void call_what(S3Call *c, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void call_what(S3Call *c, const char *fmt, ...)
{
    char buf[REMOTE_STORAGE_URL_MAX + 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    free((char *)c->what);
    c->what = xstrdup(buf);
}

static void call_header(S3Call *c, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void call_header(S3Call *c, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    c->headers = curl_slist_append(c->headers, line);
}

/* ---- put ---- */

/* s3_put_single: one PutObject of the body. */
static bool s3_put_single(S3Storage *s3, const char *key, S3Body *body, const char *hash,
                          const RemoteOpts *opts, Err *err)
{
    S3Call c;
    call_init(&c, s3, "PUT", key, NULL, opts);
    c.body = body;
    c.payload_hash = hash;
    bool ok = s3_call(s3, &c, err);
    call_free(&c);
    return ok;
}

/* s3_abort_upload: AbortMultipartUpload, best effort with its own deadline (the caller's may be
 * what failed). */
static void s3_abort_upload(S3Storage *s3, const char *key, const char *query)
{
    RemoteOpts o = {.deadline_ms = remote_deadline_after_ms(S3_ABORT_TIMEOUT_MS)};
    S3Call c;
    call_init(&c, s3, "DELETE", key, query, &o);
    Err e;
    if (!s3_call(s3, &c, &e)) {
        /* Left to the bucket's lifecycle rule for incomplete uploads (docs/operations.md). */
    }
    call_free(&c);
}

static bool s3_put_multipart(S3Storage *s3, const char *key, S3Body *whole, const RemoteOpts *opts,
                             Err *err)
{
    uint64_t part = s3->part_size;
    if ((whole->len + part - 1) / part > REMOTE_S3_MAX_PARTS)
        part = (whole->len + REMOTE_S3_MAX_PARTS - 1) / REMOTE_S3_MAX_PARTS;
    size_t n_parts = (size_t)((whole->len + part - 1) / part);

    S3Call c;
    call_init(&c, s3, "POST", key, "uploads=", opts);
    call_what(&c, "CreateMultipartUpload %s", key);
    bool ok = s3_call(s3, &c, err);
    char *upload_id = NULL;
    if (ok) {
        xmlDoc *doc =
            xml_parse(c.reply.data, c.reply.len, "InitiateMultipartUploadResult", c.what, err);
        upload_id = doc ? xml_text(xmlDocGetRootElement(doc), "UploadId") : NULL;
        xmlFreeDoc(doc);
        if (doc != NULL && upload_id == NULL)
            err_set(err, ERR_INTERNAL, "s3 %s: no UploadId in the reply", c.what);
        ok = upload_id != NULL;
    }
    call_free(&c);
    if (!ok)
        return false;
    char *enc_id = uri_encode(upload_id, false);
    char **etags = xcalloc(n_parts, sizeof(*etags));
    for (size_t i = 0; ok && i < n_parts; i++) {
        char *query = str_dup_printf("partNumber=%zu&uploadId=%s", i + 1, enc_id);
        S3Body b = *whole;
        b.off = whole->off + i * part;
        b.len = i + 1 < n_parts ? part : whole->len - i * part;
        call_init(&c, s3, "PUT", key, query, opts);
        call_what(&c, "UploadPart %zu of %s", i + 1, key);
        c.body = &b;
        c.payload_hash = S3_UNSIGNED_PAYLOAD;
        ok = s3_call(s3, &c, err);
        if (ok && c.etag[0] == '\0') {
            err_set(err, ERR_INTERNAL, "s3 %s: no ETag in the reply", c.what);
            ok = false;
        }
        if (ok)
            etags[i] = xstrdup(c.etag);
        call_free(&c);
        free(query);
    }
    if (ok) {
        xmlDoc *doc = xmlNewDoc(BAD_CAST "1.0");
        xmlNode *root = xmlNewNode(NULL, BAD_CAST "CompleteMultipartUpload");
        xmlDocSetRootElement(doc, root);
        xmlNewProp(root, BAD_CAST "xmlns", BAD_CAST "http://s3.amazonaws.com/doc/2006-03-01/");
        for (size_t i = 0; i < n_parts; i++) {
            xmlNode *p = xmlNewChild(root, NULL, BAD_CAST "Part", NULL);
            char num[32];
            snprintf(num, sizeof(num), "%zu", i + 1);
            xmlNewTextChild(p, NULL, BAD_CAST "PartNumber", BAD_CAST num);
            xmlNewTextChild(p, NULL, BAD_CAST "ETag", BAD_CAST etags[i]);
        }
        xmlChar *xml = NULL;
        int xml_len = 0;
        xmlDocDumpMemory(doc, &xml, &xml_len);
        xmlFreeDoc(doc);
        char hash[65];
        sha256_hex(xml, (size_t)xml_len, hash);
        char *query = str_dup_printf("uploadId=%s", enc_id);
        S3Body b = {.mem = xml, .fd = -1, .len = (uint64_t)xml_len};
        call_init(&c, s3, "POST", key, query, opts);
        call_what(&c, "CompleteMultipartUpload %s", key);
        c.body = &b;
        c.payload_hash = hash;
        call_header(&c, "Content-Type: application/xml");
        ok = s3_call(s3, &c, err);
        if (ok) { /* a 200 may still carry an <Error> (S3 reports late failures so) */
            xmlDoc *reply = xml_parse(c.reply.data, c.reply.len, NULL, c.what, err);
            if (reply == NULL) {
                ok = false;
            } else if (strcmp((const char *)xmlDocGetRootElement(reply)->name, "Error") == 0) {
                bool retry;
                c.status = 500;
                s3_error(&c, &retry, err);
                ok = false;
            }
            xmlFreeDoc(reply);
        }
        call_free(&c);
        free(query);
        xmlFree(xml);
    }
    if (!ok) {
        char *query = str_dup_printf("uploadId=%s", enc_id);
        s3_abort_upload(s3, key, query);
        free(query);
    }
    for (size_t i = 0; i < n_parts; i++)
        free(etags[i]);
    free(etags);
    free(enc_id);
    free(upload_id);
    return ok;
}

static bool s3_put(void *impl, const char *key, const void *data, size_t len,
                   const RemoteOpts *opts, Err *err)
{
    S3Storage *s3 = impl;
    S3Body b = {.mem = data ? data : (const unsigned char *)"", .fd = -1, .len = len};
    if (len > s3->multipart_threshold)
        return s3_put_multipart(s3, key, &b, opts, err);
    char hash[65];
    sha256_hex(b.mem, len, hash);
    return s3_put_single(s3, key, &b, hash, opts, err);
}

static bool s3_put_file(void *impl, const char *key, int src_fd, const RemoteOpts *opts, Err *err)
{
    S3Storage *s3 = impl;
    struct stat st;
    if (fstat(src_fd, &st) != 0) {
        char buf[128];
        err_set(err, ERR_INTERNAL, "s3 PUT %s: fstat: %s", key,
                strerror_r(errno, buf, sizeof(buf)));
        return false;
    }
    S3Body b = {.fd = src_fd, .len = (uint64_t)st.st_size};
    if (b.len > s3->multipart_threshold)
        return s3_put_multipart(s3, key, &b, opts, err);
    return s3_put_single(s3, key, &b, S3_UNSIGNED_PAYLOAD, opts, err);
}

/* ---- get and head ---- */

static void info_from_call(const S3Call *c, RemoteObjectInfo *info)
{
    info->key = NULL;
    if (c->range_total >= 0)
        info->size = (uint64_t)c->range_total;
    else if (c->content_length >= 0)
        info->size = (uint64_t)c->content_length;
    info->mtime_ms = c->mtime_ms;
    str_copy(info->etag, sizeof(info->etag), c->etag);
}

typedef struct GetCtx {
    RemoteGetResult *res;
    RemoteSink sink;
    void *ctx;
} GetCtx;

static bool get_headers(S3Call *c, Err *err)
{
    (void)err;
    GetCtx *g = c->sink_ctx;
    info_from_call(c, &g->res->info);
    return true;
}

static bool get_sink(void *ctx, const void *chunk, size_t len, Err *err)
{
    GetCtx *g = ctx;
    if (!g->sink(g->ctx, chunk, len, err))
        return false;
    g->res->bytes += len;
    return true;
}

static bool s3_head(void *impl, const char *key, RemoteObjectInfo *info, const RemoteOpts *opts,
                    Err *err)
{
    S3Storage *s3 = impl;
    S3Call c;
    call_init(&c, s3, "HEAD", key, NULL, opts);
    bool ok = s3_call(s3, &c, err);
    if (ok)
        info_from_call(&c, info);
    call_free(&c);
    return ok;
}

static bool s3_get(void *impl, const char *key, const RemoteGetReq *req, RemoteSink sink, void *ctx,
                   RemoteGetResult *res, const RemoteOpts *opts, Err *err)
{
    S3Storage *s3 = impl;
    S3Call c;
    call_init(&c, s3, "GET", key, NULL, opts);
    GetCtx g = {res, sink, ctx};
    c.sink = get_sink;
    c.sink_ctx = &g;
    c.on_headers = get_headers;
    c.accept_416 = true;
    if (req->offset > 0 || req->len > 0) {
        if (req->len > 0)
            call_header(&c, "Range: bytes=%" PRIu64 "-%" PRIu64, req->offset,
                        req->offset + req->len - 1);
        else
            call_header(&c, "Range: bytes=%" PRIu64 "-", req->offset);
    }
    if (req->if_none_match != NULL && req->if_none_match[0] != '\0') {
        call_header(&c, "If-None-Match: %s", req->if_none_match);
    } else if (req->if_modified_since_ms > 0) {
        time_t t = (time_t)(req->if_modified_since_ms / 1000);
        struct tm tm;
        char date[64];
        gmtime_r(&t, &tm);
        strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        call_header(&c, "If-Modified-Since: %s", date);
    }
    bool ok = s3_call(s3, &c, err);
    if (ok && c.status == 304) {
        res->not_modified = true;
        info_from_call(&c, &res->info);
        ok = s3_head(impl, key, &res->info, opts, err); /* a 304 carries no size */
    } else if (ok && c.status == 416) {
        ok = s3_head(impl, key, &res->info, opts, err); /* nothing at that offset */
    } else if (ok && !c.headers_done) {
        info_from_call(&c, &res->info); /* an empty body: no chunk */
    }
    call_free(&c);
    return ok;
}

/* ---- list ---- */

/* strip_prefix: key without the storage's prefix (S3 returned only keys under it). */
static char *strip_prefix(const char *prefix, const char *key)
{
    size_t n = strlen(prefix);
    return xstrdup(strncmp(key, prefix, n) == 0 ? key + n : key);
}

bool remote_s3_parse_listing(const char *xml, size_t len, const char *prefix, RemoteListing *page,
                             Err *err)
{
    xmlDoc *doc = xml_parse(xml, len, "ListBucketResult", "ListObjectsV2", err);
    if (doc == NULL)
        return false;
    bool ok = true;
    xmlNode *root = xmlDocGetRootElement(doc);
    for (xmlNode *n = root->children; n != NULL; n = n->next) {
        if (n->type != XML_ELEMENT_NODE)
            continue;
        if (strcmp((const char *)n->name, "Contents") == 0) {
            char *key = xml_text(n, "Key");
            char *size = xml_text(n, "Size");
            char *mtime = xml_text(n, "LastModified");
            char *etag = xml_text(n, "ETag");
            if (key != NULL) {
                page->items = xrealloc(page->items, (page->n + 1) * sizeof(*page->items));
                RemoteObjectInfo *it = &page->items[page->n++];
                memset(it, 0, sizeof(*it));
                it->key = strip_prefix(prefix, key);
                it->size = size ? strtoull(size, NULL, 10) : 0;
                it->mtime_ms = mtime ? parse_iso8601_ms(mtime) : 0;
                str_copy(it->etag, sizeof(it->etag), etag ? etag : "");
            }
            free(key);
            free(size);
            free(mtime);
            free(etag);
        } else if (strcmp((const char *)n->name, "CommonPrefixes") == 0) {
            char *p = xml_text(n, "Prefix");
            if (p != NULL) {
                page->prefixes =
                    xrealloc(page->prefixes, (page->n_prefixes + 1) * sizeof(*page->prefixes));
                page->prefixes[page->n_prefixes++] = strip_prefix(prefix, p);
            }
            free(p);
        }
    }
    char *truncated = xml_text(root, "IsTruncated");
    if (truncated != NULL && strcmp(truncated, "true") == 0) {
        page->next_token = xml_text(root, "NextContinuationToken");
        if (page->next_token == NULL || page->next_token[0] == '\0') {
            err_set(err, ERR_INTERNAL, "s3 ListObjectsV2: truncated without NextContinuationToken");
            ok = false;
        }
    }
    free(truncated);
    xmlFreeDoc(doc);
    return ok;
}

static bool s3_list_page(void *impl, const char *prefix, const char *delimiter, const char *token,
                         size_t max_keys, RemoteListing *page, const RemoteOpts *opts, Err *err)
{
    S3Storage *s3 = impl;
    /* The parameters in sorted order: the canonical query SigV4 signs. */
    char *full = str_dup_printf("%s%s", s3->prefix, prefix);
    char *e_prefix = uri_encode(full, false);
    char *e_token = token ? uri_encode(token, false) : NULL;
    char *e_delim = delimiter ? uri_encode(delimiter, false) : NULL;
    char *query = str_dup_printf("%s%s%s%s%s%slist-type=2&max-keys=%zu&prefix=%s",
                                 e_token ? "continuation-token=" : "", e_token ? e_token : "",
                                 e_token ? "&" : "", e_delim ? "delimiter=" : "",
                                 e_delim ? e_delim : "", e_delim ? "&" : "", max_keys, e_prefix);
    free(full);
    free(e_prefix);
    free(e_token);
    free(e_delim);
    S3Call c;
    call_init(&c, s3, "GET", NULL, query, opts);
    call_what(&c, "ListObjectsV2 \"%s\"", prefix);
    free(query);
    bool ok = s3_call(s3, &c, err) &&
              remote_s3_parse_listing(c.reply.data, c.reply.len, s3->prefix, page, err);
    call_free(&c);
    return ok;
}

/* ---- delete ---- */

bool remote_s3_parse_delete_result(const char *xml, size_t len, const char *prefix,
                                   const char *const *keys, size_t n, RemoteDeleteResult *res,
                                   Err *err)
{
    xmlDoc *reply = xml_parse(xml, len, "DeleteResult", "DeleteObjects", err);
    if (reply == NULL)
        return false;
    for (xmlNode *e = xmlDocGetRootElement(reply)->children; e != NULL; e = e->next) {
        if (e->type != XML_ELEMENT_NODE || strcmp((const char *)e->name, "Error") != 0)
            continue;
        char *key = xml_text(e, "Key");
        char *code = xml_text(e, "Code");
        char *msg = xml_text(e, "Message");
        char *rel = key ? strip_prefix(prefix, key) : NULL;
        size_t index = 0;
        while (rel != NULL && index < n && strcmp(keys[index], rel) != 0)
            index++;
        if (code == NULL || strcmp(code, "NoSuchKey") != 0) { /* absent is success */
            Err ke;
            ErrCode ec =
                code && strcmp(code, "AccessDenied") == 0 ? ERR_FORBIDDEN
                : code && (strcmp(code, "InternalError") == 0 || strcmp(code, "SlowDown") == 0)
                    ? ERR_UNAVAILABLE
                    : ERR_INTERNAL;
            err_set(&ke, ec, "s3 delete %s: %s: %s", rel ? rel : "(no key)",
                    code ? code : "(no code)", msg ? msg : "");
            remote_delete_result_add(res, index < n ? index : 0, &ke);
        }
        free(rel);
        free(key);
        free(code);
        free(msg);
    }
    xmlFreeDoc(reply);
    return true;
}

static bool s3_delete_many(void *impl, const char *const *keys, size_t n, RemoteDeleteResult *res,
                           const RemoteOpts *opts, Err *err)
{
    S3Storage *s3 = impl;
    xmlDoc *doc = xmlNewDoc(BAD_CAST "1.0");
    xmlNode *root = xmlNewNode(NULL, BAD_CAST "Delete");
    xmlDocSetRootElement(doc, root);
    xmlNewProp(root, BAD_CAST "xmlns", BAD_CAST "http://s3.amazonaws.com/doc/2006-03-01/");
    xmlNewTextChild(root, NULL, BAD_CAST "Quiet", BAD_CAST "true");
    for (size_t i = 0; i < n; i++) {
        char *full = str_dup_printf("%s%s", s3->prefix, keys[i]);
        xmlNode *o = xmlNewChild(root, NULL, BAD_CAST "Object", NULL);
        xmlNewTextChild(o, NULL, BAD_CAST "Key", BAD_CAST full);
        free(full);
    }
    xmlChar *xml = NULL;
    int xml_len = 0;
    xmlDocDumpMemory(doc, &xml, &xml_len);
    xmlFreeDoc(doc);
    char hash[65], md5[32];
    sha256_hex(xml, (size_t)xml_len, hash);
    md5_base64(xml, (size_t)xml_len, md5);
    S3Body b = {.mem = xml, .fd = -1, .len = (uint64_t)xml_len};
    S3Call c;
    call_init(&c, s3, "POST", NULL, "delete=", opts);
    call_what(&c, "DeleteObjects (%zu keys)", n);
    c.body = &b;
    c.payload_hash = hash;
    call_header(&c, "Content-MD5: %s", md5);
    call_header(&c, "Content-Type: application/xml");
    bool ok = s3_call(s3, &c, err);
    ok = ok &&
         remote_s3_parse_delete_result(c.reply.data, c.reply.len, s3->prefix, keys, n, res, err);
    call_free(&c);
    xmlFree(xml);
    return ok;
}

/* ---- open ---- */

static void s3_free(void *impl)
{
    S3Storage *s3 = impl;
    if (s3 == NULL)
        return;
    curl_share_cleanup(s3->share);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&s3->share_mu[i]);
    free(s3->base);
    free(s3->prefix);
    free(s3->sigv4);
    free(s3->token_header);
    creds_free(&s3->creds);
    free(s3);
}

static const RemoteBackendOps S3_OPS = {
    .put = s3_put,
    .put_file = s3_put_file,
    .get = s3_get,
    .head = s3_head,
    .list_page = s3_list_page,
    .delete_many = s3_delete_many,
    .free_impl = s3_free,
};

bool remote_s3_backend_open(const RemoteStorageUrl *url, const RemoteBackendOps **ops, void **impl,
                            Err *err)
{
    if (!http_curl_global_init(err))
        return false;
    pthread_once(&g_xml_once, xml_init_once);
    S3Storage *s3 = xcalloc(1, sizeof(*s3));
    if (!creds_load(&s3->creds, err)) {
        free(s3);
        return false;
    }
    if (url->endpoint[0] != '\0')
        s3->base = str_dup_printf("%s/%s", url->endpoint, url->bucket);
    else
        s3->base = str_dup_printf("https://%s.s3.%s.amazonaws.com", url->bucket, url->region);
    s3->prefix = url->prefix[0] ? str_dup_printf("%s/", url->prefix) : xstrdup("");
    s3->sigv4 = str_dup_printf("aws:amz:%s:s3", url->region);
    if (s3->creds.token != NULL)
        s3->token_header = str_dup_printf("x-amz-security-token: %s", s3->creds.token);
    s3->multipart_threshold = url->multipart_threshold;
    s3->part_size = url->part_size;
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&s3->share_mu[i], NULL);
    s3->share = curl_share_init();
    if (s3->share == NULL) {
        s3_free(s3);
        err_set(err, ERR_INTERNAL, "curl_share_init failed");
        return false;
    }
    curl_share_setopt(s3->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(s3->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(s3->share, CURLSHOPT_USERDATA, s3);
    curl_share_setopt(s3->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    curl_share_setopt(s3->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(s3->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    *ops = &S3_OPS;
    *impl = s3;
    return true;
}
