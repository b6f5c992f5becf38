/*
 * fuzz_tar: the ustar reader and the zstd decoder (shared/tar.c), which read initdb archives
 * from remote storage. The first input byte picks the mode: bit 0 = the rest is zstd-compressed
 * (read through tar_zstd_decoder_read), bit 1 = extract into a scratch directory (checked to hold
 * nothing outside it) instead of iterating and reading every entry's data.
 *
 * The source hands out at most a few bytes per call, varied by the input, so that short reads are
 * exercised too. Limits are small so a crafted header cannot make the harness slow.
 */
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/fuzz/fuzz_util.h"

#include "shared/fsutil.h"
#include "shared/tar.h"

typedef struct MemSource {
    const uint8_t *data;
    size_t size;
    size_t pos;
    size_t chunk; /* at most this many bytes per read (>= 1) */
} MemSource;

static bool mem_source(void *ctx, void *buf, size_t cap, size_t *got, Err *err)
{
    MemSource *s = ctx;
    size_t n = s->size - s->pos;
    if (n > cap)
        n = cap;
    if (n > s->chunk)
        n = s->chunk;
    memcpy(buf, s->data + s->pos, n);
    s->pos += n;
    *got = n;
    return true;
}

static bool read_entry(void *ctx, TarReader *r, const TarEntry *e, Err *err)
{
    /* names are normalised: relative, no empty, "." or ".." components, no trailing '/' */
    FUZZ_CHECK(e->name[0] != '\0');
    for (const char *c = e->name;;) {
        const char *slash = strchr(c, '/');
        size_t n = slash ? (size_t)(slash - c) : strlen(c);
        FUZZ_CHECK(n > 0 && !(n == 1 && c[0] == '.') && !(n == 2 && c[0] == '.' && c[1] == '.'));
        if (!slash)
            break;
        c = slash + 1;
    }
    FUZZ_CHECK(e->type == TAR_ENTRY_FILE || e->type == TAR_ENTRY_DIR);
    uint64_t total = 0;
    uint8_t buf[700];
    for (;;) {
        size_t got = 0;
        if (!tar_reader_read_data(r, buf, sizeof buf, &got, err))
            return false;
        if (got == 0)
            break;
        total += got;
    }
    FUZZ_CHECK(total == e->size);
    return true;
}

static char scratch[PATH_MAX];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(scratch, sizeof scratch, "%s/fuzz_tar.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(scratch))
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    MemSource src = {data + 1, size - 1, 0, 1 + (size_t)(mode >> 2) * 97};
    TarZstdDecoder *dec = NULL;
    TarReadFn read = mem_source;
    void *read_ctx = &src;
    if (mode & 1) {
        dec = tar_zstd_decoder_new(mem_source, &src);
        read = tar_zstd_decoder_read;
        read_ctx = dec;
    }
    TarLimits limits = {.max_total_bytes = 1 << 20, .max_entries = 64};
    TarReader *r = tar_reader_new(read, read_ctx, &limits);
    Err err = {0};
    bool ok;
    if (mode & 2) {
        char dest[PATH_MAX + 8];
        snprintf(dest, sizeof dest, "%s/x", scratch);
        ok = tar_reader_extract_to_dir(r, dest, &err);
        Err rm = {0};
        FUZZ_CHECK(fs_remove_tree(dest, &rm));
        /* nothing may have landed next to dest */
        FUZZ_CHECK(rmdir(scratch) == 0 && mkdir(scratch, 0700) == 0);
    } else {
        ok = tar_reader_foreach(r, read_entry, NULL, &err);
    }
    if (!ok)
        FUZZ_CHECK(err_is_set(&err));
    tar_reader_free(r);
    tar_zstd_decoder_free(dec);
    return 0;
}
