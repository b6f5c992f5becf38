/*
 * tar.h: POSIX ustar archives, written and read as streams, with zstd compression (and gzip
 * output for basebackups).
 *
 * Two users: a bootstrap timeline stores its initdb result as initdb.tar.zst in remote storage
 * so every shard imports identical content, and the page service streams a basebackup tar to a
 * client. Neither may hold a whole archive in memory, so everything here is a stream: the writer
 * pushes bytes into a TarWriteFn sink, the reader pulls bytes from a TarReadFn source, and the
 * zstd encoder/decoder are themselves a sink and a source that can be chained in between.
 *
 * Determinism: for the same calls the writer produces the same bytes (uid/gid 0, empty
 * uname/gname, entries in the order given). tar_zst_create_from_dir also fixes mtime to 0 and
 * walks in bytewise-sorted order. The compressed bytes are deterministic for one zstd library
 * version and level (single-threaded compression).
 *
 * The reader treats its input as untrusted (it may come from remote storage): checksums are
 * verified, names that are absolute or contain ".." are refused, only regular files and
 * directories are accepted, and the entry count and total data size are capped. Malformed,
 * truncated or corrupt input is ERR_BAD_REQUEST; exceeding a cap is ERR_PAYLOAD_TOO_LARGE.
 *
 * All of this blocks (I/O, compression): use it on a worker thread, never on an event loop.
 */
#ifndef SHARED_TAR_H
#define SHARED_TAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

/* Longest entry name the writer accepts (directories: without their trailing '/'). */
#define TAR_NAME_MAX 255
/* Largest entry size ustar's 11 octal digits can hold (8 GiB - 1). */
#define TAR_SIZE_MAX 077777777777ULL
/* Largest mtime ustar's 11 octal digits can hold. */
#define TAR_MTIME_MAX 077777777777LL

#define TAR_DEFAULT_MAX_TOTAL_BYTES (8ULL << 30)
#define TAR_DEFAULT_MAX_ENTRIES     1000000ULL
#define TAR_DEFAULT_ZSTD_LEVEL      3

/* TarWriteFn: a sink taking all of data[len]; false with err set on failure. */
typedef bool (*TarWriteFn)(void *ctx, const void *data, size_t len, Err *err);

/* TarReadFn: a source filling buf with 1..cap bytes into *got, or *got = 0 at the end of input;
 * false with err set on failure. */
typedef bool (*TarReadFn)(void *ctx, void *buf, size_t cap, size_t *got, Err *err);

/* tar_fd_write / tar_fd_read: a sink and a source over a file descriptor; ctx points to an int
 * holding the descriptor. I/O errors are ERR_INTERNAL. */
bool tar_fd_write(void *ctx, const void *data, size_t len, Err *err) MUST_CHECK;
bool tar_fd_read(void *ctx, void *buf, size_t cap, size_t *got, Err *err) MUST_CHECK;

/* ---- writer ---- */

/* TarWriter: a ustar writer in the caller's storage (fields are private). A rejected call (bad
 * name, calls out of order, wrong amount of data) writes nothing and leaves the writer as it was;
 * after a sink failure the writer refuses every further call: the archive is incomplete. */
typedef struct TarWriter {
    TarWriteFn write;
    void *ctx;
    uint64_t bytes_out; /* bytes handed to the sink so far */
    uint64_t remaining; /* data bytes still owed to the entry begun by add_file_stream */
    uint64_t pad;       /* padding owed after that entry's data */
    bool in_entry;      /* add_file_stream called, end_file not yet */
    bool failed;
    bool finished;
    char entry_name[TAR_NAME_MAX + 2];
} TarWriter;

/* tar_writer_init: start an archive that writes to write(ctx, ...). Nothing is written yet. */
void tar_writer_init(TarWriter *w, TarWriteFn write, void *ctx);

/* tar_writer_add_file: a regular file with all its data. mode keeps its low 12 bits; mtime in
 * seconds since the epoch, 0..TAR_MTIME_MAX. A name must be relative, without "." or ".."
 * components or empty ones, at most TAR_NAME_MAX bytes and splittable into ustar's prefix (155)
 * and name (100) fields; otherwise ERR_BAD_REQUEST. Sink errors are returned as they are. */
bool tar_writer_add_file(TarWriter *w, const char *name, unsigned mode, int64_t mtime,
                         const void *data, size_t len, Err *err) MUST_CHECK;

/* tar_writer_add_dir: a directory entry. The stored name gets a trailing '/' unless only the name
 * without it fits ustar's fields (POSIX makes the '/' optional; the typeflag says "directory"). */
bool tar_writer_add_dir(TarWriter *w, const char *name, unsigned mode, int64_t mtime,
                        Err *err) MUST_CHECK;

/* tar_writer_add_file_stream: the header of a regular file of exactly size bytes
 * (<= TAR_SIZE_MAX); supply the data with tar_writer_write_data in any number of pieces, then call
 * tar_writer_end_file. */
bool tar_writer_add_file_stream(TarWriter *w, const char *name, unsigned mode, int64_t mtime,
                                uint64_t size, Err *err) MUST_CHECK;
/* tar_writer_write_data: more data of the streamed entry; more than announced is ERR_INTERNAL. */
bool tar_writer_write_data(TarWriter *w, const void *data, size_t len, Err *err) MUST_CHECK;
/* tar_writer_end_file: close the streamed entry (pads to 512); less than announced is
 * ERR_INTERNAL. */
bool tar_writer_end_file(TarWriter *w, Err *err) MUST_CHECK;

/* tar_writer_finish: write the end-of-archive marker (two zero blocks). It does not finish or
 * close the sink (e.g. call tar_zstd_encoder_finish afterwards). */
bool tar_writer_finish(TarWriter *w, Err *err) MUST_CHECK;

/* ---- zstd ---- */

/* TarZstdEncoder: a TarWriteFn sink (tar_zstd_encoder_write, ctx = the encoder) that compresses
 * into another sink. Compressed frames carry a content checksum. */
typedef struct TarZstdEncoder TarZstdEncoder;

/* tar_zstd_encoder_new: level 1..19 (TAR_DEFAULT_ZSTD_LEVEL is a good default); the caller frees
 * the result with tar_zstd_encoder_free. ERR_INTERNAL if zstd rejects the level. */
bool tar_zstd_encoder_new(int level, TarWriteFn sink, void *sink_ctx, TarZstdEncoder **out,
                          Err *err) MUST_CHECK;
bool tar_zstd_encoder_write(void *encoder, const void *data, size_t len, Err *err) MUST_CHECK;
/* tar_zstd_encoder_finish: end the frame and flush everything into the sink. */
bool tar_zstd_encoder_finish(TarZstdEncoder *enc, Err *err) MUST_CHECK;
void tar_zstd_encoder_free(TarZstdEncoder *enc);

/* TarGzipEncoder: a TarWriteFn sink (tar_gzip_encoder_write, ctx = the encoder) writing one gzip
 * member (RFC 1952, zlib's deflate) into another sink: the page service's `basebackup --gzip`,
 * which Postgres tools (pg_basebackup, tar -z) read. The header carries no name and mtime 0, so
 * the output depends only on the input, the level and the zlib version. */
typedef struct TarGzipEncoder TarGzipEncoder;

/* tar_gzip_encoder_new: level 1..9; the caller frees the result with tar_gzip_encoder_free. */
bool tar_gzip_encoder_new(int level, TarWriteFn sink, void *sink_ctx, TarGzipEncoder **out,
                          Err *err) MUST_CHECK;
bool tar_gzip_encoder_write(void *encoder, const void *data, size_t len, Err *err) MUST_CHECK;
/* tar_gzip_encoder_finish: end the member (CRC-32 and size trailer) and flush into the sink. */
bool tar_gzip_encoder_finish(TarGzipEncoder *enc, Err *err) MUST_CHECK;
void tar_gzip_encoder_free(TarGzipEncoder *enc);

/* TarZstdDecoder: a TarReadFn source (tar_zstd_decoder_read, ctx = the decoder) decompressing
 * another source. Corrupt data, a checksum mismatch, input that is empty or ends inside a frame
 * are ERR_BAD_REQUEST. Concatenated frames are read as one stream. */
typedef struct TarZstdDecoder TarZstdDecoder;

/* tar_zstd_decoder_new: the caller frees the result with tar_zstd_decoder_free. */
TarZstdDecoder *tar_zstd_decoder_new(TarReadFn source, void *source_ctx);
bool tar_zstd_decoder_read(void *decoder, void *buf, size_t cap, size_t *got, Err *err) MUST_CHECK;
void tar_zstd_decoder_free(TarZstdDecoder *dec);

/* ---- reader ---- */

typedef enum TarEntryType { TAR_ENTRY_FILE, TAR_ENTRY_DIR, TAR_ENTRY_TYPE_COUNT } TarEntryType;

/* TarEntry: one archive member. name is normalised: relative, no trailing '/', no "." or empty
 * components (a leading "./" is dropped; the "." entry itself is skipped). */
typedef struct TarEntry {
    char name[TAR_NAME_MAX + 2];
    TarEntryType type;
    unsigned mode; /* low 12 bits */
    int64_t mtime;
    uint64_t size; /* 0 for directories */
} TarEntry;

/* TarLimits: caps on untrusted archives; a zero field means its default. */
typedef struct TarLimits {
    uint64_t max_total_bytes; /* sum of entry sizes (default 8 GiB) */
    uint64_t max_entries;     /* headers (default 1,000,000) */
} TarLimits;

typedef struct TarReader TarReader;

/* tar_reader_new: read an archive from source; limits NULL means the defaults. The caller frees
 * the result with tar_reader_free (which does not touch the source). */
TarReader *tar_reader_new(TarReadFn source, void *source_ctx, const TarLimits *limits);
void tar_reader_free(TarReader *r);

/* tar_reader_next: the next entry into *entry, skipping whatever of the previous entry's data
 * was not read; *end = true (entry untouched) after the end-of-archive marker, at which point the
 * rest of the source has been read to its end (so a decoder source verifies its frame; at most
 * 1 MiB may follow the marker). Input ending without the marker is a truncated archive
 * (ERR_BAD_REQUEST). */
bool tar_reader_next(TarReader *r, TarEntry *entry, bool *end, Err *err) MUST_CHECK;

/* tar_reader_read_data: up to cap bytes of the current entry's data into buf; *got = 0 once the
 * entry's data is exhausted. Data cut short by the end of input is ERR_BAD_REQUEST. */
bool tar_reader_read_data(TarReader *r, void *buf, size_t cap, size_t *got, Err *err) MUST_CHECK;

/* TarEntryFn: called per entry; may read the entry's data with tar_reader_read_data (or not).
 * Returning false (with err set) stops the iteration with that error. */
typedef bool (*TarEntryFn)(void *ctx, TarReader *r, const TarEntry *entry, Err *err);

/* tar_reader_foreach: call fn for every remaining entry until the end of the archive. */
bool tar_reader_foreach(TarReader *r, TarEntryFn fn, void *ctx, Err *err) MUST_CHECK;

/* tar_reader_extract_to_dir: extract every remaining entry under dest_dir, which must be empty or
 * absent (else ERR_CONFLICT; absent is created with its parents). Missing parent directories of
 * an entry are created; directory modes are applied at the end; mtimes are not restored and
 * nothing is fsynced (the tree is an input to import, not durable state). Paths are opened
 * relative to dest_dir without following symlinks, so nothing is written outside it. On failure
 * whatever was extracted is removed again. */
bool tar_reader_extract_to_dir(TarReader *r, const char *dest_dir, Err *err) MUST_CHECK;

/* ---- whole-archive convenience ---- */

/* tar_zst_create_from_dir: archive the tree under dir (not dir itself) as out_path (.tar.zst):
 * bytewise-sorted pre-order walk, regular files and directories only (symlinks, devices, fifos
 * and sockets are ERR_BAD_REQUEST naming the path), mode from the file, mtime 0. Written to a
 * temporary name, fsynced and renamed, then the directory is fsynced; on failure nothing is left
 * behind. out_path must not lie inside dir. */
bool tar_zst_create_from_dir(const char *dir, const char *out_path, Err *err) MUST_CHECK;

/* tar_zst_extract_to_dir: decompress and extract the .tar.zst at path into dest_dir with the
 * default limits (see tar_reader_extract_to_dir). A missing archive is ERR_NOT_FOUND. */
bool tar_zst_extract_to_dir(const char *path, const char *dest_dir, Err *err) MUST_CHECK;

#endif
