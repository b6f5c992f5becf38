/* fsync_group.c: group commit of one directory's fsyncs (fsync_group.h). */
#include "shared/fsync_group.h"

#include <stdlib.h>

#include "shared/fsutil.h"
#include "shared/str.h"

/* FsyncGroupBatch: the callers one fsync covers. It is the group's `next` while callers may join
 * it; the caller that runs its fsync detaches it first, so later callers form a new batch (their
 * changes may come after the fsync started). Freed by the last member to leave. */
struct FsyncGroupBatch {
    size_t members;
    bool done;
    bool ok;
    Err err;
};

static bool default_fsync(const char *dir, void *arg, Err *err)
{
    (void)arg;
    return fs_fsync_dir(dir, err);
}

void fsync_group_init(FsyncGroup *g, const char *dir, FsyncGroupFn fn, void *fn_arg)
{
    str_copy(g->dir, sizeof(g->dir), dir);
    g->fn = fn != NULL ? fn : default_fsync;
    g->fn_arg = fn_arg;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->running = false;
    g->next = NULL;
}

void fsync_group_destroy(FsyncGroup *g)
{
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

bool fsync_group_sync(FsyncGroup *g, Err *err)
{
    pthread_mutex_lock(&g->mu);
    FsyncGroupBatch *b = g->next;
    if (b == NULL) {
        b = xcalloc(1, sizeof(*b));
        g->next = b;
    }
    b->members++;
    while (!b->done) {
        if (g->running) {
            pthread_cond_wait(&g->cv, &g->mu);
            continue;
        }
        /* nothing runs and our batch has not been synced: every member joined before this
         * point, so one fsync from here covers them all */
        g->running = true;
        g->next = NULL;
        pthread_mutex_unlock(&g->mu);
        Err e = {0};
        bool ok = g->fn(g->dir, g->fn_arg, &e);
        pthread_mutex_lock(&g->mu);
        b->ok = ok;
        b->err = e;
        b->done = true;
        g->running = false;
        pthread_cond_broadcast(&g->cv); /* our batch, and the next one's leader */
    }
    bool ok = b->ok;
    if (!ok)
        *err = b->err;
    if (--b->members == 0)
        free(b);
    pthread_mutex_unlock(&g->mu);
    return ok;
}

size_t fsync_group_pending(FsyncGroup *g)
{
    pthread_mutex_lock(&g->mu);
    size_t n = g->next != NULL ? g->next->members : 0;
    pthread_mutex_unlock(&g->mu);
    return n;
}
