/*
 * pgdata_remote.c: a PGDATA source read through remote storage (pgdata.h), for imports from an
 * object store (the import spec's AwsS3 location). Directories are key prefixes: a listing is
 * ListObjectsV2 with delimiter '/' (objects are files, common prefixes are directories), and an
 * empty listing is an absent directory (object stores have no empty directories). Reads are
 * ranged gets, one per coalesced range.
 */
#include "pageserver/pgdata.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "shared/remote_storage.h"
#include "shared/str.h"

#include "pageserver/remote_layout.h"

typedef struct RemoteSource {
    RemoteStorage *rs;            /* owned */
    char prefix[REMOTE_KEY_SIZE]; /* "" or "<dir>/" under the storage's own prefix */
} RemoteSource;

static bool key_of(const RemoteSource *s, const char *path, char *out, size_t cap, Err *err)
{
    if (!str_printf(out, cap, "%s%s", s->prefix, path)) {
        err_set(err, ERR_BAD_REQUEST, "path too long: %s", path);
        return false;
    }
    return true;
}

/* add_entry: append one entry (growing the array), at most max_entries in all. */
static bool add_entry(PgdataListing *out, size_t *cap, size_t max_entries, const char *name,
                      size_t name_len, uint64_t size, bool is_dir, Err *err)
{
    if (out->n >= max_entries) {
        err_set(err, ERR_BAD_REQUEST, "more than %zu directory entries", max_entries);
        return false;
    }
    if (out->n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        out->entries = xrealloc(out->entries, *cap * sizeof(*out->entries));
    }
    PgdataDirEntry *e = &out->entries[out->n];
    memset(e, 0, sizeof(*e));
    if (name_len == 0 || name_len >= sizeof(e->name)) {
        err_set(err, ERR_BAD_REQUEST, "unusable entry name \"%.*s\"", (int)(name_len % 200), name);
        return false;
    }
    memcpy(e->name, name, name_len);
    e->size = is_dir ? 0 : size;
    e->is_dir = is_dir;
    out->n++;
    return true;
}

static bool remote_list_dir(void *impl, const char *dir, size_t max_entries, PgdataListing *out,
                            Err *err)
{
    RemoteSource *s = impl;
    char prefix[REMOTE_KEY_SIZE];
    if (!str_printf(prefix, sizeof(prefix), "%s%s%s", s->prefix, dir, dir[0] ? "/" : "")) {
        err_set(err, ERR_BAD_REQUEST, "path too long: %s", dir);
        return false;
    }
    size_t plen = strlen(prefix), cap = 0;
    memset(out, 0, sizeof(*out));
    char *token = NULL;
    bool ok = true;
    do {
        RemoteListing page = {0};
        ok = remote_list_page(s->rs, prefix, "/", token, REMOTE_LIST_MAX_KEYS, &page, NULL, err);
        free(token);
        token = NULL;
        for (size_t i = 0; ok && i < page.n; i++) {
            const char *name = page.items[i].key + plen;
            if (name[0] == '\0')
                continue; /* a "directory marker" object some tools write */
            ok = add_entry(out, &cap, max_entries, name, strlen(name), page.items[i].size, false,
                           err);
        }
        for (size_t i = 0; ok && i < page.n_prefixes; i++) {
            const char *name = page.prefixes[i] + plen; /* "<name>/" */
            size_t len = strlen(name);
            ok = add_entry(out, &cap, max_entries, name, len ? len - 1 : 0, 0, true, err);
        }
        if (ok && page.next_token != NULL)
            token = xstrdup(page.next_token);
        remote_listing_free(&page);
    } while (ok && token != NULL);
    if (ok && out->n == 0) {
        err_set(err, ERR_NOT_FOUND, "no such directory: %s", dir[0] ? dir : "(the data directory)");
        ok = false;
    }
    if (!ok)
        pgdata_listing_free(out);
    return ok;
}

static bool remote_read_ranges(void *impl, const char *path, const PgdataRange *ranges, size_t n,
                               void *buf, Err *err)
{
    RemoteSource *s = impl;
    char key[REMOTE_KEY_SIZE];
    if (!key_of(s, path, key, sizeof(key), err))
        return false;
    uint8_t *p = buf;
    for (size_t i = 0; i < n; i++) {
        size_t got = 0;
        if (!remote_get_range(s->rs, key, ranges[i].offset, ranges[i].len, p, &got, err))
            return false;
        if (got < ranges[i].len) {
            err_set(err, ERR_BAD_REQUEST,
                    "%s: range at %" PRIu64 " of %zu bytes is past the end of the object", path,
                    ranges[i].offset, ranges[i].len);
            return false;
        }
        p += ranges[i].len;
    }
    return true;
}

static void remote_free(void *impl)
{
    RemoteSource *s = impl;
    remote_storage_free(s->rs);
    free(s);
}

static const PgdataSourceOps REMOTE_OPS = {
    .kind = "remote",
    .list_dir = remote_list_dir,
    .read_ranges = remote_read_ranges,
    .free_impl = remote_free,
};

bool pgdata_source_remote_new(const char *url, const char *dir, PgdataSource **out, Err *err)
{
    RemoteStorage *rs = NULL;
    if (!remote_storage_open(url, &rs, err))
        return false;
    RemoteSource *s = xcalloc(1, sizeof(*s));
    s->rs = rs;
    if (!str_printf(s->prefix, sizeof(s->prefix), "%s%s", dir, dir[0] ? "/" : "")) {
        err_set(err, ERR_BAD_REQUEST, "path too long: %s", dir);
        remote_free(s);
        return false;
    }
    char desc[REMOTE_STORAGE_URL_MAX + REMOTE_KEY_SIZE];
    (void)str_printf(desc, sizeof(desc), "%s/%s", remote_storage_url(rs), dir);
    *out = pgdata_source_new(&REMOTE_OPS, s, desc);
    return true;
}
