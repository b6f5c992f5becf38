/*
 * fuzz_layer: the layer file reader (pageserver/layer.c), which reads files from local disk and
 * ranged reads of remote objects: layer_reader_open over an in-memory read source, then
 * layer_reader_get of a few keys and layer_reader_iter over everything.
 *
 * Every part of a layer is checksummed, so random bytes rarely get past the footer. The first
 * input byte therefore picks a mode: odd = the rest is taken as is; even = the harness first
 * recomputes every checksum it can locate (value blobs, index blocks, top index, footer; format
 * in docs/layer-format.md) so that the fuzzer reaches the structure checks behind them.
 */
#include "tests/fuzz/fuzz_util.h"

#include "pageserver/layer.h"
#include "shared/bytes.h"
#include "shared/crc32c.h"

/* Format constants (docs/layer-format.md); the reader's own are private to layer.c. */
#define HEADER_SIZE       16
#define FOOTER_SIZE       128
#define BLOB_HEADER_SIZE  9
#define BLOCK_HEADER_SIZE 8
#define TOP_HEADER_SIZE   8
#define TOP_ENTRY_SIZE    (KEY_SIZE + 12)
#define FT_KIND           0
#define FT_TOP_OFFSET     92
#define FT_TOP_LEN        100
#define FT_N_BLOCKS       104
#define FT_CRC            116

typedef struct MemFile {
    const uint8_t *data;
    size_t size;
} MemFile;

static bool mem_read(void *ctx, uint64_t offset, size_t len, void *buf, Err *err)
{
    const MemFile *f = ctx;
    if (offset > f->size || len > f->size - offset) {
        err_set(err, ERR_INTERNAL, "short read at %llu", (unsigned long long)offset);
        return false;
    }
    memcpy(buf, f->data + offset, len);
    return true;
}

static bool in_file(size_t size, uint64_t off, uint64_t len)
{
    return off <= size && len <= size - off;
}

/* fix_checksums: recompute the checksums of whatever parts of buf[size] the footer and indexes
 * locate: blobs first (their checksum covers the entry key), then blocks, top index, footer. */
static void fix_checksums(uint8_t *buf, size_t size)
{
    if (size < HEADER_SIZE + FOOTER_SIZE + TOP_HEADER_SIZE)
        return;
    uint8_t *ft = buf + size - FOOTER_SIZE;
    size_t ekey = le_get_u32(ft + FT_KIND) == LAYER_KIND_DELTA ? KEY_SIZE + 8 : KEY_SIZE;
    size_t entry_size = ekey + 12;
    uint64_t top_off = le_get_u64(ft + FT_TOP_OFFSET);
    uint32_t top_len = le_get_u32(ft + FT_TOP_LEN);
    uint32_t n_blocks = le_get_u32(ft + FT_N_BLOCKS);
    if (in_file(size, top_off, top_len) && top_len >= TOP_HEADER_SIZE &&
        n_blocks <= (top_len - TOP_HEADER_SIZE) / TOP_ENTRY_SIZE) {
        uint8_t *top = buf + top_off;
        for (uint32_t i = 0; i < n_blocks; i++) {
            const uint8_t *t = top + TOP_HEADER_SIZE + (size_t)i * TOP_ENTRY_SIZE;
            uint64_t boff = le_get_u64(t + KEY_SIZE);
            uint32_t blen = le_get_u32(t + KEY_SIZE + 8);
            if (!in_file(size, boff, blen) || blen < BLOCK_HEADER_SIZE)
                continue;
            uint8_t *block = buf + boff;
            size_t n = (blen - BLOCK_HEADER_SIZE) / entry_size;
            for (size_t j = 0; j < n; j++) {
                const uint8_t *e = block + BLOCK_HEADER_SIZE + j * entry_size;
                uint64_t off = le_get_u64(e + ekey);
                uint32_t len = le_get_u32(e + ekey + 8);
                if (!in_file(size, off, len) || len < BLOB_HEADER_SIZE)
                    continue;
                uint8_t *blob = buf + off;
                uint32_t c = crc32c(e, ekey);
                c = crc32c_extend(c, blob + 4, len - 4);
                le_put_u32(blob, c);
            }
            le_put_u32(block, crc32c(block + 4, blen - 4));
        }
        le_put_u32(top, crc32c(top + 4, top_len - 4));
    }
    le_put_u32(ft + FT_CRC, crc32c(ft, FT_CRC));
}

static bool visit(void *arg, const Key *key, const void *value, size_t len, Err *err)
{
    size_t *count = arg;
    (*count)++;
    if (len)
        FUZZ_CHECK(value != NULL);
    return true;
}

static void probe(const LayerReader *r, const Key *k)
{
    void *value = NULL;
    size_t len = 0;
    bool found = false;
    Err err = {0};
    if (layer_reader_get(r, k, &value, &len, &found, &err) && found)
        free(value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool fix = (data[0] & 1) == 0;
    uint8_t *buf = malloc(size);
    if (!buf)
        abort();
    memcpy(buf, data + 1, size - 1);
    size--;
    if (fix)
        fix_checksums(buf, size);

    MemFile f = {buf, size};
    LayerReader *r = NULL;
    Err err = {0};
    if (layer_reader_open(mem_read, &f, size, "fuzz", &r, &err)) {
        LayerInfo info;
        layer_reader_info(r, &info);
        FUZZ_CHECK(info.file_size == size);
        probe(r, &info.desc.key_range.start);
        Key next = key_next(&info.desc.key_range.start);
        probe(r, &next);
        probe(r, &info.desc.key_range.end);
        Key zero = {0};
        probe(r, &zero);
        size_t count = 0;
        if (layer_reader_iter(r, visit, &count, &err))
            FUZZ_CHECK(count == info.entry_count);
        layer_reader_free(r);
    }
    free(buf);
    return 0;
}
