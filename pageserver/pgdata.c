/*
 * pgdata.c: PGDATA -> keys and values (see pgdata.h for the overview and docs/key-values.md for
 * the values).
 *
 * Planning reads only pg_control and directory listings; everything it needs later is kept in a
 * flat array of tasks (one key, or one block range of one segment file), sorted by key. A task
 * never stores a path: relation and SLRU file names are canonical (we accept only the names
 * Postgres itself writes), so the path is rebuilt from the key. That keeps the plan small (40
 * bytes per task) and makes it a function of the listings alone.
 *
 * Execution walks one job's tasks in key order. Relation blocks are read in batches of at most
 * PGDATA_READ_MAX_BYTES made of this shard's runs of blocks (a stripe never straddles runs of
 * two shards), so a shard reads only its own pages.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "shared/bytes.h"
#include "shared/pg_paths.h"
#include "shared/str.h"

#include "pageserver/pgdata.h"

#define PGDATA_PATH_MAX 256 /* longest relative path we build ("base/<oid>/<name>") */
#define READ_MAX_RANGES (PGDATA_READ_MAX_BYTES / BLCKSZ)

/* ---- small helpers ---- */

/* rel_path_valid: relative, '/'-separated, no empty, "." or ".." segment ("" is the root). */
static bool rel_path_valid(const char *p)
{
    if (p[0] == '\0')
        return true;
    const char *seg = p;
    for (;;) {
        const char *slash = strchr(seg, '/');
        size_t n = slash ? (size_t)(slash - seg) : strlen(seg);
        if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return false;
        if (!slash)
            return true;
        seg = slash + 1;
    }
}

/* ---- listings and the source wrapper ---- */

void pgdata_listing_free(PgdataListing *l)
{
    if (!l)
        return;
    free(l->entries);
    l->entries = NULL;
    l->n = 0;
}

struct PgdataSource {
    const PgdataSourceOps *ops;
    void *impl;
    char description[PATH_MAX];
};

PgdataSource *pgdata_source_new(const PgdataSourceOps *ops, void *impl, const char *description)
{
    PgdataSource *s = xcalloc(1, sizeof(*s));
    s->ops = ops;
    s->impl = impl;
    (void)str_copy(s->description, sizeof(s->description), description ? description : "");
    return s;
}

void pgdata_source_free(PgdataSource *src)
{
    if (!src)
        return;
    if (src->ops->free_impl)
        src->ops->free_impl(src->impl);
    free(src);
}

const char *pgdata_source_description(const PgdataSource *src)
{
    return src->description;
}

static int dir_entry_cmp(const void *a, const void *b)
{
    return strcmp(((const PgdataDirEntry *)a)->name, ((const PgdataDirEntry *)b)->name);
}

/* pgdata_source_list: a backend's listing is as untrusted as the files: names are checked here
 * once for every backend, and sorting makes everything downstream independent of the order the
 * backend happened to return. */
bool pgdata_source_list(PgdataSource *src, const char *dir, size_t max_entries, PgdataListing *out,
                        Err *err)
{
    char q[STR_QUOTE_SIZE];
    out->entries = NULL;
    out->n = 0;
    if (!rel_path_valid(dir)) {
        err_set(err, ERR_INTERNAL, "invalid PGDATA path \"%s\"", str_quote(dir, q));
        return false;
    }
    PgdataListing l = {NULL, 0};
    if (!src->ops->list_dir(src->impl, dir, max_entries, &l, err))
        return false;
    if (l.n > max_entries) {
        err_set(err, ERR_BAD_REQUEST, "%s/: too many entries (%zu, at most %zu)", dir, l.n,
                max_entries);
        pgdata_listing_free(&l);
        return false;
    }
    for (size_t i = 0; i < l.n; i++) {
        PgdataDirEntry *e = &l.entries[i];
        if (memchr(e->name, '\0', sizeof(e->name)) == NULL) {
            e->name[sizeof(e->name) - 1] = '\0';
            err_set(err, ERR_BAD_REQUEST, "%s/: entry name \"%s...\" is too long", dir,
                    str_quote(e->name, q));
            pgdata_listing_free(&l);
            return false;
        }
        if (e->name[0] == '\0' || strchr(e->name, '/') != NULL || strcmp(e->name, ".") == 0 ||
            strcmp(e->name, "..") == 0) {
            err_set(err, ERR_BAD_REQUEST, "%s/: invalid entry name \"%s\"", dir,
                    str_quote(e->name, q));
            pgdata_listing_free(&l);
            return false;
        }
        if (e->is_dir)
            e->size = 0;
    }
    if (l.n > 1)
        qsort(l.entries, l.n, sizeof(l.entries[0]), dir_entry_cmp);
    for (size_t i = 1; i < l.n; i++) {
        if (strcmp(l.entries[i - 1].name, l.entries[i].name) == 0) {
            err_set(err, ERR_BAD_REQUEST, "%s/: entry \"%s\" listed twice", dir,
                    str_quote(l.entries[i].name, q));
            pgdata_listing_free(&l);
            return false;
        }
    }
    *out = l;
    return true;
}

bool pgdata_source_read(PgdataSource *src, const char *path, const PgdataRange *ranges, size_t n,
                        void *buf, Err *err)
{
    char q[STR_QUOTE_SIZE];
    if (!rel_path_valid(path) || path[0] == '\0') {
        err_set(err, ERR_INTERNAL, "invalid PGDATA path \"%s\"", str_quote(path, q));
        return false;
    }
    return src->ops->read_ranges(src->impl, path, ranges, n, buf, err);
}

/* ---- the local directory source ---- */

typedef struct LocalSource {
    char root[PATH_MAX]; /* realpath of the data directory */
    size_t root_len;
} LocalSource;

static bool local_path_within(const LocalSource *ls, const char *p)
{
    if (ls->root_len == 1) /* root "/" */
        return p[0] == '/';
    return strncmp(p, ls->root, ls->root_len) == 0 &&
           (p[ls->root_len] == '\0' || p[ls->root_len] == '/');
}

/* local_resolve: the real path of rel under the root, refusing one that a symlink leads outside
 * the data directory (an imported PGDATA must not make us read /etc/shadow). */
static bool local_resolve(const LocalSource *ls, const char *rel, char out[PATH_MAX], Err *err)
{
    char q[STR_QUOTE_SIZE];
    char full[PATH_MAX];
    if (!str_printf(full, sizeof(full), "%s%s%s", ls->root, rel[0] ? "/" : "", rel)) {
        err_set(err, ERR_BAD_REQUEST, "%s: path too long", str_quote(rel, q));
        return false;
    }
    if (!realpath(full, out)) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR)
            err_set(err, ERR_NOT_FOUND, "%s: not found", rel[0] ? str_quote(rel, q) : ls->root);
        else if (e == ELOOP)
            err_set(err, ERR_BAD_REQUEST, "%s: too many levels of symbolic links",
                    str_quote(rel, q));
        else
            err_set(err, ERR_INTERNAL, "%s: %s", str_quote(rel, q), strerror(e));
        return false;
    }
    if (!local_path_within(ls, out)) {
        err_set(err, ERR_BAD_REQUEST, "%s: symbolic link leads outside the data directory",
                str_quote(rel, q));
        return false;
    }
    return true;
}

/* local_stat_entry: type and size of one directory entry, following a symlink only when it stays
 * inside the data directory. */
static bool local_stat_entry(const LocalSource *ls, int dfd, const char *dir, const char *name,
                             PgdataDirEntry *e, Err *err)
{
    char q[STR_QUOTE_SIZE];
    char rel[PATH_MAX];
    struct stat st;
    if (!str_printf(rel, sizeof(rel), "%s%s%s", dir, dir[0] ? "/" : "", name)) {
        err_set(err, ERR_BAD_REQUEST, "%s/: entry path too long", dir);
        return false;
    }
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        err_set(err, ERR_INTERNAL, "%s: %s", str_quote(rel, q), strerror(errno));
        return false;
    }
    if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        if (!local_resolve(ls, rel, target, err)) {
            if (err && err->code == ERR_NOT_FOUND)
                err_set(err, ERR_BAD_REQUEST, "%s: dangling symbolic link", str_quote(rel, q));
            return false;
        }
        if (stat(target, &st) != 0) {
            err_set(err, ERR_INTERNAL, "%s: %s", str_quote(rel, q), strerror(errno));
            return false;
        }
    }
    if (S_ISDIR(st.st_mode)) {
        e->is_dir = true;
        e->size = 0;
    } else if (S_ISREG(st.st_mode)) {
        e->is_dir = false;
        e->size = (uint64_t)st.st_size;
    } else {
        err_set(err, ERR_BAD_REQUEST, "%s: not a regular file or directory", str_quote(rel, q));
        return false;
    }
    return true;
}

static bool local_list_dir(void *impl, const char *dir, size_t max_entries, PgdataListing *out,
                           Err *err)
{
    const LocalSource *ls = impl;
    char q[STR_QUOTE_SIZE];
    char real[PATH_MAX];
    out->entries = NULL;
    out->n = 0;
    if (!local_resolve(ls, dir, real, err))
        return false;
    DIR *d = opendir(real);
    if (!d) {
        int e = errno;
        if (e == ENOTDIR)
            err_set(err, ERR_BAD_REQUEST, "%s: not a directory", str_quote(dir, q));
        else if (e == ENOENT)
            err_set(err, ERR_NOT_FOUND, "%s: not found", str_quote(dir, q));
        else
            err_set(err, ERR_INTERNAL, "%s: %s", str_quote(dir, q), strerror(e));
        return false;
    }
    PgdataListing l = {NULL, 0};
    size_t cap = 0;
    bool ok = false;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno != 0) {
                err_set(err, ERR_INTERNAL, "%s: %s", str_quote(dir, q), strerror(errno));
                goto cleanup;
            }
            break;
        }
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (l.n >= max_entries) {
            err_set(err, ERR_BAD_REQUEST, "%s/: too many entries (more than %zu)", dir,
                    max_entries);
            goto cleanup;
        }
        if (strlen(de->d_name) >= PGDATA_NAME_MAX) {
            err_set(err, ERR_BAD_REQUEST, "%s/: entry name \"%s\" is too long", dir,
                    str_quote(de->d_name, q));
            goto cleanup;
        }
        if (l.n == cap) {
            cap = cap ? cap * 2 : 64;
            if (cap > max_entries)
                cap = max_entries;
            l.entries = xrealloc(l.entries, cap * sizeof(l.entries[0]));
        }
        PgdataDirEntry *e = &l.entries[l.n];
        memset(e, 0, sizeof(*e));
        (void)str_copy(e->name, sizeof(e->name), de->d_name);
        if (!local_stat_entry(ls, dirfd(d), dir, de->d_name, e, err))
            goto cleanup;
        l.n++;
    }
    *out = l;
    l.entries = NULL;
    ok = true;
cleanup:
    free(l.entries);
    closedir(d);
    return ok;
}

static bool local_read_ranges(void *impl, const char *path, const PgdataRange *ranges, size_t n,
                              void *buf, Err *err)
{
    const LocalSource *ls = impl;
    char q[STR_QUOTE_SIZE];
    char real[PATH_MAX];
    if (!local_resolve(ls, path, real, err))
        return false;
    int fd = open(real, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        err_set(err, e == ENOENT ? ERR_NOT_FOUND : ERR_INTERNAL, "%s: %s", str_quote(path, q),
                strerror(e));
        return false;
    }
    bool ok = false;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        err_set(err, ERR_INTERNAL, "%s: %s", str_quote(path, q), strerror(errno));
        goto cleanup;
    }
    if (!S_ISREG(st.st_mode)) {
        err_set(err, ERR_BAD_REQUEST, "%s: not a regular file", str_quote(path, q));
        goto cleanup;
    }
    uint8_t *p = buf;
    for (size_t i = 0; i < n; i++) {
        size_t done = 0;
        while (done < ranges[i].len) {
            uint64_t off = ranges[i].offset + done;
            if (off > (uint64_t)INT64_MAX) {
                err_set(err, ERR_BAD_REQUEST, "%s: offset out of range", str_quote(path, q));
                goto cleanup;
            }
            ssize_t r = pread(fd, p + done, ranges[i].len - done, (off_t)off);
            if (r < 0) {
                if (errno == EINTR)
                    continue;
                err_set(err, ERR_INTERNAL, "%s: %s", str_quote(path, q), strerror(errno));
                goto cleanup;
            }
            if (r == 0) {
                err_set(err, ERR_BAD_REQUEST,
                        "%s: file ends at byte %llu, expected at least %llu (did it change "
                        "during the import?)",
                        str_quote(path, q), (unsigned long long)off,
                        (unsigned long long)(ranges[i].offset + ranges[i].len));
                goto cleanup;
            }
            done += (size_t)r;
        }
        p += ranges[i].len;
    }
    ok = true;
cleanup:
    close(fd);
    return ok;
}

static void local_free(void *impl)
{
    free(impl);
}

static const PgdataSourceOps LOCAL_OPS = {
    .kind = "local",
    .list_dir = local_list_dir,
    .read_ranges = local_read_ranges,
    .free_impl = local_free,
};

bool pgdata_source_local_new(const char *path, PgdataSource **out, Err *err)
{
    char q[STR_QUOTE_SIZE];
    LocalSource *ls = xcalloc(1, sizeof(*ls));
    struct stat st;
    if (!realpath(path, ls->root)) {
        int e = errno;
        err_set(err, e == ENOENT ? ERR_NOT_FOUND : ERR_BAD_REQUEST, "PGDATA %s: %s",
                str_quote(path, q), strerror(e));
        free(ls);
        return false;
    }
    if (stat(ls->root, &st) != 0 || !S_ISDIR(st.st_mode)) {
        err_set(err, ERR_BAD_REQUEST, "PGDATA %s: not a directory", str_quote(path, q));
        free(ls);
        return false;
    }
    ls->root_len = strlen(ls->root);
    *out = pgdata_source_new(&LOCAL_OPS, ls, ls->root);
    return true;
}

/* ---- file names ---- */

/* parse_dec: exactly the decimal digits s[0..len) without a leading zero (unless "0"), in
 * [min, max]. */
static bool parse_dec(const char *s, size_t len, uint64_t min, uint64_t max, uint32_t *out)
{
    if (len == 0 || len > 10 || (len > 1 && s[0] == '0'))
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v < min || v > max)
        return false;
    *out = (uint32_t)v;
    return true;
}

bool pgdata_parse_rel_filename(const char *name, PgdataRelFile *out)
{
    static const struct {
        const char *suffix;
        uint8_t fork;
    } forks[] = {{"_fsm", FORK_FSM}, {"_vm", FORK_VM}, {"_init", FORK_INIT}};
    size_t n = strspn(name, "0123456789");
    PgdataRelFile f = {0, FORK_MAIN, 0};
    if (!parse_dec(name, n, 1, UINT32_MAX, &f.relnode))
        return false;
    const char *p = name + n;
    if (*p == '_') {
        bool found = false;
        for (size_t i = 0; i < sizeof(forks) / sizeof(forks[0]); i++) {
            size_t sl = strlen(forks[i].suffix);
            if (strncmp(p, forks[i].suffix, sl) == 0 && (p[sl] == '\0' || p[sl] == '.')) {
                f.fork = forks[i].fork;
                p += sl;
                found = true;
                break;
            }
        }
        if (!found)
            return false;
    }
    if (*p == '.') {
        p++;
        size_t m = strlen(p);
        if (strspn(p, "0123456789") != m || !parse_dec(p, m, 1, PGDATA_REL_MAX_SEGNO, &f.segno))
            return false;
        p += m;
    }
    if (*p != '\0')
        return false;
    *out = f;
    return true;
}

bool pgdata_parse_slru_segment(const char *name, uint32_t *segno)
{
    size_t len = strlen(name);
    if (len < 4 || len > 8 || strspn(name, "0123456789ABCDEF") != len)
        return false;
    uint32_t v = 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        v = (v << 4) | (uint32_t)(c <= '9' ? c - '0' : c - 'A' + 10);
    }
    char canon[16];
    (void)str_printf(canon, sizeof(canon), "%04X", v);
    if (strcmp(canon, name) != 0)
        return false;
    *segno = v;
    return true;
}

/* is_temp_rel_filename: "t<backend>_<relnode>..." (temporary relations: never WAL-logged, gone
 * after a restart, so not imported). */
static bool is_temp_rel_filename(const char *name)
{
    if (name[0] != 't')
        return false;
    size_t n = strspn(name + 1, "0123456789");
    PgdataRelFile f;
    return n > 0 && name[1 + n] == '_' && pgdata_parse_rel_filename(name + 2 + n, &f);
}

/* ---- directory values ---- */

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* set_encode: width 1 (u32 entries, the low half of each v) or 2 (pairs: high half then low half)
 * of the sorted, deduplicated values (sorted in place). */
static uint8_t *set_encode(uint64_t *v, size_t n, int width, size_t *len)
{
    if (n > 1)
        qsort(v, n, sizeof(v[0]), u64_cmp);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || v[m - 1] != v[i])
            v[m++] = v[i];
    if (m > UINT32_MAX)
        abort(); /* documented precondition: sets are bounded far below this */
    size_t entry = (size_t)width * 4;
    *len = 4 + m * entry;
    uint8_t *out = xmalloc(*len);
    le_put_u32(out, (uint32_t)m);
    for (size_t i = 0; i < m; i++) {
        uint8_t *p = out + 4 + i * entry;
        if (width == 2) {
            le_put_u32(p, (uint32_t)(v[i] >> 32));
            le_put_u32(p + 4, (uint32_t)v[i]);
        } else {
            le_put_u32(p, (uint32_t)v[i]);
        }
    }
    return out;
}

/* set_decode: the inverse of set_encode, strict about length and order. */
static bool set_decode(const void *value, size_t len, int width, const char *what, uint64_t **out,
                       size_t *n, Err *err)
{
    const uint8_t *b = value;
    size_t entry = (size_t)width * 4;
    *out = NULL;
    *n = 0;
    if (len < 4) {
        err_set(err, ERR_INTERNAL, "corrupt %s value: %zu bytes", what, len);
        return false;
    }
    uint32_t count = le_get_u32(b);
    if ((len - 4) / entry != count || (len - 4) % entry != 0) {
        err_set(err, ERR_INTERNAL, "corrupt %s value: %zu bytes for %u entries", what, len, count);
        return false;
    }
    if (count == 0)
        return true;
    uint64_t *v = xmalloc((size_t)count * sizeof(v[0]));
    for (size_t i = 0; i < count; i++) {
        const uint8_t *p = b + 4 + i * entry;
        v[i] = width == 2 ? ((uint64_t)le_get_u32(p) << 32) | le_get_u32(p + 4) : le_get_u32(p);
        if (i > 0 && v[i] <= v[i - 1]) {
            err_set(err, ERR_INTERNAL, "corrupt %s value: entries not strictly ascending", what);
            free(v);
            return false;
        }
    }
    *out = v;
    *n = count;
    return true;
}

uint8_t *pgdata_dbdir_encode(const PgdataDbDirEntry *entries, size_t n, size_t *len)
{
    uint64_t *v = xmalloc((n ? n : 1) * sizeof(v[0]));
    for (size_t i = 0; i < n; i++)
        v[i] = ((uint64_t)entries[i].spcnode << 32) | entries[i].dbnode;
    uint8_t *out = set_encode(v, n, 2, len);
    free(v);
    return out;
}

uint8_t *pgdata_reldir_encode(const PgdataRelDirEntry *entries, size_t n, size_t *len)
{
    uint64_t *v = xmalloc((n ? n : 1) * sizeof(v[0]));
    for (size_t i = 0; i < n; i++)
        v[i] = ((uint64_t)entries[i].relnode << 32) | entries[i].forknum;
    uint8_t *out = set_encode(v, n, 2, len);
    free(v);
    return out;
}

static uint8_t *u32set_encode(const uint32_t *values, size_t n, size_t *len)
{
    uint64_t *v = xmalloc((n ? n : 1) * sizeof(v[0]));
    for (size_t i = 0; i < n; i++)
        v[i] = values[i];
    uint8_t *out = set_encode(v, n, 1, len);
    free(v);
    return out;
}

uint8_t *pgdata_slrudir_encode(const uint32_t *segnos, size_t n, size_t *len)
{
    return u32set_encode(segnos, n, len);
}

uint8_t *pgdata_twophasedir_encode(const uint32_t *xids, size_t n, size_t *len)
{
    return u32set_encode(xids, n, len);
}

bool pgdata_dbdir_decode(const void *value, size_t len, PgdataDbDirEntry **out, size_t *n, Err *err)
{
    uint64_t *v;
    *out = NULL;
    if (!set_decode(value, len, 2, "database directory", &v, n, err))
        return false;
    if (*n == 0)
        return true;
    *out = xmalloc(*n * sizeof(**out));
    for (size_t i = 0; i < *n; i++) {
        (*out)[i].spcnode = (uint32_t)(v[i] >> 32);
        (*out)[i].dbnode = (uint32_t)v[i];
    }
    free(v);
    return true;
}

bool pgdata_reldir_decode(const void *value, size_t len, PgdataRelDirEntry **out, size_t *n,
                          Err *err)
{
    uint64_t *v;
    *out = NULL;
    if (!set_decode(value, len, 2, "relation directory", &v, n, err))
        return false;
    if (*n == 0)
        return true;
    for (size_t i = 0; i < *n; i++) {
        if ((uint32_t)v[i] > FORK_INIT) {
            err_set(err, ERR_INTERNAL, "corrupt relation directory value: fork number %u",
                    (uint32_t)v[i]);
            free(v);
            *n = 0;
            return false;
        }
    }
    *out = xmalloc(*n * sizeof(**out));
    for (size_t i = 0; i < *n; i++) {
        (*out)[i].relnode = (uint32_t)(v[i] >> 32);
        (*out)[i].forknum = (uint32_t)v[i];
    }
    free(v);
    return true;
}

static bool u32set_decode(const void *value, size_t len, const char *what, uint32_t **out,
                          size_t *n, Err *err)
{
    uint64_t *v;
    *out = NULL;
    if (!set_decode(value, len, 1, what, &v, n, err))
        return false;
    if (*n == 0)
        return true;
    *out = xmalloc(*n * sizeof(**out));
    for (size_t i = 0; i < *n; i++)
        (*out)[i] = (uint32_t)v[i];
    free(v);
    return true;
}

bool pgdata_slrudir_decode(const void *value, size_t len, uint32_t **out, size_t *n, Err *err)
{
    return u32set_decode(value, len, "SLRU directory", out, n, err);
}

bool pgdata_twophasedir_decode(const void *value, size_t len, uint32_t **out, size_t *n, Err *err)
{
    return u32set_decode(value, len, "two-phase directory", out, n, err);
}

/* ---- the plan ---- */

typedef enum TaskKind {
    TASK_DBDIR,
    TASK_RELMAP,
    TASK_RELDIR,
    TASK_REL_BLOCKS, /* key = first block; nblocks blocks of one segment file */
    TASK_REL_SIZE,   /* nblocks = the fork's size */
    TASK_SLRU_DIR,
    TASK_SLRU_BLOCKS, /* key = block 0 of the segment; nblocks blocks */
    TASK_SLRU_SIZE,
    TASK_TWOPHASE_DIR,
    TASK_CONTROL,
    TASK_CHECKPOINT,
    TASK_KIND_COUNT
} TaskKind;

typedef struct Task {
    Key key;
    uint32_t nblocks;      /* blocks in the range (BLOCKS) or the size value (SIZE) */
    uint32_t local_blocks; /* BLOCKS: how many of them this shard stores */
    uint8_t kind;          /* TaskKind */
} Task;

typedef struct Job {
    size_t first_task;
    size_t n_tasks;
    KeyRange range;
    uint64_t size_bytes;
} Job;

struct PgdataPlan {
    PgdataSource *src; /* borrowed */
    ShardIdentity shard;
    PgdataPlanParams params;
    PgControl control;
    uint8_t control_raw[PG_CONTROL_FILE_SIZE];
    Task *tasks;
    size_t n_tasks;
    size_t cap_tasks;
    Job *jobs;
    size_t n_jobs;
    uint64_t total_size;
    char hash[PGDATA_PLAN_HASH_STR_SIZE];
};

static bool plan_sharded(const PgdataPlan *plan)
{
    return plan->shard.count >= 2;
}

/* plan_add: append a task. Single-key tasks this shard does not store (SLRU keys on shards other
 * than 0) and block ranges without a local block are left out. */
static bool plan_add(PgdataPlan *plan, TaskKind kind, Key key, uint32_t nblocks,
                     uint32_t local_blocks, Err *err)
{
    bool blocks = kind == TASK_REL_BLOCKS || kind == TASK_SLRU_BLOCKS;
    if (blocks ? local_blocks == 0 : !shard_identity_stores_key(&plan->shard, &key))
        return true;
    if (plan->n_tasks >= plan->params.max_tasks) {
        err_set(err, ERR_BAD_REQUEST, "PGDATA has too many files or keys to import (more than %zu)",
                plan->params.max_tasks);
        return false;
    }
    if (plan->n_tasks == plan->cap_tasks) {
        size_t cap = plan->cap_tasks ? plan->cap_tasks * 2 : 1024;
        if (cap > plan->params.max_tasks)
            cap = plan->params.max_tasks;
        plan->tasks = xrealloc(plan->tasks, cap * sizeof(plan->tasks[0]));
        plan->cap_tasks = cap;
    }
    Task *t = &plan->tasks[plan->n_tasks++];
    t->key = key;
    t->nblocks = nblocks;
    t->local_blocks = local_blocks;
    t->kind = (uint8_t)kind;
    return true;
}

/* local_block_count: how many of blocks [start, start + n) of a fork this shard stores. Blocks of
 * one stripe share a shard, so one key per stripe decides. */
static uint32_t local_block_count(const PgdataPlan *plan, uint32_t spc, uint32_t db, uint32_t rel,
                                  uint8_t fork, uint32_t start, uint32_t n)
{
    if (!plan_sharded(plan))
        return n;
    uint64_t stripe = plan->shard.stripe_size;
    uint64_t end = (uint64_t)start + n;
    uint64_t local = 0;
    for (uint64_t b = start; b < end;) {
        uint64_t next = (b / stripe + 1) * stripe;
        if (next > end)
            next = end;
        Key k = key_rel_block(spc, db, rel, fork, (uint32_t)b);
        if (shard_identity_stores_key(&plan->shard, &k))
            local += next - b;
        b = next;
    }
    return (uint32_t)local;
}

typedef struct RelSegment {
    PgdataRelFile f;
    uint64_t size;
} RelSegment;

static int rel_segment_cmp(const void *a, const void *b)
{
    const PgdataRelFile *x = &((const RelSegment *)a)->f;
    const PgdataRelFile *y = &((const RelSegment *)b)->f;
    if (x->relnode != y->relnode)
        return x->relnode < y->relnode ? -1 : 1;
    if (x->fork != y->fork)
        return x->fork < y->fork ? -1 : 1;
    if (x->segno != y->segno)
        return x->segno < y->segno ? -1 : 1;
    return 0;
}

/* plan_add_fork: the segments segs[0..n) of one relation fork, sorted by segno. Like Postgres'
 * mdnblocks, the fork ends at the first segment that is not full; later segments must be empty
 * (mdtruncate leaves them at length zero). */
static bool plan_add_fork(PgdataPlan *plan, const char *dir, uint32_t spc, uint32_t db,
                          const RelSegment *segs, size_t n, Err *err)
{
    uint32_t rel = segs[0].f.relnode;
    uint8_t fork = segs[0].f.fork;
    const char *sfx = pg_fork_suffix(fork);
    uint64_t total = 0;
    bool ended = false;
    for (size_t i = 0; i < n; i++) {
        uint32_t segno = segs[i].f.segno;
        if (segno != i) {
            err_set(err, ERR_BAD_REQUEST, "%s/%u%s: segment %zu is missing (found segment %u)", dir,
                    rel, sfx, i, segno);
            return false;
        }
        uint32_t nblocks = (uint32_t)(segs[i].size / BLCKSZ);
        if (ended) {
            if (nblocks != 0) {
                err_set(err, ERR_BAD_REQUEST,
                        "%s/%u%s.%u: %u blocks after a segment that is not full (the "
                        "relation's segments are inconsistent)",
                        dir, rel, sfx, segno, nblocks);
                return false;
            }
            continue;
        }
        uint64_t start = (uint64_t)segno * RELSEG_BLOCKS;
        if (start + nblocks > UINT32_MAX) {
            err_set(err, ERR_BAD_REQUEST, "%s/%u%s: relation has too many blocks", dir, rel, sfx);
            return false;
        }
        /* a segment larger than a job is cut into pieces at multiples of the job size, so one
         * large relation spreads over several jobs that run in parallel */
        uint64_t piece = plan->params.job_soft_size_limit / BLCKSZ;
        if (piece == 0)
            piece = 1;
        for (uint64_t b = start; b < start + nblocks;) {
            uint64_t e = (b / piece + 1) * piece;
            if (e > start + nblocks)
                e = start + nblocks;
            uint32_t local =
                local_block_count(plan, spc, db, rel, fork, (uint32_t)b, (uint32_t)(e - b));
            if (!plan_add(plan, TASK_REL_BLOCKS, key_rel_block(spc, db, rel, fork, (uint32_t)b),
                          (uint32_t)(e - b), local, err))
                return false;
            b = e;
        }
        total = start + nblocks;
        if (nblocks < RELSEG_BLOCKS)
            ended = true;
    }
    return plan_add(plan, TASK_REL_SIZE, key_rel_size(spc, db, rel, fork), (uint32_t)total, 0, err);
}

/* plan_add_database: one database directory (base/<db> or global/): its relmap, its relation
 * directory and every relation fork. */
static bool plan_add_database(PgdataPlan *plan, const char *dir, uint32_t spc, uint32_t db,
                              const PgdataListing *l, Err *err)
{
    char q[STR_QUOTE_SIZE];
    bool ok = false;
    bool have_relmap = false;
    RelSegment *segs = xmalloc((l->n ? l->n : 1) * sizeof(segs[0]));
    size_t nsegs = 0;
    for (size_t i = 0; i < l->n; i++) {
        const PgdataDirEntry *e = &l->entries[i];
        const char *name = e->name;
        if (strcmp(name, "pg_filenode.map") == 0) {
            if (e->is_dir || e->size != PGDATA_RELMAP_SIZE) {
                err_set(err, ERR_BAD_REQUEST, "%s/pg_filenode.map: %llu bytes, expected %d", dir,
                        (unsigned long long)e->size, PGDATA_RELMAP_SIZE);
                goto cleanup;
            }
            have_relmap = true;
            continue;
        }
        if (strcmp(name, "PG_VERSION") == 0 || strcmp(name, "pg_internal.init") == 0 ||
            (spc == GLOBALTABLESPACE_OID && strcmp(name, "pg_control") == 0) ||
            is_temp_rel_filename(name))
            continue;
        PgdataRelFile f;
        if (!pgdata_parse_rel_filename(name, &f)) {
            err_set(err, ERR_BAD_REQUEST,
                    "%s/%s: unexpected file (not a relation file name "
                    "<relnode>[_fsm|_vm|_init][.<segno>])",
                    dir, str_quote(name, q));
            goto cleanup;
        }
        if (e->is_dir) {
            err_set(err, ERR_BAD_REQUEST, "%s/%s: a directory where a relation file was expected",
                    dir, name);
            goto cleanup;
        }
        if (e->size % BLCKSZ != 0) {
            err_set(err, ERR_BAD_REQUEST,
                    "%s/%s: size %llu is not a multiple of %d (truncated or corrupt relation "
                    "file)",
                    dir, name, (unsigned long long)e->size, BLCKSZ);
            goto cleanup;
        }
        if (e->size > PGDATA_REL_SEGMENT_MAX_BYTES) {
            err_set(err, ERR_BAD_REQUEST, "%s/%s: size %llu is over the 1 GiB of a segment", dir,
                    name, (unsigned long long)e->size);
            goto cleanup;
        }
        segs[nsegs].f = f;
        segs[nsegs].size = e->size;
        nsegs++;
    }
    if (!have_relmap) {
        err_set(err, ERR_BAD_REQUEST, "%s/pg_filenode.map: missing", dir);
        goto cleanup;
    }
    if (!plan_add(plan, TASK_RELMAP, key_relmap(spc, db), 0, 0, err) ||
        !plan_add(plan, TASK_RELDIR, key_reldir(spc, db), 0, 0, err))
        goto cleanup;
    if (nsegs > 1)
        qsort(segs, nsegs, sizeof(segs[0]), rel_segment_cmp);
    for (size_t i = 0; i < nsegs;) {
        size_t j = i + 1;
        while (j < nsegs && segs[j].f.relnode == segs[i].f.relnode &&
               segs[j].f.fork == segs[i].f.fork)
            j++;
        if (!plan_add_fork(plan, dir, spc, db, segs + i, j - i, err))
            goto cleanup;
        i = j;
    }
    ok = true;
cleanup:
    free(segs);
    return ok;
}

/* plan_list: list a directory; absent is an error naming it when required, else empty. */
static bool plan_list(PgdataPlan *plan, const char *dir, bool required, PgdataListing *l, Err *err)
{
    if (pgdata_source_list(plan->src, dir, plan->params.max_dir_entries, l, err))
        return true;
    if (err && err->code == ERR_NOT_FOUND) {
        if (!required) {
            err_clear(err);
            return true;
        }
        err_set(err, ERR_BAD_REQUEST, "%s/: missing (is %s a PostgreSQL data directory?)", dir,
                plan->src->description);
    }
    return false;
}

/* plan_read_control: global/pg_control, which must be exactly 8192 bytes. */
static bool plan_read_control(PgdataPlan *plan, const PgdataListing *global, Err *err)
{
    const PgdataDirEntry *e = NULL;
    for (size_t i = 0; i < global->n; i++)
        if (strcmp(global->entries[i].name, "pg_control") == 0)
            e = &global->entries[i];
    if (!e) {
        err_set(err, ERR_BAD_REQUEST,
                "global/pg_control: missing (is %s a PostgreSQL data directory?)",
                plan->src->description);
        return false;
    }
    if (e->is_dir || e->size != PG_CONTROL_FILE_SIZE) {
        err_set(err, ERR_BAD_REQUEST, "global/pg_control: %llu bytes, expected %d",
                (unsigned long long)e->size, PG_CONTROL_FILE_SIZE);
        return false;
    }
    PgdataRange r = {0, PG_CONTROL_FILE_SIZE};
    if (!pgdata_source_read(plan->src, "global/pg_control", &r, 1, plan->control_raw, err))
        return false;
    if (!pg_control_parse(plan->control_raw, sizeof(plan->control_raw), &plan->control, err)) {
        err_prefix(err, "global/");
        return false;
    }
    return true;
}

static bool plan_add_slru(PgdataPlan *plan, SlruKind kind, Err *err)
{
    char q[STR_QUOTE_SIZE];
    const char *dir = pg_slru_dir(kind);
    PgdataListing l;
    if (!plan_list(plan, dir, false, &l, err))
        return false;
    bool ok = false;
    for (size_t i = 0; i < l.n; i++) {
        const PgdataDirEntry *e = &l.entries[i];
        uint32_t segno;
        if (!pgdata_parse_slru_segment(e->name, &segno) || e->is_dir) {
            err_set(err, ERR_BAD_REQUEST,
                    "%s/%s: unexpected entry (not an SLRU segment file name like 0000)", dir,
                    str_quote(e->name, q));
            goto cleanup;
        }
        if (e->size % BLCKSZ != 0 || e->size > PGDATA_SLRU_SEGMENT_MAX_BYTES) {
            err_set(err, ERR_BAD_REQUEST,
                    "%s/%s: size %llu is not a whole number of pages up to %u (corrupt SLRU "
                    "segment)",
                    dir, e->name, (unsigned long long)e->size, PGDATA_SLRU_SEGMENT_MAX_BYTES);
            goto cleanup;
        }
        uint32_t nblocks = (uint32_t)(e->size / BLCKSZ);
        Key first = key_slru_block(kind, segno, 0);
        uint32_t local = shard_identity_stores_key(&plan->shard, &first) ? nblocks : 0;
        if (!plan_add(plan, TASK_SLRU_BLOCKS, first, nblocks, local, err) ||
            !plan_add(plan, TASK_SLRU_SIZE, key_slru_segment_size(kind, segno), nblocks, 0, err))
            goto cleanup;
    }
    ok = plan_add(plan, TASK_SLRU_DIR, key_slru_dir(kind), 0, 0, err);
cleanup:
    pgdata_listing_free(&l);
    return ok;
}

/* plan_refuse_nonempty: directories whose contents we cannot represent (user tablespaces,
 * prepared transactions) must be empty rather than silently dropped. */
static bool plan_refuse_nonempty(PgdataPlan *plan, const char *dir, const char *why, Err *err)
{
    char q[STR_QUOTE_SIZE];
    PgdataListing l;
    if (!plan_list(plan, dir, false, &l, err))
        return false;
    bool ok = l.n == 0;
    if (!ok)
        err_set(err, ERR_BAD_REQUEST, "%s/%s: %s", dir, str_quote(l.entries[0].name, q), why);
    pgdata_listing_free(&l);
    return ok;
}

static bool plan_add_databases(PgdataPlan *plan, Err *err)
{
    char q[STR_QUOTE_SIZE];
    PgdataListing base;
    if (!plan_list(plan, "base", true, &base, err))
        return false;
    bool ok = false;
    for (size_t i = 0; i < base.n; i++) {
        const PgdataDirEntry *e = &base.entries[i];
        uint32_t db;
        if (strcmp(e->name, "pgsql_tmp") == 0)
            continue;
        if (!parse_dec(e->name, strlen(e->name), 1, UINT32_MAX, &db) || !e->is_dir) {
            err_set(err, ERR_BAD_REQUEST,
                    "base/%s: unexpected entry (not a database directory named by its OID)",
                    str_quote(e->name, q));
            goto cleanup;
        }
        char dir[PGDATA_PATH_MAX];
        (void)str_printf(dir, sizeof(dir), "base/%u", db);
        PgdataListing l;
        if (!plan_list(plan, dir, true, &l, err))
            goto cleanup;
        bool added = plan_add_database(plan, dir, DEFAULTTABLESPACE_OID, db, &l, err);
        pgdata_listing_free(&l);
        if (!added)
            goto cleanup;
    }
    ok = true;
cleanup:
    pgdata_listing_free(&base);
    return ok;
}

static int task_cmp(const void *a, const void *b)
{
    return key_cmp(&((const Task *)a)->key, &((const Task *)b)->key);
}

/* task_last_key: the largest key a task emits. */
static Key task_last_key(const Task *t)
{
    Key k = t->key;
    if (t->kind == TASK_REL_BLOCKS || t->kind == TASK_SLRU_BLOCKS)
        k.f6 += t->nblocks - 1;
    return k;
}

static uint64_t task_size(const Task *t)
{
    if (t->kind == TASK_REL_BLOCKS || t->kind == TASK_SLRU_BLOCKS)
        return (uint64_t)t->local_blocks * BLCKSZ;
    return 0;
}

/* plan_make_jobs: greedy grouping of the sorted tasks. Job ranges start at the first key of their
 * first task (KEY_MIN for the first job) and end where the next job starts (KEY_MAX for the
 * last), so every key lies in exactly one job's range. */
static void plan_make_jobs(PgdataPlan *plan)
{
    plan->jobs = xcalloc(plan->n_tasks ? plan->n_tasks : 1, sizeof(plan->jobs[0]));
    plan->n_jobs = 0;
    Job *cur = NULL;
    for (size_t i = 0; i < plan->n_tasks; i++) {
        uint64_t sz = task_size(&plan->tasks[i]);
        if (!cur || (cur->n_tasks > 0 && cur->size_bytes + sz > plan->params.job_soft_size_limit)) {
            cur = &plan->jobs[plan->n_jobs++];
            cur->first_task = i;
            cur->range.start = plan->n_jobs == 1 ? KEY_MIN : plan->tasks[i].key;
        }
        cur->n_tasks++;
        cur->size_bytes += sz;
        plan->total_size += sz;
    }
    for (size_t j = 0; j < plan->n_jobs; j++)
        plan->jobs[j].range.end = j + 1 < plan->n_jobs ? plan->jobs[j + 1].range.start : KEY_MAX;
    plan->jobs = xrealloc(plan->jobs, (plan->n_jobs ? plan->n_jobs : 1) * sizeof(plan->jobs[0]));
}

static void hash_u32(EVP_MD_CTX *md, uint32_t v)
{
    uint8_t b[4];
    be_put_u32(b, v);
    EVP_DigestUpdate(md, b, sizeof(b));
}

static void hash_u64(EVP_MD_CTX *md, uint64_t v)
{
    uint8_t b[8];
    be_put_u64(b, v);
    EVP_DigestUpdate(md, b, sizeof(b));
}

static void hash_key(EVP_MD_CTX *md, const Key *k)
{
    uint8_t b[KEY_SIZE];
    key_to_bytes(k, b);
    EVP_DigestUpdate(md, b, sizeof(b));
}

/* plan_compute_hash: SHA-256 over a versioned, big-endian serialisation of the shard identity,
 * the source's identity (system identifier, checkpoint, version) and every job with its tasks. */
static bool plan_compute_hash(PgdataPlan *plan, Err *err)
{
    static const char tag[] = "pgdata-plan-v1";
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        err_set(err, ERR_INTERNAL, "SHA-256 unavailable");
        EVP_MD_CTX_free(md);
        return false;
    }
    EVP_DigestUpdate(md, tag, sizeof(tag));
    hash_u32(md, plan->shard.number);
    hash_u32(md, plan->shard.count);
    hash_u32(md, plan->shard.stripe_size);
    hash_u64(md, plan->control.system_identifier);
    hash_u64(md, plan->control.checkpoint_lsn);
    hash_u32(md, plan->control.pg_version);
    hash_u64(md, plan->n_jobs);
    for (size_t j = 0; j < plan->n_jobs; j++) {
        const Job *job = &plan->jobs[j];
        hash_key(md, &job->range.start);
        hash_key(md, &job->range.end);
        hash_u64(md, job->size_bytes);
        hash_u64(md, job->n_tasks);
        for (size_t i = 0; i < job->n_tasks; i++) {
            const Task *t = &plan->tasks[job->first_task + i];
            hash_u32(md, t->kind);
            hash_key(md, &t->key);
            hash_u32(md, t->nblocks);
            hash_u32(md, t->local_blocks);
        }
    }
    bool ok = EVP_DigestFinal_ex(md, digest, &dlen) == 1 && dlen == 32;
    EVP_MD_CTX_free(md);
    if (!ok) {
        err_set(err, ERR_INTERNAL, "SHA-256 failed");
        return false;
    }
    for (unsigned i = 0; i < dlen; i++)
        (void)str_printf(plan->hash + 2 * i, 3, "%02x", digest[i]);
    return true;
}

/* pgdata_plan_new: the listings are read in a fixed order and every decision depends only on them,
 * pg_control and the shard identity; the task array is then sorted, so the plan (and its hash) is
 * the same however a backend orders its listings. */
bool pgdata_plan_new(PgdataSource *src, const ShardIdentity *shard, const PgdataPlanParams *params,
                     PgdataPlan **out, Err *err)
{
    if (!shard_params_validate(shard->number, shard->count, shard->stripe_size, err))
        return false;
    PgdataPlan *plan = xcalloc(1, sizeof(*plan));
    plan->src = src;
    plan->shard = *shard;
    if (params)
        plan->params = *params;
    if (plan->params.job_soft_size_limit == 0)
        plan->params.job_soft_size_limit = PGDATA_JOB_SOFT_SIZE_LIMIT_DEFAULT;
    if (plan->params.max_dir_entries == 0)
        plan->params.max_dir_entries = PGDATA_MAX_DIR_ENTRIES_DEFAULT;
    if (plan->params.max_tasks == 0)
        plan->params.max_tasks = PGDATA_MAX_TASKS_DEFAULT;

    PgdataListing global = {NULL, 0};
    if (!plan_list(plan, "global", true, &global, err))
        goto fail;
    bool added = plan_read_control(plan, &global, err) &&
                 plan_add_database(plan, "global", GLOBALTABLESPACE_OID, 0, &global, err);
    pgdata_listing_free(&global);
    if (!added || !plan_add_databases(plan, err))
        goto fail;
    if (!plan_refuse_nonempty(plan, "pg_tblspc",
                              "tablespaces other than pg_default and pg_global are not supported",
                              err) ||
        !plan_refuse_nonempty(plan, "pg_twophase",
                              "prepared transactions are not supported (commit or roll them back "
                              "before shutting down)",
                              err))
        goto fail;
    for (int k = 0; k < SLRU_KIND_COUNT; k++)
        if (!plan_add_slru(plan, (SlruKind)k, err))
            goto fail;
    if (!plan_add(plan, TASK_DBDIR, key_dbdir(), 0, 0, err) ||
        !plan_add(plan, TASK_TWOPHASE_DIR, key_twophase_dir(), 0, 0, err) ||
        !plan_add(plan, TASK_CONTROL, key_controlfile(), 0, 0, err) ||
        !plan_add(plan, TASK_CHECKPOINT, key_checkpoint(), 0, 0, err))
        goto fail;

    if (plan->n_tasks > 1)
        qsort(plan->tasks, plan->n_tasks, sizeof(plan->tasks[0]), task_cmp);
    for (size_t i = 1; i < plan->n_tasks; i++) {
        Key prev = task_last_key(&plan->tasks[i - 1]);
        if (key_cmp(&prev, &plan->tasks[i].key) >= 0) {
            char ks[KEY_STR_SIZE];
            key_format(&plan->tasks[i].key, ks);
            err_set(err, ERR_BAD_REQUEST, "PGDATA yields key %s twice", ks);
            goto fail;
        }
    }
    plan_make_jobs(plan);
    if (!plan_compute_hash(plan, err))
        goto fail;
    *out = plan;
    return true;
fail:
    pgdata_plan_free(plan);
    return false;
}

void pgdata_plan_free(PgdataPlan *plan)
{
    if (!plan)
        return;
    free(plan->tasks);
    free(plan->jobs);
    free(plan);
}

size_t pgdata_plan_job_count(const PgdataPlan *plan)
{
    return plan->n_jobs;
}

PgdataJobInfo pgdata_plan_job(const PgdataPlan *plan, size_t i)
{
    PgdataJobInfo info = {{KEY_MIN, KEY_MIN}, 0, 0};
    if (i >= plan->n_jobs)
        return info;
    info.range = plan->jobs[i].range;
    info.size_bytes = plan->jobs[i].size_bytes;
    info.n_tasks = plan->jobs[i].n_tasks;
    return info;
}

Lsn pgdata_plan_base_lsn(const PgdataPlan *plan)
{
    return pg_control_base_lsn(&plan->control);
}

uint32_t pgdata_plan_pg_version(const PgdataPlan *plan)
{
    return plan->control.pg_version;
}

const PgControl *pgdata_plan_control(const PgdataPlan *plan)
{
    return &plan->control;
}

const char *pgdata_plan_hash(const PgdataPlan *plan)
{
    return plan->hash;
}

uint64_t pgdata_plan_total_size(const PgdataPlan *plan)
{
    return plan->total_size;
}

ShardIdentity pgdata_plan_shard(const PgdataPlan *plan)
{
    return plan->shard;
}

/* ---- execution ---- */

typedef struct Exec {
    const PgdataPlan *plan;
    const Job *job;
    PgdataSink sink;
    void *ctx;
    Key last;
    bool have_last;
    uint8_t *buf; /* PGDATA_READ_MAX_BYTES, allocated on first use */
    PgdataRange ranges[READ_MAX_RANGES];
    size_t n_ranges;
    size_t batch_bytes;
    uint64_t emitted_blocks; /* of the current block task */
} Exec;

/* exec_emit: hand one key to the sink, enforcing the contract (ascending, inside the range) so a
 * planning bug can never produce a layer with keys out of order or outside its range. */
static bool exec_emit(Exec *x, const Key *k, const void *value, size_t len, Err *err)
{
    if ((x->have_last && key_cmp(&x->last, k) >= 0) || !key_range_contains(&x->job->range, k)) {
        char ks[KEY_STR_SIZE];
        key_format(k, ks);
        err_set(err, ERR_INTERNAL, "pgdata: key %s out of order or outside its job's range", ks);
        return false;
    }
    x->last = *k;
    x->have_last = true;
    if (!x->sink(x->ctx, k, value, len, err)) {
        if (err && !err_is_set(err))
            err_set(err, ERR_INTERNAL, "pgdata: the sink refused a key");
        return false;
    }
    return true;
}

static bool exec_u32(Exec *x, const Key *k, uint32_t v, Err *err)
{
    uint8_t b[4];
    le_put_u32(b, v);
    return exec_emit(x, k, b, sizeof(b), err);
}

/* tasks_lower_bound: the first task whose key is >= k. */
static size_t tasks_lower_bound(const PgdataPlan *plan, const Key *k)
{
    size_t lo = 0;
    size_t hi = plan->n_tasks;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (key_cmp(&plan->tasks[mid].key, k) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool exec_dbdir(Exec *x, const Task *t, Err *err)
{
    const PgdataPlan *plan = x->plan;
    size_t n = 0;
    for (size_t i = 0; i < plan->n_tasks; i++)
        n += plan->tasks[i].kind == TASK_RELMAP;
    PgdataDbDirEntry *e = xmalloc((n ? n : 1) * sizeof(e[0]));
    n = 0;
    for (size_t i = 0; i < plan->n_tasks; i++) {
        if (plan->tasks[i].kind == TASK_RELMAP) {
            e[n].spcnode = plan->tasks[i].key.f2;
            e[n].dbnode = plan->tasks[i].key.f3;
            n++;
        }
    }
    size_t len;
    uint8_t *v = pgdata_dbdir_encode(e, n, &len);
    bool ok = exec_emit(x, &t->key, v, len, err);
    free(v);
    free(e);
    return ok;
}

static bool exec_reldir(Exec *x, const Task *t, Err *err)
{
    const PgdataPlan *plan = x->plan;
    uint32_t spc = t->key.f2;
    uint32_t db = t->key.f3;
    Key from = {KEY_F1_REL, spc, db, 1, 0, 0};
    size_t i = tasks_lower_bound(plan, &from);
    size_t end = i;
    while (end < plan->n_tasks && plan->tasks[end].key.f1 == KEY_F1_REL &&
           plan->tasks[end].key.f2 == spc && plan->tasks[end].key.f3 == db)
        end++;
    PgdataRelDirEntry *e = xmalloc((end - i ? end - i : 1) * sizeof(e[0]));
    size_t n = 0;
    for (; i < end; i++) {
        if (plan->tasks[i].kind == TASK_REL_SIZE) {
            e[n].relnode = plan->tasks[i].key.f4;
            e[n].forknum = plan->tasks[i].key.f5;
            n++;
        }
    }
    size_t len;
    uint8_t *v = pgdata_reldir_encode(e, n, &len);
    bool ok = exec_emit(x, &t->key, v, len, err);
    free(v);
    free(e);
    return ok;
}

static bool exec_slrudir(Exec *x, const Task *t, Err *err)
{
    const PgdataPlan *plan = x->plan;
    uint32_t kind = t->key.f2;
    Key from = {KEY_F1_SLRU, kind, 1, 0, 0, 0};
    size_t i = tasks_lower_bound(plan, &from);
    size_t end = i;
    while (end < plan->n_tasks && plan->tasks[end].key.f1 == KEY_F1_SLRU &&
           plan->tasks[end].key.f2 == kind && plan->tasks[end].key.f3 == 1)
        end++;
    uint32_t *segnos = xmalloc((end - i ? end - i : 1) * sizeof(segnos[0]));
    size_t n = 0;
    for (; i < end; i++)
        if (plan->tasks[i].kind == TASK_SLRU_SIZE)
            segnos[n++] = plan->tasks[i].key.f4;
    size_t len;
    uint8_t *v = pgdata_slrudir_encode(segnos, n, &len);
    bool ok = exec_emit(x, &t->key, v, len, err);
    free(v);
    free(segnos);
    return ok;
}

static bool exec_relmap(Exec *x, const Task *t, Err *err)
{
    char dir[PG_PATH_MAX];
    char path[PGDATA_PATH_MAX];
    uint8_t buf[PGDATA_RELMAP_SIZE];
    pg_rel_dir_path(t->key.f2, t->key.f3, dir);
    (void)str_printf(path, sizeof(path), "%s/pg_filenode.map", dir);
    PgdataRange r = {0, PGDATA_RELMAP_SIZE};
    if (!pgdata_source_read(x->plan->src, path, &r, 1, buf, err))
        return false;
    return exec_emit(x, &t->key, buf, sizeof(buf), err);
}

/* exec_flush: read the batched ranges of path and emit their blocks (block numbers from the
 * offsets: first_blk is the block at offset 0 of the file). */
static bool exec_flush(Exec *x, const char *path, const Key *task_key, uint32_t first_blk,
                       bool slru, Err *err)
{
    if (x->n_ranges == 0)
        return true;
    if (!pgdata_source_read(x->plan->src, path, x->ranges, x->n_ranges, x->buf, err))
        return false;
    const uint8_t *p = x->buf;
    for (size_t r = 0; r < x->n_ranges; r++) {
        uint32_t blk = first_blk + (uint32_t)(x->ranges[r].offset / BLCKSZ);
        size_t nb = x->ranges[r].len / BLCKSZ;
        for (size_t j = 0; j < nb; j++, blk++, p += BLCKSZ) {
            Key k =
                slru ? key_slru_block((SlruKind)task_key->f2, task_key->f4, blk)
                     : key_rel_block(task_key->f2, task_key->f3, task_key->f4, task_key->f5, blk);
            if (!exec_emit(x, &k, p, BLCKSZ, err))
                return false;
            x->emitted_blocks++;
        }
    }
    x->n_ranges = 0;
    x->batch_bytes = 0;
    return true;
}

/* exec_add_run: add blocks [b, e) (file-relative block numbers) to the batch, flushing whenever
 * it reaches PGDATA_READ_MAX_BYTES; adjacent runs merge into one range. */
static bool exec_add_run(Exec *x, const char *path, const Key *task_key, uint32_t first_blk,
                         bool slru, uint64_t b, uint64_t e, Err *err)
{
    while (b < e) {
        uint64_t room = (PGDATA_READ_MAX_BYTES - x->batch_bytes) / BLCKSZ;
        uint64_t take = e - b < room ? e - b : room;
        uint64_t off = b * BLCKSZ;
        PgdataRange *last = x->n_ranges ? &x->ranges[x->n_ranges - 1] : NULL;
        if (last && last->offset + last->len == off) {
            last->len += (size_t)(take * BLCKSZ);
        } else {
            x->ranges[x->n_ranges].offset = off;
            x->ranges[x->n_ranges].len = (size_t)(take * BLCKSZ);
            x->n_ranges++;
        }
        x->batch_bytes += (size_t)(take * BLCKSZ);
        b += take;
        if (x->batch_bytes == PGDATA_READ_MAX_BYTES || x->n_ranges == READ_MAX_RANGES) {
            if (!exec_flush(x, path, task_key, first_blk, slru, err))
                return false;
        }
    }
    return true;
}

static bool exec_rel_blocks(Exec *x, const Task *t, Err *err)
{
    const PgdataPlan *plan = x->plan;
    const Key *k = &t->key;
    uint32_t segno = k->f6 / RELSEG_BLOCKS;
    uint32_t seg_start = segno * RELSEG_BLOCKS;
    char path[PG_PATH_MAX];
    pg_rel_file_path(k->f2, k->f3, k->f4, k->f5, segno, path);
    x->emitted_blocks = 0;
    uint64_t start = k->f6;
    uint64_t end = start + t->nblocks;
    uint64_t stripe = plan_sharded(plan) ? plan->shard.stripe_size : end;
    for (uint64_t b = start; b < end;) {
        uint64_t next = (b / stripe + 1) * stripe;
        if (next > end)
            next = end;
        Key bk = key_rel_block(k->f2, k->f3, k->f4, k->f5, (uint32_t)b);
        if (shard_identity_stores_key(&plan->shard, &bk) &&
            !exec_add_run(x, path, k, seg_start, false, b - seg_start, next - seg_start, err))
            return false;
        b = next;
    }
    if (!exec_flush(x, path, k, seg_start, false, err))
        return false;
    if (x->emitted_blocks != t->local_blocks) {
        err_set(err, ERR_INTERNAL, "%s: emitted %llu blocks, planned %u", path,
                (unsigned long long)x->emitted_blocks, t->local_blocks);
        return false;
    }
    return true;
}

static bool exec_slru_blocks(Exec *x, const Task *t, Err *err)
{
    char path[PGDATA_PATH_MAX];
    const Key *k = &t->key;
    const char *slru_dir = pg_slru_dir((SlruKind)k->f2);
    (void)str_printf(path, sizeof(path), "%s/%04X", slru_dir ? slru_dir : "pg_xact", k->f4);
    x->emitted_blocks = 0;
    if (!exec_add_run(x, path, k, 0, true, 0, t->nblocks, err) ||
        !exec_flush(x, path, k, 0, true, err))
        return false;
    return true;
}

bool pgdata_job_execute(const PgdataPlan *plan, size_t job_index, PgdataSink sink, void *ctx,
                        Err *err)
{
    if (job_index >= plan->n_jobs) {
        err_set(err, ERR_INTERNAL, "pgdata: job %zu does not exist (the plan has %zu)", job_index,
                plan->n_jobs);
        return false;
    }
    Exec *x = xcalloc(1, sizeof(*x));
    x->plan = plan;
    x->job = &plan->jobs[job_index];
    x->sink = sink;
    x->ctx = ctx;
    bool ok = true;
    for (size_t i = 0; ok && i < x->job->n_tasks; i++) {
        const Task *t = &plan->tasks[x->job->first_task + i];
        switch ((TaskKind)t->kind) {
        case TASK_DBDIR:
            ok = exec_dbdir(x, t, err);
            break;
        case TASK_RELMAP:
            ok = exec_relmap(x, t, err);
            break;
        case TASK_RELDIR:
            ok = exec_reldir(x, t, err);
            break;
        case TASK_REL_BLOCKS:
        case TASK_SLRU_BLOCKS:
            if (!x->buf)
                x->buf = xmalloc(PGDATA_READ_MAX_BYTES);
            ok = t->kind == TASK_REL_BLOCKS ? exec_rel_blocks(x, t, err)
                                            : exec_slru_blocks(x, t, err);
            break;
        case TASK_REL_SIZE:
        case TASK_SLRU_SIZE:
            ok = exec_u32(x, &t->key, t->nblocks, err);
            break;
        case TASK_SLRU_DIR:
            ok = exec_slrudir(x, t, err);
            break;
        case TASK_TWOPHASE_DIR: {
            size_t len;
            uint8_t *v = pgdata_twophasedir_encode(NULL, 0, &len);
            ok = exec_emit(x, &t->key, v, len, err);
            free(v);
            break;
        }
        case TASK_CONTROL:
            ok = exec_emit(x, &t->key, plan->control_raw, sizeof(plan->control_raw), err);
            break;
        case TASK_CHECKPOINT:
            ok = exec_emit(x, &t->key, plan->control.checkpoint_raw,
                           sizeof(plan->control.checkpoint_raw), err);
            break;
        case TASK_KIND_COUNT:
            err_set(err, ERR_INTERNAL, "pgdata: bad task kind");
            ok = false;
            break;
        }
    }
    free(x->buf);
    free(x);
    return ok;
}
