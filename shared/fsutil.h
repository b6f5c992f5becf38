/*
 * fsutil.h: file helpers with the durability rules of the project: a file that must survive a
 * crash is written to a temporary name, fsynced, renamed, and its directory fsynced. These block:
 * call them from a worker thread, or at startup before the event loop runs.
 */
#ifndef SHARED_FSUTIL_H
#define SHARED_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "shared/err.h"

/* fs_read_file: read a whole file (at most max_bytes, else ERR_PAYLOAD_TOO_LARGE) into a new
 * NUL-terminated buffer the caller frees. Absent file -> ERR_NOT_FOUND. */
bool fs_read_file(const char *path, size_t max_bytes, char **out, size_t *len, Err *err) MUST_CHECK;

/* fs_write_atomic: write to "<path>.tmp.<pid>.<n>", fsync, rename over path, fsync the directory.
 */
bool fs_write_atomic(const char *path, const void *data, size_t len, Err *err) MUST_CHECK;

/* fs_write_all: write len bytes to fd, retrying short writes and EINTR; false with errno set. */
bool fs_write_all(int fd, const void *data, size_t len) MUST_CHECK;

bool fs_fsync_dir(const char *dir, Err *err) MUST_CHECK;
/* fs_mkdir_p: create a directory and its parents (existing ones are fine); the parent of every
 * directory it creates is fsynced, so the new directory survives a crash. */
bool fs_mkdir_p(const char *path, mode_t mode, Err *err) MUST_CHECK;
/* fs_mkdir: create one directory (an existing one is fine; its parent must exist); *created
 * (may be NULL) says whether it is new. Its entry is NOT made durable: the caller fsyncs the
 * parent when it was created, e.g. through an FsyncGroup (shared/fsync_group.h) shared with the
 * other threads creating entries in that parent. */
bool fs_mkdir(const char *path, mode_t mode, bool *created, Err *err) MUST_CHECK;
/* fs_remove_tree: remove a file or a directory tree; absent is success. */
bool fs_remove_tree(const char *path, Err *err) MUST_CHECK;
bool fs_exists(const char *path);
/* FsDirEachFn: one entry of a directory; path is "<dir>/<name>". Return false to stop the walk. */
typedef bool (*FsDirEachFn)(const char *path, const char *name, void *arg);
/* fs_dir_each: fn for every entry of dir ("." and ".." skipped) in readdir order; an entry whose
 * path would not fit PATH_MAX is skipped. False with err set when dir cannot be opened (an absent
 * one is empty when missing_ok) or read; true when fn stopped the walk. */
bool fs_dir_each(const char *dir, bool missing_ok, FsDirEachFn fn, void *arg, Err *err) MUST_CHECK;
/* fs_strip_trailing_slashes: "/a/b//" -> "/a/b" in place; a lone "/" stays. */
void fs_strip_trailing_slashes(char *path);
/* fs_dir_of: the directory holding path ("." for a bare name, "/" for "/name") into out[cap];
 * false if it does not fit. */
bool fs_dir_of(const char *path, char *out, size_t cap) MUST_CHECK;

#endif
