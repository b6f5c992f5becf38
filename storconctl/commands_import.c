/*
 * commands_import.c: `storconctl timelines import` (docs/import.md "storconctl"): put a cleanly
 * shut down Postgres data directory where the pageservers can read it, create the timeline from
 * it through the controller, and optionally follow the import until the controller has finished
 * it (its import row is gone).
 *
 * The location handed to the pageservers is a directory holding pgdata/ (the data directory) and
 * status/pgdata ({"done": true}, written last: the pageservers wait for it before reading).
 * --import-dir ROOT: the data directory is copied to ROOT/<tenant>-<timeline>/pgdata; without it
 * the data directory is used in place, so it must be named pgdata (its parent is the location).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/fsutil.h"
#include "shared/id.h"
#include "shared/str.h"

#include "storconctl/ctl.h"

#define IMPORT_PATH_MAX     4096
#define IMPORT_POLL_MS      1000
#define IMPORT_COPY_CHUNK   (1u << 20)
#define PG_CONTROL_STATE_AT 16 /* ControlFileData: system_identifier, two uint32, then state */
#define PG_DB_SHUTDOWNED    1  /* DBState DB_SHUTDOWNED */

/* check_clean_shutdown: a light pre-flight check (the pageserver parses pg_control fully): no
 * postmaster.pid, and pg_control's state says "shut down". */
static bool check_clean_shutdown(const char *pgdata, char *why, size_t cap)
{
    char path[IMPORT_PATH_MAX];
    if (!str_printf(path, sizeof(path), "%s/postmaster.pid", pgdata)) {
        (void)str_printf(why, cap, "%s: path too long", pgdata);
        return false;
    }
    if (fs_exists(path)) {
        (void)str_printf(why, cap, "%s exists: stop the server cleanly first", path);
        return false;
    }
    if (!str_printf(path, sizeof(path), "%s/global/pg_control", pgdata)) {
        (void)str_printf(why, cap, "%s: path too long", pgdata);
        return false;
    }
    char *data = NULL;
    size_t len = 0;
    Err err = {0};
    if (!fs_read_file(path, 64 * 1024, &data, &len, &err)) {
        (void)str_printf(why, cap, "%s: %s (not a data directory?)", path, err.msg);
        return false;
    }
    int32_t state = -1;
    if (len >= PG_CONTROL_STATE_AT + sizeof(state))
        memcpy(&state, data + PG_CONTROL_STATE_AT, sizeof(state));
    free(data);
    if (state != PG_DB_SHUTDOWNED) {
        (void)str_printf(why, cap, "%s: the cluster was not shut down cleanly (state %d)", path,
                         (int)state);
        return false;
    }
    return true;
}

/* ---- copying the data directory ---- */

typedef struct CopyCtx {
    char dst[IMPORT_PATH_MAX];
    char why[IMPORT_PATH_MAX + 128];
    uint64_t files, bytes;
} CopyCtx;

static bool copy_tree(const char *src, const char *dst, CopyCtx *c);

static bool copy_file(const char *src, const char *dst, mode_t mode, CopyCtx *c)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        (void)str_printf(c->why, sizeof(c->why), "%s: %s", src, strerror(errno));
        return false;
    }
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 0777);
    if (out < 0) {
        (void)str_printf(c->why, sizeof(c->why), "%s: %s", dst, strerror(errno));
        close(in);
        return false;
    }
    char *buf = xmalloc(IMPORT_COPY_CHUNK);
    bool ok = true;
    for (;;) {
        ssize_t n = read(in, buf, IMPORT_COPY_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            (void)str_printf(c->why, sizeof(c->why), "%s: %s", src, strerror(errno));
            ok = false;
            break;
        }
        if (n == 0)
            break;
        if (!fs_write_all(out, buf, (size_t)n)) {
            (void)str_printf(c->why, sizeof(c->why), "%s: %s", dst, strerror(errno));
            ok = false;
            break;
        }
        c->bytes += (uint64_t)n;
    }
    free(buf);
    if (ok && fsync(out) != 0) {
        (void)str_printf(c->why, sizeof(c->why), "%s: fsync: %s", dst, strerror(errno));
        ok = false;
    }
    close(in);
    close(out);
    c->files++;
    return ok;
}

typedef struct CopyWalk {
    CopyCtx *c;
    const char *dst_dir;
    bool ok;
} CopyWalk;

static bool copy_entry(const char *path, const char *name, void *arg)
{
    CopyWalk *w = arg;
    if (strcmp(name, "postmaster.pid") == 0 || strcmp(name, "postmaster.opts") == 0)
        return true;
    char dst[IMPORT_PATH_MAX];
    if (!str_printf(dst, sizeof(dst), "%s/%s", w->dst_dir, name)) {
        (void)str_printf(w->c->why, sizeof(w->c->why), "%s: path too long", path);
        w->ok = false;
        return false;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        (void)str_printf(w->c->why, sizeof(w->c->why), "%s: %s", path, strerror(errno));
        w->ok = false;
        return false;
    }
    if (S_ISDIR(st.st_mode))
        w->ok = copy_tree(path, dst, w->c);
    else if (S_ISREG(st.st_mode))
        w->ok = copy_file(path, dst, st.st_mode, w->c);
    return w->ok; /* other kinds (sockets, fifos) are not part of a data directory */
}

static bool copy_tree(const char *src, const char *dst, CopyCtx *c)
{
    Err err = {0};
    if (!fs_mkdir_p(dst, 0755, &err)) {
        (void)str_printf(c->why, sizeof(c->why), "%s: %s", dst, err.msg);
        return false;
    }
    CopyWalk w = {.c = c, .dst_dir = dst, .ok = true};
    if (!fs_dir_each(src, false, copy_entry, &w, &err)) {
        (void)str_printf(c->why, sizeof(c->why), "%s: %s", src, err.msg);
        return false;
    }
    if (w.ok && !fs_fsync_dir(dst, &err)) {
        (void)str_printf(c->why, sizeof(c->why), "%s: %s", dst, err.msg);
        return false;
    }
    return w.ok;
}

/* ---- following the import ---- */

/* progress_line: "2/4 shards done, jobs 10/24" from the controller's view of the import. */
static void progress_line(const json_t *view, char *out, size_t cap, double *fraction)
{
    json_int_t terminal = json_integer_value(json_object_get(view, "terminal"));
    json_int_t n = json_integer_value(json_object_get(view, "shard_count"));
    json_int_t failed = json_integer_value(json_object_get(view, "failed"));
    json_int_t jobs = 0, done_jobs = 0;
    size_t i;
    json_t *s;
    double frac = 0;
    json_array_foreach(json_object_get(view, "shards"), i, s)
    {
        const char *state = json_string_value(json_object_get(s, "state"));
        json_int_t j = json_integer_value(json_object_get(s, "jobs"));
        json_int_t c = json_integer_value(json_object_get(s, "completed"));
        jobs += j;
        done_jobs += c;
        if (state != NULL && strcmp(state, "InProgress") != 0)
            frac += 1.0;
        else if (j > 0)
            frac += (double)c / (double)j;
    }
    *fraction = n > 0 ? frac / (double)n : 0;
    snprintf(out, cap, "%lld/%lld shards finished%s%s, jobs %lld/%lld", (long long)terminal,
             (long long)n, failed > 0 ? ", failed: " : "", failed > 0 ? "yes" : "",
             (long long)done_jobs, (long long)jobs);
}

/* wait_import: poll the import until its row is gone (finalised: the control plane was told).
 * The last view seen names the failed shards; a timeline that is served tells a complete import. */
static int wait_import(Ctl *ctl, const char *tenant, const char *timeline)
{
    char path[512];
    snprintf(path, sizeof(path), "/control/v1/tenant/%s/timeline/%s/import", tenant, timeline);
    bool tty = isatty(STDOUT_FILENO) && !ctl->json;
    char last[256] = "";
    json_t *last_view = NULL;
    for (;;) {
        CtlResponse resp;
        ctl_http(ctl, "GET", path, NULL, &resp);
        if (resp.status == 404) {
            ctl_response_finish(&resp);
            break;
        }
        if (!ctl_response_ok(&resp)) {
            int code = ctl_report_failure(ctl, "GET", path, &resp);
            ctl_response_finish(&resp);
            json_decref(last_view);
            return code;
        }
        json_t *view = json_loadb(resp.body, resp.body_len, 0, NULL);
        ctl_response_finish(&resp);
        if (json_is_object(view)) {
            char line[256];
            double frac = 0;
            progress_line(view, line, sizeof(line), &frac);
            if (tty) {
                ctl_progress_bar(frac, line);
            } else if (strcmp(line, last) != 0) {
                printf("%s\n", line);
                fflush(stdout);
            }
            snprintf(last, sizeof(last), "%s", line);
            json_decref(last_view);
            last_view = view;
        } else {
            json_decref(view);
        }
        ctl_sleep_ms(IMPORT_POLL_MS);
    }
    if (tty)
        printf("\n");
    int code = CTL_EXIT_OK;
    json_int_t failed =
        last_view != NULL ? json_integer_value(json_object_get(last_view, "failed")) : 0;
    if (failed > 0) {
        size_t i;
        json_t *s;
        json_array_foreach(json_object_get(last_view, "shards"), i, s)
        {
            const char *e = json_string_value(json_object_get(s, "error"));
            if (e != NULL)
                fprintf(stderr, "storconctl: shard %s: %s\n",
                        json_string_value(json_object_get(s, "shard_id")), e);
        }
        code = CTL_EXIT_ERROR;
    }
    if (failed == 0) {
        /* The row can go between two polls, with the last shard's failure in the gap: only a
         * timeline served after finalisation (activated on every shard) is a complete import. */
        CtlResponse resp;
        snprintf(path, sizeof(path), "/v1/tenant/%s/timeline/%s", tenant, timeline);
        ctl_http(ctl, "GET", path, NULL, &resp);
        if (!ctl_response_ok(&resp)) {
            fprintf(stderr,
                    "storconctl: the import ended but the timeline is not served (GET %s: %d): "
                    "it failed; the control plane was told why\n",
                    path, resp.status);
            failed = 1;
            code = CTL_EXIT_ERROR;
        }
        ctl_response_finish(&resp);
    }
    printf("import of timeline %s of tenant %s %s\n", timeline, tenant,
           failed > 0 ? "failed" : "complete");
    json_decref(last_view);
    return code;
}

/* ---- the command ---- */

int ctl_cmd_timelines_import(Ctl *ctl, int argc, char **argv)
{
    const CtlCommand *self = ctl_command_find("timelines import");
    const char *pgdata_s = NULL, *root = NULL, *tl_s = NULL;
    bool wait = false;
    const CtlOpt opts[] = {{"pgdata", &pgdata_s, NULL},
                           {"import-dir", &root, NULL},
                           {"timeline", &tl_s, NULL},
                           {"wait", NULL, &wait}};
    char *pos[1];
    int n_pos = 0, code = 0;
    if (!ctl_parse_args(ctl, self, argc, argv, opts, sizeof(opts) / sizeof(opts[0]), pos, 1, &n_pos,
                        &code))
        return code;
    Err err = {0};
    TenantId tenant;
    TimelineId tl;
    if (n_pos != 1)
        return ctl_usage_error(self, "give the tenant id");
    if (!tenant_id_parse(pos[0], &tenant, &err))
        return ctl_usage_error(self, "%s", err.msg);
    if (pgdata_s == NULL)
        return ctl_usage_error(self, "--pgdata DIR is required");
    if (tl_s != NULL) {
        if (!timeline_id_parse(tl_s, &tl, &err))
            return ctl_usage_error(self, "--timeline: %s", err.msg);
    } else {
        timeline_id_generate(&tl);
    }
    char tenant_s[ID_STR_SIZE], tls[ID_STR_SIZE];
    tenant_id_format(&tenant, tenant_s);
    timeline_id_format(&tl, tls);

    char pgdata[IMPORT_PATH_MAX];
    if (realpath(pgdata_s, pgdata) == NULL) {
        fprintf(stderr, "storconctl: --pgdata %s: %s\n", pgdata_s, strerror(errno));
        return CTL_EXIT_ERROR;
    }
    char why[IMPORT_PATH_MAX + 128];
    if (!check_clean_shutdown(pgdata, why, sizeof(why))) {
        fprintf(stderr, "storconctl: %s\n", why);
        return CTL_EXIT_ERROR;
    }
    char loc[IMPORT_PATH_MAX];
    if (root != NULL) {
        char root_abs[IMPORT_PATH_MAX];
        if (realpath(root, root_abs) == NULL) {
            fprintf(stderr, "storconctl: --import-dir %s: %s\n", root, strerror(errno));
            return CTL_EXIT_ERROR;
        }
        char dst[IMPORT_PATH_MAX];
        if (!str_printf(loc, sizeof(loc), "%s/%s-%s", root_abs, tenant_s, tls) ||
            !str_printf(dst, sizeof(dst), "%s/pgdata", loc)) {
            fprintf(stderr, "storconctl: --import-dir: path too long\n");
            return CTL_EXIT_ERROR;
        }
        if (fs_exists(loc)) {
            fprintf(stderr, "storconctl: %s exists already (a previous import?)\n", loc);
            return CTL_EXIT_ERROR;
        }
        CopyCtx *c = xcalloc(1, sizeof(*c));
        if (!copy_tree(pgdata, dst, c)) {
            fprintf(stderr, "storconctl: copying the data directory: %s\n", c->why);
            free(c);
            return CTL_EXIT_ERROR;
        }
        if (!ctl->json)
            printf("copied %llu files (%llu bytes) to %s\n", (unsigned long long)c->files,
                   (unsigned long long)c->bytes, dst);
        free(c);
    } else {
        const char *base = strrchr(pgdata, '/');
        if (base == NULL || strcmp(base + 1, "pgdata") != 0 ||
            !fs_dir_of(pgdata, loc, sizeof(loc))) {
            fprintf(stderr, "storconctl: without --import-dir the data directory is used in "
                            "place and must be named pgdata (its parent is the location)\n");
            return CTL_EXIT_USAGE;
        }
    }
    char status_dir[IMPORT_PATH_MAX], status[IMPORT_PATH_MAX];
    if (!str_printf(status_dir, sizeof(status_dir), "%s/status", loc) ||
        !str_printf(status, sizeof(status), "%s/pgdata", status_dir) ||
        !fs_mkdir_p(status_dir, 0755, &err) ||
        !fs_write_atomic(status, "{\"done\": true}\n", 15, &err)) {
        fprintf(stderr, "storconctl: writing %s: %s\n", status, err.msg[0] ? err.msg : "too long");
        return CTL_EXIT_ERROR;
    }

    json_t *body = json_pack("{s:s, s:{s:s, s:{s:{s:s}}}}", "new_timeline_id", tls, "import_pgdata",
                             "idempotency_key", tls, "location", "LocalFs", "path", loc);
    char path[512];
    snprintf(path, sizeof(path), "/v1/tenant/%s/timeline", tenant_s);
    CtlResponse resp;
    ctl_http(ctl, "POST", path, body, &resp);
    json_decref(body);
    if (!ctl_response_ok(&resp)) {
        code = ctl_report_failure(ctl, "POST", path, &resp);
        ctl_response_finish(&resp);
        return code;
    }
    if (ctl->json)
        printf("%s\n", resp.body);
    else
        printf("importing timeline %s of tenant %s from %s\n", tls, tenant_s, loc);
    ctl_response_finish(&resp);
    fflush(stdout);
    if (!wait)
        return CTL_EXIT_OK;
    return wait_import(ctl, tenant_s, tls);
}
