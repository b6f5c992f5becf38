/*
 * layer.h: layer files, the immutable building blocks of a timeline (docs/layer-format.md).
 *
 * A layer holds values for a key range: an image layer one value per key at one LSN, a delta
 * layer (not implemented yet; the format reserves its kind and entry shape) values per (key, LSN)
 * over an LSN range. The file format is the project's own: versioned, every value blob and index
 * block checksummed with CRC-32C, values compressed with zstd one by one, and an index at a known
 * place (a fixed-size footer at the end) so that one value can be fetched with ranged reads:
 * opening costs 2 reads (footer, top-level index), each lookup then at most 2 (one index block,
 * one value), whether the bytes come from a local file or a remote object; a reader keeps the
 * index blocks it has verified, so a lookup in a block read before costs the value's read only.
 *
 * Names (pageserver.md): image "<keystart 36 hex>-<keyend 36 hex>__<LSN 16 hex>", delta
 * "<keystart>-<keyend>__<lsnstart 16 hex>-<lsnend 16 hex>", uppercase hex, key end and LSN end
 * exclusive. The generation suffix of remote objects is not part of the layer name.
 *
 * All of this blocks on disk or network I/O and burns CPU in zstd: call it from worker threads
 * (except layer_reader_get_in_memory).
 */
#ifndef PAGESERVER_LAYER_H
#define PAGESERVER_LAYER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"
#include "shared/id.h"
#include "shared/key.h"
#include "shared/remote_storage.h"
#include "shared/tenant_config.h"

/* The on-disk format version this build writes and the only one it reads. */
#define LAYER_FORMAT_VERSION 1
/* Default target size of an index block (entries are packed up to this size). */
#define LAYER_INDEX_BLOCK_SIZE_DEFAULT (32 * 1024)
/* Largest value a layer stores (uncompressed). */
#define LAYER_VALUE_MAX (64u * 1024 * 1024)
/* Image name: 36 + 1 + 36 + 2 + 16 = 91 chars; delta adds "-" and 16: 108; plus NUL. */
#define LAYER_NAME_SIZE 109

typedef enum LayerKind {
    LAYER_KIND_IMAGE = 1, /* one value per key at one LSN */
    LAYER_KIND_DELTA = 2, /* values per (key, LSN); reserved, not implemented yet */
} LayerKind;

/* LsnRange: [start, end). An image layer at LSN L has [L, L + 1). */
typedef struct LsnRange {
    Lsn start;
    Lsn end;
} LsnRange;

/* LayerDesc: what a layer's name says: kind, key range and LSN range. */
typedef struct LayerDesc {
    LayerKind kind;
    KeyRange key_range;
    LsnRange lsn_range;
} LayerDesc;

/* LayerInfo: the description plus what only the file knows. */
typedef struct LayerInfo {
    LayerDesc desc;
    uint64_t entry_count;
    uint64_t file_size;
} LayerInfo;

const char *layer_kind_name(LayerKind kind); /* "image", "delta", "unknown"; static string */

/* layer_desc_image: the description of an image layer of keys at lsn ([lsn, lsn + 1)). */
LayerDesc layer_desc_image(const KeyRange *keys, Lsn lsn);

/* layer_desc_validate: a known kind, a non-empty key range, a valid non-empty LSN range (0 is not
 * a valid LSN), and for an image layer exactly one LSN. ERR_BAD_REQUEST otherwise. */
bool layer_desc_validate(const LayerDesc *d, Err *err) MUST_CHECK;

/* layer_name_format: the file name of a valid description (uppercase hex). */
void layer_name_format(const LayerDesc *d, char out[LAYER_NAME_SIZE]);

/* layer_name_parse: strictly the forms above: exact lengths, uppercase hex, "-" and "__" in
 * place, nothing before or after (no generation suffix, no ".tmp"), and a description that
 * passes layer_desc_validate. ERR_BAD_REQUEST naming what is wrong. */
bool layer_name_parse(const char *s, LayerDesc *out, Err *err) MUST_CHECK;

/* ---- writing ---- */

typedef struct LayerWriterOptions {
    int zstd_level;            /* 0 = default (1: pages compress nearly as well, much faster) */
    uint32_t index_block_size; /* 0 = LAYER_INDEX_BLOCK_SIZE_DEFAULT; 64 .. 1 MiB */
    bool uncompressed;         /* every value stored raw (image_compression "disabled") */
} LayerWriterOptions;

/* layer_writer_options: the options a tenant's image_compression asks for: "disabled" stores
 * values raw, "zstd" is zstd's own default level (3), "zstd(N)" level N (0 meaning that default
 * too, as zstd reads it). */
LayerWriterOptions layer_writer_options(ImageCompression c);

typedef struct LayerWriter LayerWriter;

/* layer_writer_new: start writing the layer desc describes to path. The bytes go to a temporary
 * "<path>.tmp.<pid>.<n>" next to it; nothing appears at path before layer_writer_finish. Only
 * image layers can be written yet (delta: ERR_BAD_REQUEST). opts may be NULL. The writer is
 * released by layer_writer_finish or layer_writer_abort. */
bool layer_writer_new(const char *path, const LayerDesc *desc, const LayerWriterOptions *opts,
                      LayerWriter **out, Err *err) MUST_CHECK;

/* layer_writer_add: append the value of key. Keys must be strictly ascending and inside the key
 * range; a value is at most LAYER_VALUE_MAX bytes. Such misuse fails with ERR_BAD_REQUEST and
 * leaves the writer usable (the call had no effect). An I/O failure (ERR_INTERNAL) poisons the
 * writer: later calls fail, and the caller must abort it. The value is compressed and written
 * at once; the writer keeps only a 30-byte index entry per key in memory. */
bool layer_writer_add(LayerWriter *w, const Key *key, const void *value, size_t len,
                      Err *err) MUST_CHECK;

/* layer_writer_finish: write the index and the footer, fsync, rename into place, fsync the
 * directory, and fill *out (may be NULL). Frees the writer whatever the outcome; on failure the
 * temporary file is removed and path is untouched. A layer with no entries is valid. */
bool layer_writer_finish(LayerWriter *w, LayerInfo *out, Err *err) MUST_CHECK;

/* layer_writer_abort: remove the temporary file and free the writer (NULL is fine). */
void layer_writer_abort(LayerWriter *w);

/* ---- reading ---- */

/* LayerReadFn: read exactly len bytes at offset into buf; anything short is an error. Called
 * concurrently from every thread that uses the reader. */
typedef bool (*LayerReadFn)(void *ctx, uint64_t offset, size_t len, void *buf, Err *err);

typedef struct LayerReader LayerReader;

/* layer_reader_open: validate the footer and load the top-level index (2 reads). label names the
 * layer in error messages (a path or remote key; copied; NULL = "layer"). ctx must outlive the
 * reader. Corruption or an unknown format version fails with ERR_INTERNAL and a message that
 * says which. The reader is immutable: any number of threads may use it at once. Free it with
 * layer_reader_free. */
bool layer_reader_open(LayerReadFn read, void *ctx, uint64_t file_size, const char *label,
                       LayerReader **out, Err *err) MUST_CHECK;
void layer_reader_free(LayerReader *r);

/* layer_reader_info: kind, ranges, entry count and file size from the footer. */
void layer_reader_info(const LayerReader *r, LayerInfo *out);

/* layer_reader_get: the value of key. Absent (outside the range, between or around the stored
 * keys) is success with *found false. Otherwise *value is a new buffer of *len bytes the caller
 * frees with free(). At most 2 reads. A checksum mismatch or other corruption fails with
 * ERR_INTERNAL ("checksum mismatch" with the layer and offset) and never returns the data. */
bool layer_reader_get(const LayerReader *r, const Key *key, void **value, size_t *len, bool *found,
                      Err *err) MUST_CHECK;

struct PageCache;
/* layer_reader_get_cached: layer_reader_get through a page cache (page_cache.h; NULL: none): a
 * value this reader read and verified before is copied from the cache (no read, checksum or
 * decompression); a value read from the file is cached once verified. The cache key is this
 * reader's own owner number and the value's offset: another reader (another file, or the same
 * file opened again) never sees its entries. */
bool layer_reader_get_cached(const LayerReader *r, struct PageCache *pc, const Key *key,
                             void **value, size_t *len, bool *found, Err *err) MUST_CHECK;

/* layer_reader_get_in_memory: layer_reader_get_cached without any read: when the lookup needs an
 * index block not read before or a value the cache does not hold, *in_memory is false and nothing
 * is returned (success, *found false). Otherwise *in_memory is true and the result is
 * layer_reader_get_cached's. No blocking I/O and no decompression: callable from an event loop. */
bool layer_reader_get_in_memory(const LayerReader *r, struct PageCache *pc, const Key *key,
                                void **value, size_t *len, bool *found, bool *in_memory,
                                Err *err) MUST_CHECK;

/* LayerVisitFn: called once per entry in key order; value is valid only during the call.
 * Returning false stops the iteration, which then fails with the callback's err. */
typedef bool (*LayerVisitFn)(void *arg, const Key *key, const void *value, size_t len, Err *err);

/* layer_reader_iter: visit every entry in key order, verifying every checksum on the way (one
 * read per index block and per value). */
bool layer_reader_iter(const LayerReader *r, LayerVisitFn visit, void *arg, Err *err) MUST_CHECK;

/* ---- read sources ---- */

/* LayerFile: a local layer file opened for pread. */
typedef struct LayerFile LayerFile;

/* layer_file_open: open path read-only (absent: ERR_NOT_FOUND). Close with layer_file_close. */
bool layer_file_open(const char *path, LayerFile **out, Err *err) MUST_CHECK;
uint64_t layer_file_size(const LayerFile *f);
/* layer_file_read: a LayerReadFn; ctx is the LayerFile. */
bool layer_file_read(void *ctx, uint64_t offset, size_t len, void *buf, Err *err) MUST_CHECK;
void layer_file_close(LayerFile *f);

/* layer_reader_open_file: open a local layer file; the reader owns the file and closes it in
 * layer_reader_free. */
bool layer_reader_open_file(const char *path, LayerReader **out, Err *err) MUST_CHECK;

/* LayerRemoteObject: a remote object as a read source (caller's storage; rs and key must outlive
 * the reader). The file size comes from remote_head. */
typedef struct LayerRemoteObject {
    RemoteStorage *rs;
    const char *key;
} LayerRemoteObject;

/* layer_remote_read: a LayerReadFn over remote_get_range; ctx is a LayerRemoteObject. */
bool layer_remote_read(void *ctx, uint64_t offset, size_t len, void *buf, Err *err) MUST_CHECK;

#endif
