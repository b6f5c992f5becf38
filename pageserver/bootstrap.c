/* bootstrap.c: initdb as a non-root user, the initdb archive, and conversion into image layers. */
#include "pageserver/bootstrap.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shared/bytes.h"
#include "shared/failpoint.h"
#include "shared/fsutil.h"
#include "shared/log.h"
#include "shared/str.h"
#include "shared/tar.h"

#include "pageserver/layer.h"
#include "pageserver/pgdata.h"
#include "pageserver/remote_layout.h"

void bootstrap_result_finish(BootstrapResult *r)
{
    free(r->layers);
    memset(r, 0, sizeof(*r));
}

/* ---- running initdb ---- */

typedef struct RunAs {
    bool switch_user;
    uid_t uid;
    gid_t gid;
} RunAs;

static bool lookup_user(const char *user, RunAs *out, Err *err)
{
    memset(out, 0, sizeof(*out));
    if (geteuid() != 0)
        return true; /* not root: initdb runs as we do */
    struct passwd pw, *res = NULL;
    char buf[4096];
    int rc = getpwnam_r(user, &pw, buf, sizeof(buf), &res);
    if (rc != 0 || res == NULL) {
        err_set(err, ERR_INTERNAL,
                "the pageserver runs as root and initdb must not: user \"%s\" (--initdb-user) "
                "does not exist",
                user);
        return false;
    }
    if (pw.pw_uid == 0) {
        err_set(err, ERR_INTERNAL, "--initdb-user \"%s\" is root; initdb refuses to run as root",
                user);
        return false;
    }
    out->switch_user = true;
    out->uid = pw.pw_uid;
    out->gid = pw.pw_gid;
    return true;
}

/* child_exec: runs in the forked child; only async-signal-safe calls until execve. */
static void child_exec(const RunAs *as, int err_fd, const char *cwd, const char *path,
                       char *const argv[], char *const envp[])
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL); /* workers block everything; initdb must not */
    signal(SIGPIPE, SIG_DFL);              /* the daemon ignores it; exec keeps "ignored" */
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
        dup2(devnull, 0);
        dup2(devnull, 1);
    }
    dup2(err_fd, 2);
    if (as->switch_user) {
        if (setgroups(0, NULL) != 0 || setgid(as->gid) != 0 || setuid(as->uid) != 0 ||
            setuid(0) == 0) {
            static const char msg[] = "cannot switch to the initdb user\n";
            ssize_t w = write(2, msg, sizeof(msg) - 1);
            (void)w;
            _exit(126);
        }
    }
    if (chdir(cwd) != 0)
        _exit(126);
    execve(path, argv, envp);
    static const char msg[] = "cannot execute initdb\n";
    ssize_t w = write(2, msg, sizeof(msg) - 1);
    (void)w;
    _exit(127);
}

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* collect_stderr: read the child's stderr until EOF or the deadline, keeping the last
 * PAGESERVER_INITDB_STDERR_MAX bytes (the end of initdb's output says what failed). */
static bool collect_stderr(int fd, char *keep, size_t cap, int64_t deadline)
{
    size_t len = 0;
    keep[0] = '\0';
    for (;;) {
        int64_t left = deadline - mono_ms();
        if (left <= 0)
            return false;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int rc = poll(&p, 1, (int)(left > 1000 ? 1000 : left));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            continue;
        char buf[1024];
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return true;
        for (ssize_t i = 0; i < n; i++) {
            if (len + 1 >= cap) {
                memmove(keep, keep + cap / 2, len - cap / 2);
                len -= cap / 2;
            }
            keep[len++] = buf[i];
        }
        keep[len] = '\0';
    }
}

static void trim_message(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
    for (char *p = s; *p; p++) {
        if (*p == '\n')
            *p = ' ';
    }
}

bool bootstrap_run_initdb(const char *pg_bin_dir, const char *user, const char *pgdata, Err *err)
{
    if (!failpoint_check("bootstrap-before-initdb", err))
        return false;
    RunAs as;
    if (!lookup_user(user, &as, err))
        return false;
    char parent[PATH_MAX];
    str_copy(parent, sizeof(parent), pgdata);
    char *slash = strrchr(parent, '/');
    if (slash == NULL || slash == parent) {
        err_set(err, ERR_INTERNAL, "initdb: bad data directory %s", pgdata);
        return false;
    }
    *slash = '\0';
    if (as.switch_user && chown(parent, as.uid, as.gid) != 0) {
        err_set(err, ERR_INTERNAL, "initdb: cannot give %s to %s: %m", parent, user);
        return false;
    }
    char initdb[PATH_MAX];
    if (!str_printf(initdb, sizeof(initdb), "%s/initdb", pg_bin_dir)) {
        err_set(err, ERR_INTERNAL, "initdb: path too long");
        return false;
    }
    char *argv[] = {
        initdb,      "-D", (char *)pgdata, "-U",         "cloud_admin",  "--no-instructions",
        "--no-sync", "-E", "UTF8",         "--locale=C", "--auth=trust", NULL};
    char *envp[] = {
        "PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C", "LANG=C", "TZ=UTC", "HOME=/", NULL};
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0) {
        err_set(err, ERR_INTERNAL, "initdb: pipe: %m");
        return false;
    }
    int64_t start = mono_ms();
    pid_t pid = fork();
    if (pid < 0) {
        close(pipefd[0]);
        close(pipefd[1]);
        err_set(err, ERR_INTERNAL, "initdb: fork: %m");
        return false;
    }
    if (pid == 0)
        child_exec(&as, pipefd[1], parent, initdb, argv, envp);
    close(pipefd[1]);
    char out[PAGESERVER_INITDB_STDERR_MAX];
    bool finished =
        collect_stderr(pipefd[0], out, sizeof(out), start + PAGESERVER_INITDB_TIMEOUT_MS);
    close(pipefd[0]);
    if (!finished)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    trim_message(out);
    if (!finished) {
        err_set(err, ERR_INTERNAL, "initdb did not finish within %ld ms and was killed: %s",
                PAGESERVER_INITDB_TIMEOUT_MS, out);
        return false;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        err_set(err, ERR_INTERNAL, "initdb failed (%s %d)%s%s",
                WIFEXITED(status) ? "exit code" : "signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), out[0] ? ": " : "",
                out);
        return false;
    }
    log_info("initdb finished in %lld ms (as %s)", (long long)(mono_ms() - start),
             as.switch_user ? user : "the pageserver's user");
    return true;
}

/* traversable_by: can uid/gid reach into dir (x on every component)? Supplementary groups are
 * ignored, which at worst sends initdb to /tmp needlessly. */
static bool traversable_by(const char *dir, uid_t uid, gid_t gid)
{
    char path[PATH_MAX];
    if (!str_copy(path, sizeof(path), dir))
        return false;
    for (;;) {
        struct stat st;
        if (stat(path[0] ? path : "/", &st) != 0)
            return false;
        mode_t need = st.st_uid == uid ? S_IXUSR : st.st_gid == gid ? S_IXGRP : S_IXOTH;
        if ((st.st_mode & need) == 0)
            return false;
        char *slash = strrchr(path, '/');
        if (slash == NULL || path[0] == '\0')
            return true;
        *slash = '\0';
    }
}

/* make_scratch: the scratch directory (see the header). */
static bool make_scratch(const BootstrapParams *p, char *out, size_t cap, Err *err)
{
    static atomic_uint counter;
    char tsid[TSID_STR_SIZE], tl[ID_STR_SIZE];
    tsid_format(&p->tsid, tsid);
    timeline_id_format(&p->tl, tl);
    RunAs as;
    if (!lookup_user(p->initdb_user, &as, err))
        return false;
    char tmp_root[PATH_MAX];
    str_printf(tmp_root, sizeof(tmp_root), "%s/%s", p->workdir, PAGESERVER_TMP_DIR);
    if (as.switch_user && !traversable_by(p->workdir, as.uid, as.gid)) {
        if (!str_copy(out, cap, "/tmp/pageserver-bootstrap-XXXXXX") || mkdtemp(out) == NULL) {
            err_set(err, ERR_INTERNAL, "cannot create a scratch directory under /tmp: %m");
            return false;
        }
        if (chmod(out, 0755) != 0) {
            err_set(err, ERR_INTERNAL, "chmod %s: %m", out);
            return false;
        }
        log_info("bootstrap: %s cannot reach the work directory (a parent is not searchable); "
                 "running initdb under %s",
                 p->initdb_user, out);
        return true;
    }
    if (!str_printf(out, cap, "%s/bootstrap-%s-%s-%u-%u", tmp_root, tsid, tl, (unsigned)getpid(),
                    atomic_fetch_add(&counter, 1))) {
        err_set(err, ERR_INTERNAL, "scratch path too long");
        return false;
    }
    if (!fs_remove_tree(out, err) || !fs_mkdir_p(out, 0755, err))
        return false;
    return true;
}

/* ---- conversion ---- */

typedef struct SinkCtx {
    LayerWriter *w;
    uint64_t logical_size;
    uint64_t entries;
} SinkCtx;

static bool layer_sink(void *ctx, const Key *key, const void *value, size_t len, Err *err)
{
    SinkCtx *s = ctx;
    if (key_is_rel_size(key) && len == 4) {
        const uint8_t *b = value;
        uint32_t nblocks = le_get_u32(b);
        s->logical_size += (uint64_t)nblocks * BLCKSZ;
    }
    s->entries++;
    return layer_writer_add(s->w, key, value, len, err);
}

static void remove_layers(const BootstrapParams *p, const IndexLayer *layers, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char suffix[GENERATION_SUFFIX_SIZE], path[PATH_MAX];
        generation_suffix(layers[i].generation, suffix);
        if (str_printf(path, sizeof(path), "%s/%s%s", p->timeline_dir, layers[i].name, suffix))
            unlink(path);
    }
}

bool bootstrap_job_to_layer(const PgdataPlan *plan, size_t job_index, const char *dir,
                            Generation gen, ShardIndex writer, const LayerWriterOptions *opts,
                            IndexLayer *out, uint64_t *logical_size, Err *err)
{
    PgdataJobInfo job = pgdata_plan_job(plan, job_index);
    LayerDesc desc = layer_desc_image(&job.range, pgdata_plan_base_lsn(plan));
    char name[LAYER_NAME_SIZE], suffix[GENERATION_SUFFIX_SIZE], path[PATH_MAX];
    layer_name_format(&desc, name);
    generation_suffix(gen, suffix);
    if (!str_printf(path, sizeof(path), "%s/%s%s", dir, name, suffix)) {
        err_set(err, ERR_INTERNAL, "layer path too long");
        return false;
    }
    SinkCtx sink = {0};
    if (!layer_writer_new(path, &desc, opts, &sink.w, err))
        return false;
    if (!pgdata_job_execute(plan, job_index, layer_sink, &sink, err)) {
        layer_writer_abort(sink.w);
        return false;
    }
    LayerInfo info;
    if (!layer_writer_finish(sink.w, &info, err))
        return false;
    *logical_size += sink.logical_size;
    memset(out, 0, sizeof(*out));
    str_copy(out->name, sizeof(out->name), name);
    out->file_size = info.file_size;
    out->generation = gen;
    out->shard = writer;
    return true;
}

static bool convert(const BootstrapParams *p, const char *pgdata, BootstrapResult *out, Err *err)
{
    PgdataSource *src = NULL;
    PgdataPlan *plan = NULL;
    bool ok = false;
    if (!pgdata_source_local_new(pgdata, &src, err) ||
        !pgdata_plan_new(src, &p->shard, NULL, &plan, err))
        goto cleanup;
    if (!fs_mkdir_p(p->timeline_dir, 0755, err))
        goto cleanup;
    out->initdb_lsn = pgdata_plan_base_lsn(plan);
    out->pg_version = pgdata_plan_pg_version(plan);
    size_t n_jobs = pgdata_plan_job_count(plan);
    out->layers = xcalloc(n_jobs ? n_jobs : 1, sizeof(*out->layers));
    ShardIndex writer = tsid_shard_index(&p->tsid);
    for (size_t i = 0; i < n_jobs; i++) {
        if (!bootstrap_job_to_layer(plan, i, p->timeline_dir, p->gen, writer, &p->layer_opts,
                                    &out->layers[out->n_layers], &out->logical_size, err))
            goto cleanup;
        out->n_layers++;
    }
    ok = true;
cleanup:
    if (!ok) {
        remove_layers(p, out->layers, out->n_layers);
        if (err->code == ERR_BAD_REQUEST)
            err->code = ERR_INTERNAL; /* our own initdb output, not the client's input */
        err_prefix(err, "converting the initdb cluster: ");
    }
    pgdata_plan_free(plan);
    pgdata_source_free(src);
    return ok;
}

bool bootstrap_run(const BootstrapParams *p, BootstrapResult *out, Err *err)
{
    memset(out, 0, sizeof(*out));
    char scratch[PATH_MAX], initdb_parent[PATH_MAX], pgdata[PATH_MAX], archive[PATH_MAX];
    char key[REMOTE_KEY_SIZE];
    if (!make_scratch(p, scratch, sizeof(scratch), err))
        return false;
    bool ok = false;
    if (!str_printf(initdb_parent, sizeof(initdb_parent), "%s/initdb", scratch) ||
        !str_printf(pgdata, sizeof(pgdata), "%s/pgdata", initdb_parent) ||
        !str_printf(archive, sizeof(archive), "%s/initdb.tar.zst", scratch)) {
        err_set(err, ERR_INTERNAL, "scratch path too long");
        goto cleanup;
    }
    if (!fs_mkdir_p(initdb_parent, 0755, err))
        goto cleanup;
    struct stat st;
    if (p->has_existing_initdb) {
        remote_layout_initdb_key(&p->tsid.tenant_id, &p->existing_initdb, key);
        if (!remote_get_to_file(p->rs, key, archive, err)) {
            if (err->code == ERR_NOT_FOUND) {
                char tl[ID_STR_SIZE];
                timeline_id_format(&p->existing_initdb, tl);
                err_set(err, ERR_PRECONDITION_FAILED,
                        "existing_initdb_timeline_id %s: no initdb archive %s in remote storage",
                        tl, key);
            }
            goto cleanup;
        }
        if (!tar_zst_extract_to_dir(archive, pgdata, err)) {
            err_prefix(err, "extracting %s: ", key);
            if (err->code == ERR_BAD_REQUEST)
                err->code = ERR_INTERNAL;
            goto cleanup;
        }
    } else {
        if (!bootstrap_run_initdb(p->pg_bin_dir, p->initdb_user, pgdata, err))
            goto cleanup;
        remote_layout_initdb_key(&p->tsid.tenant_id, &p->tl, key);
        if (!tar_zst_create_from_dir(pgdata, archive, err) ||
            !remote_put_file(p->rs, key, archive, err)) {
            err_prefix(err, "storing the initdb archive: ");
            goto cleanup;
        }
    }
    if (stat(archive, &st) == 0)
        out->initdb_bytes = (uint64_t)st.st_size;
    if (!failpoint_check("bootstrap-before-convert", err))
        goto cleanup;
    ok = convert(p, pgdata, out, err);
cleanup : {
    Err rm = {0};
    if (!fs_remove_tree(scratch, &rm))
        log_err(&rm, "removing the bootstrap scratch directory");
}
    if (!ok)
        bootstrap_result_finish(out);
    return ok;
}
