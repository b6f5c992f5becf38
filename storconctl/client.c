/*
 * client.c: storconctl's synchronous calls to the storage controller: shared/http_client.h on a
 * private event_base that is run until the one call in flight completes (a CLI has nothing else
 * to do meanwhile, and this keeps a single HTTP implementation in the project).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <jansson.h>

#include "shared/err.h"
#include "shared/http_client.h"
#include "shared/str.h"

#include "storconctl/ctl.h"

typedef struct CallState {
    bool done;
    CtlResponse *out;
} CallState;

static void call_done(const HttpClientResponse *resp, void *arg)
{
    CallState *st = arg;
    st->out->status = resp->status;
    st->out->body = xstrndup(resp->body ? resp->body : "", resp->body_len);
    st->out->body_len = resp->body_len;
    if (resp->status == 0)
        st->out->err = resp->err;
    st->done = true;
}

/* ctl_lazy_client: the event base and client exist only for commands that talk HTTP (token
 * does not). */
static bool ctl_lazy_client(Ctl *ctl, Err *err)
{
    if (ctl->client != NULL)
        return true;
    ctl->base = event_base_new();
    if (ctl->base == NULL) {
        err_set(err, ERR_INTERNAL, "cannot create an event base");
        return false;
    }
    return http_client_new(ctl->base, &ctl->client, err);
}

void ctl_http(Ctl *ctl, const char *method, const char *path, const json_t *body, CtlResponse *out)
{
    char *url = str_dup_printf("%s%s", ctl->api, path);
    ctl_http_url(ctl, method, url, body, out);
    free(url);
}

void ctl_http_url(Ctl *ctl, const char *method, const char *url, const json_t *body,
                  CtlResponse *out)
{
    memset(out, 0, sizeof(*out));
    if (!ctl_lazy_client(ctl, &out->err))
        return;
    CallState st = {.done = false, .out = out};
    HttpRetryPolicy once = {.max_attempts = 1};
    (void)http_client_start_json(ctl->client, method, url, body, ctl->token, CTL_HTTP_TIMEOUT_MS,
                                 once, call_done, &st);
    while (!st.done) {
        int r = event_base_loop(ctl->base, EVLOOP_ONCE);
        if (r != 0 && !st.done) {
            /* -1 error, 1 nothing left to wait for: the call can no longer complete. */
            err_set(&out->err, ERR_INTERNAL, "event loop ended before the call completed");
            return;
        }
    }
}

void ctl_response_finish(CtlResponse *resp)
{
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
}

bool ctl_response_ok(const CtlResponse *resp)
{
    return resp->status >= 200 && resp->status < 300;
}

void ctl_response_msg(const CtlResponse *resp, char *out, size_t cap)
{
    out[0] = '\0';
    if (cap == 0 || resp->body == NULL)
        return;
    const char *text = resp->body;
    json_t *j = json_loadb(resp->body, resp->body_len, 0, NULL);
    const char *msg = j != NULL ? json_string_value(json_object_get(j, "msg")) : NULL;
    if (msg != NULL)
        text = msg;
    size_t n = 0;
    for (const char *p = text; *p && n + 1 < cap; p++) {
        unsigned char c = (unsigned char)*p;
        out[n++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
    json_decref(j);
}

int ctl_report_failure(const Ctl *ctl, const char *method, const char *path,
                       const CtlResponse *resp)
{
    if (resp->status == 0) {
        if (resp->err.msg[0] != '\0')
            fprintf(stderr, "%s: no answer from the storage controller: %s\n", CTL_PROGRAM,
                    resp->err.msg);
        else
            fprintf(stderr, "%s: no answer from the storage controller: %s %s%s\n", CTL_PROGRAM,
                    method, ctl->api, path);
        return CTL_EXIT_TRANSPORT;
    }
    char msg[ERR_MSG_SIZE];
    ctl_response_msg(resp, msg, sizeof(msg));
    fprintf(stderr, "%s: %d %s\n", CTL_PROGRAM, resp->status, msg);
    return CTL_EXIT_ERROR;
}

void ctl_set_token(Ctl *ctl, const char *token)
{
    free(ctl->token);
    ctl->token = (token != NULL && token[0] != '\0') ? xstrdup(token) : NULL;
}

void ctl_finish(Ctl *ctl)
{
    if (ctl->client != NULL)
        http_client_free(ctl->client);
    if (ctl->base != NULL)
        event_base_free(ctl->base);
    free(ctl->token);
    memset(ctl, 0, sizeof(*ctl));
}

void ctl_progress_bar(double fraction, const char *text)
{
    if (fraction < 0)
        fraction = 0;
    if (fraction > 1)
        fraction = 1;
    int width = 30, fill = (int)(fraction * width + 0.5);
    printf("\r[%.*s%.*s] %3d%% %s\033[K", fill, "##############################", width - fill,
           "..............................", (int)(fraction * 100), text);
    fflush(stdout);
}

void ctl_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}
