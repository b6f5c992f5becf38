/*
 * layer.c: layer names, and the layer file format of docs/layer-format.md: a streaming writer
 * and a reader over a ranged-read callback.
 *
 * File: [header 16][value blobs ...][index blocks ...][top index][footer 128]. All integers are
 * little-endian and encoded byte by byte (no struct images on disk). The writer streams blobs to
 * the file as keys arrive and keeps only the encoded index entries in memory; finish writes the
 * index blocks, the top index and the footer. The reader reads the footer and the top index at
 * open and keeps the top index (first key, offset and length of each index block); a lookup is a
 * binary search there, one index-block read, a binary search in the block, one blob read.
 *
 * Entries are addressed by an "entry key": the 18-byte key for image layers; delta layers will
 * use key + 8-byte LSN (26 bytes), which is why sizes go through ekey_len rather than KEY_SIZE.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "shared/bytes.h"
#include "shared/crc32c.h"
#include "shared/err.h"
#include "shared/fsutil.h"
#include "shared/id.h"
#include "shared/key.h"
#include "shared/remote_storage.h"
#include "shared/str.h"

#include "pageserver/layer.h"
#include "pageserver/page_cache.h"

/* ---- format constants (docs/layer-format.md) ---- */

static const uint8_t LAYER_MAGIC[8] = {'P', 'S', 'L', 'A', 'Y', 'E', 'R', 0};

#define HEADER_SIZE        16
#define FOOTER_SIZE        128
#define BLOB_HEADER_SIZE   9  /* u32 crc, u8 flags, u32 raw length */
#define BLOCK_HEADER_SIZE  8  /* u32 crc, u32 entry count */
#define TOP_HEADER_SIZE    8  /* u32 crc, u32 block count */
#define ENTRY_TAIL_SIZE    12 /* u64 blob offset, u32 blob length */
#define TOP_ENTRY_SIZE     (KEY_SIZE + 12)
#define BLOB_FLAG_ZSTD     0x01u
#define BLOB_FLAGS_KNOWN   BLOB_FLAG_ZSTD
#define INDEX_BLOCK_MIN    64u
#define INDEX_BLOCK_MAX    (1024u * 1024)
#define TOP_INDEX_MAX      (64u * 1024 * 1024)
#define WRITE_BUF_SIZE     (256 * 1024)
#define ZSTD_LEVEL_DEFAULT 1

/* Footer field offsets. */
#define FT_KIND         0
#define FT_BLOCK_SIZE   4
#define FT_KEY_START    8
#define FT_KEY_END      26
#define FT_LSN_START    44
#define FT_LSN_END      52
#define FT_ENTRY_COUNT  60
#define FT_DATA_OFFSET  68
#define FT_INDEX_OFFSET 76
#define FT_INDEX_LEN    84
#define FT_TOP_OFFSET   92
#define FT_TOP_LEN      100
#define FT_N_BLOCKS     104
#define FT_FOOTER_LEN   108
#define FT_VERSION      112
#define FT_CRC          116
#define FT_MAGIC        120

/* ---- layout helpers (integers are little-endian: shared/bytes.h le_*) ---- */

/* ekey_len: the entry key size of a kind (key, or key + LSN for delta layers). */
static size_t ekey_len(LayerKind kind)
{
    return kind == LAYER_KIND_DELTA ? KEY_SIZE + 8 : KEY_SIZE;
}

/* blob_crc: the checksum of a value blob. It covers the entry key too, so that an index entry
 * pointing at another entry's blob is caught as well as damaged bytes. */
static uint32_t blob_crc(const uint8_t *ekey, size_t ekey_size, const uint8_t *hdr_rest,
                         const void *payload, size_t payload_len)
{
    uint32_t c = crc32c(ekey, ekey_size);
    c = crc32c_extend(c, hdr_rest, BLOB_HEADER_SIZE - 4);
    return crc32c_extend(c, payload, payload_len);
}

/* ---- descriptions and names ---- */

const char *layer_kind_name(LayerKind kind)
{
    switch (kind) {
    case LAYER_KIND_IMAGE:
        return "image";
    case LAYER_KIND_DELTA:
        return "delta";
    }
    return "unknown";
}

LayerDesc layer_desc_image(const KeyRange *keys, Lsn lsn)
{
    LayerDesc d = {.kind = LAYER_KIND_IMAGE, .key_range = *keys};
    d.lsn_range.start = lsn;
    d.lsn_range.end = lsn + 1;
    return d;
}

bool layer_desc_validate(const LayerDesc *d, Err *err)
{
    if (d->kind != LAYER_KIND_IMAGE && d->kind != LAYER_KIND_DELTA) {
        err_set(err, ERR_BAD_REQUEST, "unknown layer kind %d", (int)d->kind);
        return false;
    }
    if (key_cmp(&d->key_range.start, &d->key_range.end) >= 0) {
        err_set(err, ERR_BAD_REQUEST, "empty key range (start must be below the exclusive end)");
        return false;
    }
    if (d->lsn_range.start == LSN_INVALID) {
        err_set(err, ERR_BAD_REQUEST, "LSN 0 is not a valid LSN");
        return false;
    }
    if (d->lsn_range.end <= d->lsn_range.start) {
        err_set(err, ERR_BAD_REQUEST, "empty LSN range (start must be below the exclusive end)");
        return false;
    }
    if (d->kind == LAYER_KIND_IMAGE && d->lsn_range.end != d->lsn_range.start + 1) {
        err_set(err, ERR_BAD_REQUEST, "an image layer has exactly one LSN");
        return false;
    }
    return true;
}

void layer_name_format(const LayerDesc *d, char out[LAYER_NAME_SIZE])
{
    char ks[KEY_STR_SIZE], ke[KEY_STR_SIZE], l1[LSN_FILE_STR_SIZE], l2[LSN_FILE_STR_SIZE];
    key_format(&d->key_range.start, ks);
    key_format(&d->key_range.end, ke);
    lsn_format_file(d->lsn_range.start, l1);
    if (d->kind == LAYER_KIND_DELTA) {
        lsn_format_file(d->lsn_range.end, l2);
        snprintf(out, LAYER_NAME_SIZE, "%s-%s__%s-%s", ks, ke, l1, l2);
    } else {
        snprintf(out, LAYER_NAME_SIZE, "%s-%s__%s", ks, ke, l1);
    }
}

/* upper_hex: s[0..n) are 0-9 or A-F. Key parsing accepts lowercase; names must not. */
static bool upper_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

/* layer_name_parse: positions are fixed, so the check is by length first, then field by field.
 */
bool layer_name_parse(const char *s, LayerDesc *out, Err *err)
{
    enum { IMAGE_LEN = 2 * KEY_HEX_LEN + 1 + 2 + 16, DELTA_LEN = IMAGE_LEN + 1 + 16 };
    if (s == NULL) {
        err_set(err, ERR_BAD_REQUEST, "missing layer name");
        return false;
    }
    size_t len = strlen(s);
    if (len != IMAGE_LEN && len != DELTA_LEN) {
        err_set(err, ERR_BAD_REQUEST,
                "invalid layer name \"%.120s\": length %zu (image names are %d characters, "
                "delta names %d)",
                s, len, IMAGE_LEN, DELTA_LEN);
        return false;
    }
    const char *k2 = s + KEY_HEX_LEN + 1;
    const char *l1 = k2 + KEY_HEX_LEN + 2;
    const char *l2 = l1 + 17;
    bool delta = len == DELTA_LEN;
    if (s[KEY_HEX_LEN] != '-' || k2[KEY_HEX_LEN] != '_' || k2[KEY_HEX_LEN + 1] != '_' ||
        (delta && l1[16] != '-')) {
        err_set(err, ERR_BAD_REQUEST,
                "invalid layer name \"%s\": expected <keystart>-<keyend>__<lsn>%s", s,
                delta ? "-<lsnend>" : "");
        return false;
    }
    if (!upper_hex(s, KEY_HEX_LEN) || !upper_hex(k2, KEY_HEX_LEN) || !upper_hex(l1, 16) ||
        (delta && !upper_hex(l2, 16))) {
        err_set(err, ERR_BAD_REQUEST, "invalid layer name \"%s\": not uppercase hex", s);
        return false;
    }
    char buf[KEY_STR_SIZE];
    LayerDesc d = {.kind = delta ? LAYER_KIND_DELTA : LAYER_KIND_IMAGE};
    memcpy(buf, s, KEY_HEX_LEN);
    buf[KEY_HEX_LEN] = '\0';
    if (!key_parse(buf, &d.key_range.start, err))
        return false;
    memcpy(buf, k2, KEY_HEX_LEN);
    if (!key_parse(buf, &d.key_range.end, err))
        return false;
    char lbuf[LSN_FILE_STR_SIZE];
    memcpy(lbuf, l1, 16);
    lbuf[16] = '\0';
    if (!lsn_parse_file(lbuf, &d.lsn_range.start, err)) {
        err_prefix(err, "invalid layer name \"%s\": ", s);
        return false;
    }
    if (delta) {
        memcpy(lbuf, l2, 16);
        if (!lsn_parse_file(lbuf, &d.lsn_range.end, err)) {
            err_prefix(err, "invalid layer name \"%s\": ", s);
            return false;
        }
    } else {
        if (d.lsn_range.start == UINT64_MAX) {
            err_set(err, ERR_BAD_REQUEST, "invalid layer name \"%s\": LSN out of range", s);
            return false;
        }
        d.lsn_range.end = d.lsn_range.start + 1;
    }
    if (!layer_desc_validate(&d, err)) {
        err_prefix(err, "invalid layer name \"%s\": ", s);
        return false;
    }
    *out = d;
    return true;
}

/* ---- writer ---- */

struct LayerWriter {
    char *path;
    char *tmp;
    int fd;
    LayerDesc desc;
    int zstd_level; /* 0: values stored raw */
    uint32_t block_size;
    size_t ekey_size;
    size_t entry_size;
    uint64_t offset; /* logical end of the file: flushed + buffered */
    uint8_t *buf;
    size_t buf_len;
    uint8_t *index; /* encoded entries, entry_size each */
    size_t index_len;
    size_t index_cap;
    uint64_t count;
    uint8_t last_ekey[KEY_SIZE + 8];
    ZSTD_CCtx *cctx;
    uint8_t *zbuf;
    size_t zcap;
    bool failed;
};

static _Atomic unsigned long g_layer_tmp_seq;

/* writer_io_error: record an I/O failure (errno) and poison the writer. */
static bool writer_io_error(LayerWriter *w, const char *what, Err *err)
{
    char eb[128];
    err_set(err, ERR_INTERNAL, "%s %s: %s", what, w->tmp, strerror_r(errno, eb, sizeof(eb)));
    w->failed = true;
    return false;
}

static bool writer_flush(LayerWriter *w, Err *err)
{
    if (w->buf_len == 0)
        return true;
    if (!fs_write_all(w->fd, w->buf, w->buf_len))
        return writer_io_error(w, "cannot write", err);
    w->buf_len = 0;
    return true;
}

/* writer_emit: append bytes to the file through the buffer (large pieces go straight through). */
static bool writer_emit(LayerWriter *w, const void *data, size_t len, Err *err)
{
    if (w->buf_len + len > WRITE_BUF_SIZE && !writer_flush(w, err))
        return false;
    if (len >= WRITE_BUF_SIZE) {
        if (!fs_write_all(w->fd, data, len))
            return writer_io_error(w, "cannot write", err);
    } else {
        memcpy(w->buf + w->buf_len, data, len);
        w->buf_len += len;
    }
    w->offset += len;
    return true;
}

LayerWriterOptions layer_writer_options(ImageCompression c)
{
    LayerWriterOptions o = {0};
    if (c.algo == IMAGE_COMPRESSION_DISABLED)
        o.uncompressed = true;
    else
        o.zstd_level = c.has_level && c.level != 0 ? c.level : ZSTD_CLEVEL_DEFAULT;
    return o;
}

bool layer_writer_new(const char *path, const LayerDesc *desc, const LayerWriterOptions *opts,
                      LayerWriter **out, Err *err)
{
    *out = NULL;
    if (!layer_desc_validate(desc, err))
        return false;
    if (desc->kind != LAYER_KIND_IMAGE) {
        err_set(err, ERR_BAD_REQUEST, "writing %s layers is not supported yet",
                layer_kind_name(desc->kind));
        return false;
    }
    LayerWriterOptions o = opts ? *opts : (LayerWriterOptions){0};
    if (o.zstd_level == 0)
        o.zstd_level = ZSTD_LEVEL_DEFAULT;
    if (o.index_block_size == 0)
        o.index_block_size = LAYER_INDEX_BLOCK_SIZE_DEFAULT;
    if (o.index_block_size < INDEX_BLOCK_MIN || o.index_block_size > INDEX_BLOCK_MAX) {
        err_set(err, ERR_BAD_REQUEST, "index block size %u out of range %u..%u", o.index_block_size,
                INDEX_BLOCK_MIN, INDEX_BLOCK_MAX);
        return false;
    }
    if (o.zstd_level < ZSTD_minCLevel() || o.zstd_level > ZSTD_maxCLevel()) {
        err_set(err, ERR_BAD_REQUEST, "zstd level %d out of range", o.zstd_level);
        return false;
    }
    unsigned long seq = atomic_fetch_add(&g_layer_tmp_seq, 1);
    char *tmp = str_dup_printf("%s.tmp.%ld.%lu", path, (long)getpid(), seq);
    int fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) {
        char eb[128];
        err_set(err, ERR_INTERNAL, "cannot create %s: %s", tmp, strerror_r(errno, eb, sizeof(eb)));
        free(tmp);
        return false;
    }
    LayerWriter *w = xcalloc(1, sizeof(*w));
    w->path = xstrdup(path);
    w->tmp = tmp;
    w->fd = fd;
    w->desc = *desc;
    w->zstd_level = o.uncompressed ? 0 : o.zstd_level;
    w->block_size = o.index_block_size;
    w->ekey_size = ekey_len(desc->kind);
    w->entry_size = w->ekey_size + ENTRY_TAIL_SIZE;
    w->buf = xmalloc(WRITE_BUF_SIZE);
    w->cctx = w->zstd_level != 0 ? ZSTD_createCCtx() : NULL;
    if (w->zstd_level != 0 && w->cctx == NULL) {
        err_set(err, ERR_INTERNAL, "cannot create a zstd context");
        layer_writer_abort(w);
        return false;
    }
    uint8_t hdr[HEADER_SIZE] = {0};
    memcpy(hdr, LAYER_MAGIC, 8);
    le_put_u16(hdr + 8, LAYER_FORMAT_VERSION);
    hdr[10] = (uint8_t)desc->kind;
    if (!writer_emit(w, hdr, sizeof(hdr), err)) {
        layer_writer_abort(w);
        return false;
    }
    *out = w;
    return true;
}

/* layer_writer_add: checks first (misuse leaves no trace), then compress, emit the blob, and
 * remember the index entry. */
bool layer_writer_add(LayerWriter *w, const Key *key, const void *value, size_t len, Err *err)
{
    if (w->failed) {
        err_set(err, ERR_INTERNAL, "layer writer for %s failed earlier", w->path);
        return false;
    }
    char ks[KEY_STR_SIZE];
    if (!key_range_contains(&w->desc.key_range, key)) {
        key_format(key, ks);
        err_set(err, ERR_BAD_REQUEST, "key %s is outside the layer's key range", ks);
        return false;
    }
    uint8_t ekey[KEY_SIZE + 8];
    key_to_bytes(key, ekey);
    if (w->count > 0 && memcmp(ekey, w->last_ekey, w->ekey_size) <= 0) {
        key_format(key, ks);
        err_set(err, ERR_BAD_REQUEST,
                "key %s is not above the previous key (keys must be added "
                "in strictly ascending order)",
                ks);
        return false;
    }
    if (len > LAYER_VALUE_MAX) {
        err_set(err, ERR_BAD_REQUEST, "value of %zu bytes is over the limit of %u", len,
                LAYER_VALUE_MAX);
        return false;
    }

    const void *payload = value;
    size_t payload_len = len;
    uint8_t flags = 0;
    if (len > 0 && w->zstd_level != 0) {
        size_t bound = ZSTD_compressBound(len);
        if (bound > w->zcap) {
            w->zbuf = xrealloc(w->zbuf, bound);
            w->zcap = bound;
        }
        size_t z = ZSTD_compressCCtx(w->cctx, w->zbuf, w->zcap, value, len, w->zstd_level);
        if (ZSTD_isError(z)) {
            err_set(err, ERR_INTERNAL, "zstd compression failed: %s", ZSTD_getErrorName(z));
            w->failed = true;
            return false;
        }
        if (z < len) { /* otherwise keep the raw bytes: no point in paying for decompression */
            payload = w->zbuf;
            payload_len = z;
            flags = BLOB_FLAG_ZSTD;
        }
    }
    uint8_t hdr[BLOB_HEADER_SIZE];
    hdr[4] = flags;
    le_put_u32(hdr + 5, (uint32_t)len);
    le_put_u32(hdr, blob_crc(ekey, w->ekey_size, hdr + 4, payload, payload_len));
    uint64_t blob_offset = w->offset;
    if (!writer_emit(w, hdr, sizeof(hdr), err) || !writer_emit(w, payload, payload_len, err))
        return false;

    if (w->index_len + w->entry_size > w->index_cap) {
        w->index_cap = w->index_cap ? w->index_cap * 2 : 64 * w->entry_size;
        w->index = xrealloc(w->index, w->index_cap);
    }
    uint8_t *e = w->index + w->index_len;
    memcpy(e, ekey, w->ekey_size);
    le_put_u64(e + w->ekey_size, blob_offset);
    le_put_u32(e + w->ekey_size + 8, (uint32_t)(BLOB_HEADER_SIZE + payload_len));
    w->index_len += w->entry_size;
    memcpy(w->last_ekey, ekey, w->ekey_size);
    w->count++;
    return true;
}

/* entries_per_block: how many entries fit an index block of the target size. */
static size_t entries_per_block(uint32_t block_size, size_t entry_size)
{
    return (block_size - BLOCK_HEADER_SIZE) / entry_size;
}

/* writer_write_index: the index blocks, then the top index and the footer. */
static bool writer_write_index(LayerWriter *w, LayerInfo *info, Err *err)
{
    uint64_t data_offset = HEADER_SIZE;
    uint64_t index_offset = w->offset;
    size_t per_block = entries_per_block(w->block_size, w->entry_size);
    size_t n_blocks = (size_t)((w->count + per_block - 1) / per_block);
    size_t top_len = TOP_HEADER_SIZE + n_blocks * TOP_ENTRY_SIZE;
    if (top_len > TOP_INDEX_MAX) {
        err_set(err, ERR_BAD_REQUEST, "layer %s: too many entries (%llu) for the index", w->path,
                (unsigned long long)w->count);
        return false;
    }
    uint8_t *top = xcalloc(1, top_len);
    uint8_t *block = xmalloc(BLOCK_HEADER_SIZE + per_block * w->entry_size);
    bool ok = true;
    for (size_t b = 0; b < n_blocks && ok; b++) {
        size_t first = b * per_block;
        size_t n = (size_t)w->count - first < per_block ? (size_t)w->count - first : per_block;
        size_t len = BLOCK_HEADER_SIZE + n * w->entry_size;
        le_put_u32(block + 4, (uint32_t)n);
        memcpy(block + BLOCK_HEADER_SIZE, w->index + first * w->entry_size, n * w->entry_size);
        le_put_u32(block, crc32c(block + 4, len - 4));
        uint8_t *t = top + TOP_HEADER_SIZE + b * TOP_ENTRY_SIZE;
        memcpy(t, w->index + first * w->entry_size, KEY_SIZE);
        le_put_u64(t + KEY_SIZE, w->offset);
        le_put_u32(t + KEY_SIZE + 8, (uint32_t)len);
        ok = writer_emit(w, block, len, err);
    }
    free(block);
    uint64_t index_len = w->offset - index_offset;
    uint64_t top_offset = w->offset;
    le_put_u32(top + 4, (uint32_t)n_blocks);
    le_put_u32(top, crc32c(top + 4, top_len - 4));
    ok = ok && writer_emit(w, top, top_len, err);
    free(top);
    if (!ok)
        return false;

    uint8_t ft[FOOTER_SIZE] = {0};
    uint8_t kb[KEY_SIZE];
    ft[FT_KIND] = (uint8_t)w->desc.kind;
    le_put_u32(ft + FT_BLOCK_SIZE, w->block_size);
    key_to_bytes(&w->desc.key_range.start, kb);
    memcpy(ft + FT_KEY_START, kb, KEY_SIZE);
    key_to_bytes(&w->desc.key_range.end, kb);
    memcpy(ft + FT_KEY_END, kb, KEY_SIZE);
    le_put_u64(ft + FT_LSN_START, w->desc.lsn_range.start);
    le_put_u64(ft + FT_LSN_END, w->desc.lsn_range.end);
    le_put_u64(ft + FT_ENTRY_COUNT, w->count);
    le_put_u64(ft + FT_DATA_OFFSET, data_offset);
    le_put_u64(ft + FT_INDEX_OFFSET, index_offset);
    le_put_u64(ft + FT_INDEX_LEN, index_len);
    le_put_u64(ft + FT_TOP_OFFSET, top_offset);
    le_put_u32(ft + FT_TOP_LEN, (uint32_t)top_len);
    le_put_u32(ft + FT_N_BLOCKS, (uint32_t)n_blocks);
    le_put_u32(ft + FT_FOOTER_LEN, FOOTER_SIZE);
    le_put_u16(ft + FT_VERSION, LAYER_FORMAT_VERSION);
    le_put_u32(ft + FT_CRC, crc32c(ft, FT_CRC));
    memcpy(ft + FT_MAGIC, LAYER_MAGIC, 8);
    if (!writer_emit(w, ft, sizeof(ft), err) || !writer_flush(w, err))
        return false;
    info->desc = w->desc;
    info->entry_count = w->count;
    info->file_size = w->offset;
    return true;
}

bool layer_writer_finish(LayerWriter *w, LayerInfo *out, Err *err)
{
    LayerInfo info;
    bool ok = false;
    int rc;
    char *dir = NULL;
    char *slash;
    if (w->failed) {
        err_set(err, ERR_INTERNAL, "layer writer for %s failed earlier", w->path);
        goto cleanup;
    }
    if (!writer_write_index(w, &info, err))
        goto cleanup;
    if (fsync(w->fd) != 0) {
        (void)writer_io_error(w, "cannot fsync", err);
        goto cleanup;
    }
    rc = close(w->fd);
    w->fd = -1;
    if (rc != 0) {
        (void)writer_io_error(w, "cannot close", err);
        goto cleanup;
    }
    if (rename(w->tmp, w->path) != 0) {
        (void)writer_io_error(w, "cannot rename into place", err);
        goto cleanup;
    }
    free(w->tmp);
    w->tmp = NULL; /* renamed: nothing to remove */
    dir = xstrdup(w->path);
    slash = strrchr(dir, '/');
    if (slash == NULL)
        str_copy(dir, strlen(dir) + 1, ".");
    else if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    ok = fs_fsync_dir(dir, err);
    if (ok && out != NULL)
        *out = info;

cleanup:
    free(dir);
    layer_writer_abort(w);
    return ok;
}

void layer_writer_abort(LayerWriter *w)
{
    if (w == NULL)
        return;
    if (w->fd >= 0)
        close(w->fd);
    if (w->tmp != NULL)
        unlink(w->tmp);
    ZSTD_freeCCtx(w->cctx);
    free(w->zbuf);
    free(w->index);
    free(w->buf);
    free(w->tmp);
    free(w->path);
    free(w);
}

/* ---- reader ---- */

typedef struct TopEntry {
    uint8_t first[KEY_SIZE];
    uint64_t offset;
    uint32_t len;
} TopEntry;

struct LayerReader {
    LayerReadFn read;
    void *ctx;
    LayerFile *owned_file;
    char *label;
    LayerInfo info;
    uint32_t block_size;
    size_t ekey_size;
    size_t entry_size;
    uint64_t data_offset;
    uint64_t index_offset; /* the value region is [data_offset, index_offset) */
    size_t n_blocks;
    TopEntry *blocks;
    /* index blocks verified once and kept (layer_reader_get): n_blocks slots, NULL until the first
     * lookup in that block; published with a compare-and-swap, so concurrent readers need no
     * lock. Bounded by the index size (about 0.4% of the layer for 8 KiB pages). */
    _Atomic(uint8_t *) *block_cache;
    uint64_t owner; /* page_cache_owner_new: this open reader's key in the page cache */
};

/* corrupt: the error of every integrity failure: ERR_INTERNAL naming the layer. */
#define corrupt(r, err, ...)                                                                       \
    do {                                                                                           \
        err_set((err), ERR_INTERNAL, __VA_ARGS__);                                                 \
        err_prefix((err), "layer %s: ", (r)->label);                                               \
    } while (0)

/* reader_read: one ranged read, with the layer's name added to the source's error. */
static bool reader_read(const LayerReader *r, uint64_t offset, size_t len, void *buf, Err *err)
{
    if (!r->read(r->ctx, offset, len, buf, err)) {
        err_prefix(err, "layer %s: reading %zu bytes at offset %llu: ", r->label, len,
                   (unsigned long long)offset);
        return false;
    }
    return true;
}

/* reader_check_footer: everything the footer claims must hold together before it is trusted:
 * magic, then version (so that a newer file gets a version error, not a checksum error), then
 * the checksum, then the layout arithmetic. */
static bool reader_check_footer(LayerReader *r, const uint8_t *ft, uint64_t file_size, Err *err)
{
    if (memcmp(ft + FT_MAGIC, LAYER_MAGIC, 8) != 0) {
        corrupt(r, err, "bad magic (not a layer file, or truncated)");
        return false;
    }
    uint16_t version = le_get_u16(ft + FT_VERSION);
    if (version != LAYER_FORMAT_VERSION) {
        corrupt(r, err, "unsupported layer format version %u (this build reads version %d)",
                version, LAYER_FORMAT_VERSION);
        return false;
    }
    if (le_get_u32(ft + FT_CRC) != crc32c(ft, FT_CRC)) {
        corrupt(r, err, "checksum mismatch in the footer at offset %llu",
                (unsigned long long)(file_size - FOOTER_SIZE));
        return false;
    }
    uint8_t kind = ft[FT_KIND];
    if (kind == LAYER_KIND_DELTA) {
        corrupt(r, err, "delta layers are not supported yet");
        return false;
    }
    if (kind != LAYER_KIND_IMAGE) {
        corrupt(r, err, "unknown layer kind %u", kind);
        return false;
    }
    LayerInfo *in = &r->info;
    in->desc.kind = (LayerKind)kind;
    in->desc.key_range.start = key_from_bytes(ft + FT_KEY_START);
    in->desc.key_range.end = key_from_bytes(ft + FT_KEY_END);
    in->desc.lsn_range.start = le_get_u64(ft + FT_LSN_START);
    in->desc.lsn_range.end = le_get_u64(ft + FT_LSN_END);
    in->entry_count = le_get_u64(ft + FT_ENTRY_COUNT);
    in->file_size = file_size;
    Err derr = {0};
    if (!layer_desc_validate(&in->desc, &derr)) {
        corrupt(r, err, "footer: %s", derr.msg);
        return false;
    }
    r->block_size = le_get_u32(ft + FT_BLOCK_SIZE);
    r->ekey_size = ekey_len(in->desc.kind);
    r->entry_size = r->ekey_size + ENTRY_TAIL_SIZE;
    r->data_offset = le_get_u64(ft + FT_DATA_OFFSET);
    r->index_offset = le_get_u64(ft + FT_INDEX_OFFSET);
    uint64_t index_len = le_get_u64(ft + FT_INDEX_LEN);
    uint64_t top_offset = le_get_u64(ft + FT_TOP_OFFSET);
    uint32_t top_len = le_get_u32(ft + FT_TOP_LEN);
    r->n_blocks = le_get_u32(ft + FT_N_BLOCKS);
    if (le_get_u32(ft + FT_FOOTER_LEN) != FOOTER_SIZE || r->block_size < INDEX_BLOCK_MIN ||
        r->block_size > INDEX_BLOCK_MAX) {
        corrupt(r, err, "footer: bad footer length or index block size");
        return false;
    }
    size_t per_block = entries_per_block(r->block_size, r->entry_size);
    uint64_t want_blocks = (in->entry_count + per_block - 1) / per_block;
    uint64_t end = file_size - FOOTER_SIZE;
    if (r->data_offset != HEADER_SIZE || r->index_offset < r->data_offset ||
        r->index_offset > end || index_len > end - r->index_offset ||
        top_offset != r->index_offset + index_len || top_len > TOP_INDEX_MAX ||
        (uint64_t)top_offset + top_len != end || r->n_blocks != want_blocks ||
        top_len != TOP_HEADER_SIZE + r->n_blocks * TOP_ENTRY_SIZE ||
        index_len != (uint64_t)r->n_blocks * BLOCK_HEADER_SIZE + in->entry_count * r->entry_size) {
        corrupt(r, err, "footer: inconsistent layout (file size %llu)",
                (unsigned long long)file_size);
        return false;
    }
    return true;
}

/* reader_load_top: read and check the top index: checksum, contiguous blocks exactly covering
 * the index region, first keys strictly ascending and inside the key range. */
static bool reader_load_top(LayerReader *r, uint64_t top_offset, size_t top_len, Err *err)
{
    uint8_t *top = xmalloc(top_len);
    bool ok = false;
    if (!reader_read(r, top_offset, top_len, top, err))
        goto cleanup;
    if (le_get_u32(top) != crc32c(top + 4, top_len - 4)) {
        corrupt(r, err, "checksum mismatch in the top index at offset %llu",
                (unsigned long long)top_offset);
        goto cleanup;
    }
    if (le_get_u32(top + 4) != r->n_blocks) {
        corrupt(r, err, "top index: %u blocks, footer says %zu", le_get_u32(top + 4), r->n_blocks);
        goto cleanup;
    }
    r->blocks = xcalloc(r->n_blocks ? r->n_blocks : 1, sizeof(*r->blocks));
    r->block_cache = xcalloc(r->n_blocks ? r->n_blocks : 1, sizeof(*r->block_cache));
    uint64_t expect = r->index_offset;
    uint8_t range_start[KEY_SIZE], range_end[KEY_SIZE];
    key_to_bytes(&r->info.desc.key_range.start, range_start);
    key_to_bytes(&r->info.desc.key_range.end, range_end);
    for (size_t i = 0; i < r->n_blocks; i++) {
        const uint8_t *t = top + TOP_HEADER_SIZE + i * TOP_ENTRY_SIZE;
        TopEntry *b = &r->blocks[i];
        memcpy(b->first, t, KEY_SIZE);
        b->offset = le_get_u64(t + KEY_SIZE);
        b->len = le_get_u32(t + KEY_SIZE + 8);
        if (b->offset != expect || b->len < BLOCK_HEADER_SIZE + r->entry_size ||
            b->len > r->block_size || memcmp(b->first, range_start, KEY_SIZE) < 0 ||
            memcmp(b->first, range_end, KEY_SIZE) >= 0 ||
            (i > 0 && memcmp(b->first, r->blocks[i - 1].first, KEY_SIZE) <= 0)) {
            corrupt(r, err, "top index: bad entry %zu", i);
            goto cleanup;
        }
        expect += b->len;
    }
    if (expect != top_offset) {
        corrupt(r, err, "top index: blocks do not cover the index region");
        goto cleanup;
    }
    ok = true;

cleanup:
    free(top);
    return ok;
}

bool layer_reader_open(LayerReadFn read, void *ctx, uint64_t file_size, const char *label,
                       LayerReader **out, Err *err)
{
    *out = NULL;
    LayerReader *r = xcalloc(1, sizeof(*r));
    r->read = read;
    r->ctx = ctx;
    r->label = xstrdup(label ? label : "layer");
    r->owner = page_cache_owner_new();
    uint8_t ft[FOOTER_SIZE];
    if (file_size < HEADER_SIZE + FOOTER_SIZE + TOP_HEADER_SIZE) {
        corrupt(r, err, "file too small (%llu bytes) to be a layer (truncated?)",
                (unsigned long long)file_size);
        goto fail;
    }
    if (!reader_read(r, file_size - FOOTER_SIZE, FOOTER_SIZE, ft, err) ||
        !reader_check_footer(r, ft, file_size, err) ||
        !reader_load_top(r, le_get_u64(ft + FT_TOP_OFFSET), le_get_u32(ft + FT_TOP_LEN), err))
        goto fail;
    *out = r;
    return true;

fail:
    layer_reader_free(r);
    return false;
}

void layer_reader_free(LayerReader *r)
{
    if (r == NULL)
        return;
    layer_file_close(r->owned_file);
    for (size_t i = 0; r->block_cache != NULL && i < r->n_blocks; i++)
        free(atomic_load(&r->block_cache[i]));
    free((void *)r->block_cache);
    free(r->blocks);
    free(r->label);
    free(r);
}

void layer_reader_info(const LayerReader *r, LayerInfo *out)
{
    *out = r->info;
}

/* reader_load_block: read index block i and check it: checksum, entry count matching the length,
 * entries strictly ascending, the first one being the top index's. *out is the caller's. */
static bool reader_load_block(const LayerReader *r, size_t i, uint8_t **out, size_t *n_out,
                              Err *err)
{
    const TopEntry *b = &r->blocks[i];
    uint8_t *block = xmalloc(b->len);
    if (!reader_read(r, b->offset, b->len, block, err))
        goto fail;
    if (le_get_u32(block) != crc32c(block + 4, b->len - 4)) {
        corrupt(r, err, "checksum mismatch in index block %zu at offset %llu", i,
                (unsigned long long)b->offset);
        goto fail;
    }
    size_t n = le_get_u32(block + 4);
    if (n == 0 || BLOCK_HEADER_SIZE + n * r->entry_size != b->len ||
        memcmp(block + BLOCK_HEADER_SIZE, b->first, KEY_SIZE) != 0) {
        corrupt(r, err, "index block %zu at offset %llu is inconsistent", i,
                (unsigned long long)b->offset);
        goto fail;
    }
    for (size_t j = 1; j < n; j++) {
        const uint8_t *e = block + BLOCK_HEADER_SIZE + j * r->entry_size;
        if (memcmp(e - r->entry_size, e, r->ekey_size) >= 0) {
            corrupt(r, err, "index block %zu at offset %llu is not sorted", i,
                    (unsigned long long)b->offset);
            goto fail;
        }
    }
    *out = block;
    *n_out = n;
    return true;

fail:
    free(block);
    return false;
}

/* reader_cached_block: index block i, loaded and verified by the first lookup in it and kept for
 * the reader's life; the block belongs to the reader (never freed by the caller). */
static bool reader_cached_block(const LayerReader *r, size_t i, const uint8_t **out, size_t *n_out,
                                Err *err)
{
    uint8_t *block = atomic_load_explicit(&r->block_cache[i], memory_order_acquire);
    if (block == NULL) {
        size_t n;
        if (!reader_load_block(r, i, &block, &n, err))
            return false;
        uint8_t *expected = NULL;
        if (!atomic_compare_exchange_strong_explicit(&r->block_cache[i], &expected, block,
                                                     memory_order_acq_rel, memory_order_acquire)) {
            free(block); /* another thread published it first */
            block = expected;
        }
    }
    *out = block;
    *n_out = le_get_u32(block + 4);
    return true;
}

/* reader_load_value: read and verify the blob an index entry points to, and decode it into a new
 * buffer (*value, caller frees). With a cache: a value cached for this reader and blob offset is
 * copied from there (no read, no checksum, no decompression); a value read is put there after
 * its checksum and decompression succeeded. missing != NULL: memory only: a value not cached is
 * not read; *missing says so (and the call succeeds with *value NULL). */
static bool reader_load_value(const LayerReader *r, PageCache *pc, const uint8_t *entry,
                              void **value, size_t *len, bool *missing, Err *err)
{
    uint64_t off = le_get_u64(entry + r->ekey_size);
    if (pc != NULL && page_cache_get_copy(pc, r->owner, off, missing == NULL, value, len))
        return true;
    if (missing != NULL) {
        *missing = true;
        return true;
    }
    uint32_t blen = le_get_u32(entry + r->ekey_size + 8);
    if (off < r->data_offset || off > r->index_offset || blen < BLOB_HEADER_SIZE ||
        blen > r->index_offset - off ||
        blen - BLOB_HEADER_SIZE > ZSTD_compressBound(LAYER_VALUE_MAX)) {
        corrupt(r, err, "index entry points outside the value region (offset %llu, length %u)",
                (unsigned long long)off, blen);
        return false;
    }
    uint8_t *blob = xmalloc(blen);
    uint8_t *raw = NULL;
    if (!reader_read(r, off, blen, blob, err))
        goto fail;
    const uint8_t *payload = blob + BLOB_HEADER_SIZE;
    size_t payload_len = blen - BLOB_HEADER_SIZE;
    if (le_get_u32(blob) != blob_crc(entry, r->ekey_size, blob + 4, payload, payload_len)) {
        corrupt(r, err, "checksum mismatch in the value blob at offset %llu",
                (unsigned long long)off);
        goto fail;
    }
    uint8_t flags = blob[4];
    uint32_t raw_len = le_get_u32(blob + 5);
    if ((flags & ~BLOB_FLAGS_KNOWN) != 0 || raw_len > LAYER_VALUE_MAX) {
        corrupt(r, err, "value blob at offset %llu: unknown flags 0x%x or bad length",
                (unsigned long long)off, flags);
        goto fail;
    }
    raw = xmalloc(raw_len ? raw_len : 1);
    if (flags & BLOB_FLAG_ZSTD) {
        size_t z = ZSTD_decompress(raw, raw_len, payload, payload_len);
        if (ZSTD_isError(z) || z != raw_len) {
            corrupt(r, err, "value blob at offset %llu does not decompress: %s",
                    (unsigned long long)off, ZSTD_isError(z) ? ZSTD_getErrorName(z) : "length");
            goto fail;
        }
    } else {
        if (payload_len != raw_len) {
            corrupt(r, err, "value blob at offset %llu: length mismatch", (unsigned long long)off);
            goto fail;
        }
        memcpy(raw, payload, raw_len);
    }
    free(blob);
    page_cache_put(pc, r->owner, off, raw, raw_len);
    *value = raw;
    *len = raw_len;
    return true;

fail:
    free(raw);
    free(blob);
    return false;
}

/* layer_reader_get: top index (memory) -> one index block -> one blob. */
bool layer_reader_get(const LayerReader *r, const Key *key, void **value, size_t *len, bool *found,
                      Err *err)
{
    return layer_reader_get_cached(r, NULL, key, value, len, found, err);
}

static bool reader_get(const LayerReader *r, PageCache *pc, const Key *key, void **value,
                       size_t *len, bool *found, bool *missing, Err *err);

bool layer_reader_get_cached(const LayerReader *r, PageCache *pc, const Key *key, void **value,
                             size_t *len, bool *found, Err *err)
{
    return reader_get(r, pc, key, value, len, found, NULL, err);
}

bool layer_reader_get_in_memory(const LayerReader *r, PageCache *pc, const Key *key, void **value,
                                size_t *len, bool *found, bool *in_memory, Err *err)
{
    bool missing = false;
    bool ok = reader_get(r, pc, key, value, len, found, &missing, err);
    *in_memory = !missing;
    return ok;
}

/* reader_get: layer_reader_get_cached; missing != NULL: memory only (reader_load_value). */
static bool reader_get(const LayerReader *r, PageCache *pc, const Key *key, void **value,
                       size_t *len, bool *found, bool *missing, Err *err)
{
    *value = NULL;
    *len = 0;
    *found = false;
    if (!key_range_contains(&r->info.desc.key_range, key))
        return true;
    uint8_t kb[KEY_SIZE];
    key_to_bytes(key, kb);
    /* the last block whose first key is <= key */
    size_t lo = 0, hi = r->n_blocks;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (memcmp(r->blocks[mid].first, kb, KEY_SIZE) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return true; /* before the first key, or no entries */
    const uint8_t *block;
    size_t n;
    if (missing != NULL &&
        atomic_load_explicit(&r->block_cache[lo - 1], memory_order_acquire) == NULL) {
        *missing = true; /* the index block was never read */
        return true;
    }
    if (!reader_cached_block(r, lo - 1, &block, &n, err))
        return false;
    const uint8_t *entries = block + BLOCK_HEADER_SIZE;
    const uint8_t *hit = NULL;
    lo = 0;
    hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const uint8_t *e = entries + mid * r->entry_size;
        int c = memcmp(e, kb, KEY_SIZE);
        if (c == 0) {
            hit = e;
            break;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    bool ok = true;
    if (hit != NULL) {
        ok = reader_load_value(r, pc, hit, value, len, missing, err);
        *found = ok && *value != NULL;
    }
    return ok;
}

bool layer_reader_iter(const LayerReader *r, LayerVisitFn visit, void *arg, Err *err)
{
    uint64_t seen = 0;
    for (size_t i = 0; i < r->n_blocks; i++) {
        uint8_t *block;
        size_t n;
        if (!reader_load_block(r, i, &block, &n, err))
            return false;
        if (i + 1 < r->n_blocks) {
            const uint8_t *last = block + BLOCK_HEADER_SIZE + (n - 1) * r->entry_size;
            if (memcmp(last, r->blocks[i + 1].first, KEY_SIZE) >= 0) {
                corrupt(r, err, "index block %zu overlaps the next one", i);
                free(block);
                return false;
            }
        }
        for (size_t j = 0; j < n; j++) {
            const uint8_t *e = block + BLOCK_HEADER_SIZE + j * r->entry_size;
            void *value;
            size_t len;
            if (!reader_load_value(r, NULL, e, &value, &len, NULL, err)) {
                free(block);
                return false;
            }
            Key k = key_from_bytes(e);
            bool ok = visit(arg, &k, value, len, err);
            free(value);
            if (!ok) {
                free(block);
                return false;
            }
        }
        seen += n;
        free(block);
    }
    if (seen != r->info.entry_count) {
        corrupt(r, err, "index holds %llu entries, footer says %llu", (unsigned long long)seen,
                (unsigned long long)r->info.entry_count);
        return false;
    }
    return true;
}

/* ---- read sources ---- */

struct LayerFile {
    int fd;
    uint64_t size;
    char *path;
};

bool layer_file_open(const char *path, LayerFile **out, Err *err)
{
    *out = NULL;
    char eb[128];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            err_set(err, ERR_NOT_FOUND, "layer file %s not found", path);
        else
            err_set(err, ERR_INTERNAL, "cannot open %s: %s", path,
                    strerror_r(errno, eb, sizeof(eb)));
        return false;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        err_set(err, ERR_INTERNAL, "cannot stat %s: %s", path, strerror_r(errno, eb, sizeof(eb)));
        close(fd);
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        err_set(err, ERR_INTERNAL, "%s is not a regular file", path);
        close(fd);
        return false;
    }
    LayerFile *f = xcalloc(1, sizeof(*f));
    f->fd = fd;
    f->size = (uint64_t)st.st_size;
    f->path = xstrdup(path);
    *out = f;
    return true;
}

uint64_t layer_file_size(const LayerFile *f)
{
    return f->size;
}

bool layer_file_read(void *ctx, uint64_t offset, size_t len, void *buf, Err *err)
{
    LayerFile *f = ctx;
    size_t n = 0;
    while (n < len) {
        ssize_t r = pread(f->fd, (uint8_t *)buf + n, len - n, (off_t)(offset + n));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            char eb[128];
            err_set(err, ERR_INTERNAL, "cannot read %s: %s", f->path,
                    strerror_r(errno, eb, sizeof(eb)));
            return false;
        }
        if (r == 0) {
            err_set(err, ERR_INTERNAL, "%s: unexpected end of file (truncated?)", f->path);
            return false;
        }
        n += (size_t)r;
    }
    return true;
}

void layer_file_close(LayerFile *f)
{
    if (f == NULL)
        return;
    close(f->fd);
    free(f->path);
    free(f);
}

bool layer_reader_open_file(const char *path, LayerReader **out, Err *err)
{
    LayerFile *f;
    if (!layer_file_open(path, &f, err))
        return false;
    if (!layer_reader_open(layer_file_read, f, f->size, path, out, err)) {
        layer_file_close(f);
        return false;
    }
    (*out)->owned_file = f;
    return true;
}

bool layer_remote_read(void *ctx, uint64_t offset, size_t len, void *buf, Err *err)
{
    LayerRemoteObject *o = ctx;
    size_t got = 0;
    if (!remote_get_range(o->rs, o->key, offset, len, buf, &got, err))
        return false;
    if (got != len) {
        err_set(err, ERR_INTERNAL, "remote object %s: unexpected end (truncated?)", o->key);
        return false;
    }
    return true;
}
