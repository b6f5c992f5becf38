/*
 * fsync_group.h: group commit of one directory's fsyncs.
 *
 * Threads that each changed the same directory (a new entry: mkdir, create, rename) and need
 * the change durable before they go on call fsync_group_sync. A caller needs an fsync of the
 * directory that STARTED after its change; one that was already running when it arrived may
 * have missed it. So the callers that arrive while an fsync runs form the next batch, and when
 * that fsync ends one of them runs a single fsync for the whole batch; a caller arriving while
 * nothing runs starts one at once. N concurrent callers cost two fsyncs instead of N (each
 * fsync of a directory writes its blocks and inode: on ext4 without a journal nothing merges
 * concurrent fsyncs of one directory for us), and no caller waits longer than for the fsync
 * running when it arrived plus its own.
 *
 * Every caller of a batch gets that batch's result: a failed fsync fails exactly the callers
 * whose changes it was to make durable (after a failed fsync the kernel may have dropped the
 * dirty state, so a later success would not prove their changes durable).
 *
 * The fsync runs on the calling thread (it blocks: call from a worker thread).
 */
#ifndef SHARED_FSYNC_GROUP_H
#define SHARED_FSYNC_GROUP_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "shared/err.h"

/* FsyncGroupFn: make dir's entries durable (fs_fsync_dir by default; tests count the calls). */
typedef bool (*FsyncGroupFn)(const char *dir, void *arg, Err *err);

typedef struct FsyncGroupBatch FsyncGroupBatch;

typedef struct FsyncGroup {
    char dir[PATH_MAX];
    FsyncGroupFn fn;
    void *fn_arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool running;          /* an fsync is in progress (its batch is no longer `next`) */
    FsyncGroupBatch *next; /* the callers waiting for the next fsync, or NULL */
} FsyncGroup;

/* fsync_group_init: a group for dir; fn NULL = fs_fsync_dir. */
void fsync_group_init(FsyncGroup *g, const char *dir, FsyncGroupFn fn, void *fn_arg);
/* fsync_group_destroy: no caller may be inside fsync_group_sync. */
void fsync_group_destroy(FsyncGroup *g);

/* fsync_group_sync: returns once an fsync of the directory that started after this call began
 * has ended; its result (false with err set when that fsync failed). */
bool fsync_group_sync(FsyncGroup *g, Err *err) MUST_CHECK;

/* fsync_group_pending: how many callers wait for an fsync that has not started yet (tests). */
size_t fsync_group_pending(FsyncGroup *g);

#endif
