/*
 * tar.c: ustar writer and hardened reader, zstd stream wrappers, and directory <-> .tar.zst.
 *
 * Header layout (POSIX ustar, 512-byte blocks): name[100] mode[8] uid[8] gid[8] size[12]
 * mtime[12] chksum[8] typeflag[1] linkname[100] magic[6] version[2] uname[32] gname[32]
 * devmajor[8] devminor[8] prefix[155]. Numbers are zero-padded octal ending in NUL; the checksum
 * is the sum of the header bytes with the checksum field counted as spaces. The reader also
 * accepts GNU's "ustar  " magic (whose prefix field means something else, so it is ignored),
 * base-256 numbers, and the signed checksum some old writers computed.
 */
#include "shared/tar.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>
#include <zstd.h>

#include "shared/fsutil.h"
#include "shared/log.h"
#include "shared/str.h"

#define TAR_BLOCK        512
#define TAR_IO_CHUNK     (64 * 1024)
#define NAME_FIELD       100
#define PREFIX_FIELD     155
#define OFF_NAME         0
#define OFF_MODE         100
#define OFF_UID          108
#define OFF_GID          116
#define OFF_SIZE         124
#define OFF_MTIME        136
#define OFF_CHKSUM       148
#define OFF_TYPE         156
#define OFF_MAGIC        257
#define OFF_VERSION      263
#define OFF_DEVMAJOR     329
#define OFF_DEVMINOR     337
#define OFF_PREFIX       345
#define MSG_NAME_MAX     (TAR_NAME_MAX + 2)
#define ZSTD_LEVEL_MIN   1
#define ZSTD_LEVEL_MAX   19
#define TAR_TRAILING_MAX (1024 * 1024)
/* zstd's own default decoder limit (ZSTD_WINDOWLOG_LIMIT_DEFAULT, static-linking API only) */
#define TAR_ZSTD_WINDOW_LOG_MAX 27

static const unsigned char ZERO_BLOCKS[2 * TAR_BLOCK];

static _Atomic unsigned long g_tmp_seq;

/* errno_text: strerror for worker threads (strerror itself may share one buffer). */
static const char *errno_text(int e)
{
    static _Thread_local char buf[128];
    return strerror_r(e, buf, sizeof(buf));
}

/* printable: a copy of an (untrusted) name safe to put in an error message or a log line. */
static const char *printable(const char *name, char out[MSG_NAME_MAX])
{
    size_t i = 0;
    for (; name[i] != '\0' && i + 1 < MSG_NAME_MAX; i++) {
        unsigned char c = (unsigned char)name[i];
        out[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    out[i] = '\0';
    return out;
}

bool tar_fd_write(void *ctx, const void *data, size_t len, Err *err)
{
    int fd = *(int *)ctx;
    if (!fs_write_all(fd, data, len)) {
        err_set(err, ERR_INTERNAL, "write failed: %s", errno_text(errno));
        return false;
    }
    return true;
}

bool tar_fd_read(void *ctx, void *buf, size_t cap, size_t *got, Err *err)
{
    int fd = *(int *)ctx;
    for (;;) {
        ssize_t r = read(fd, buf, cap);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            err_set(err, ERR_INTERNAL, "read failed: %s", errno_text(errno));
            return false;
        }
        *got = (size_t)r;
        return true;
    }
}

/* ---- writer ---- */

void tar_writer_init(TarWriter *w, TarWriteFn write, void *ctx)
{
    memset(w, 0, sizeof(*w));
    w->write = write;
    w->ctx = ctx;
}

/* name_check: the writer stores only names the reader would accept back unchanged: relative,
 * no empty, "." or ".." components, at most TAR_NAME_MAX bytes. */
static bool name_check(const char *name, Err *err)
{
    char shown[MSG_NAME_MAX];
    size_t len = strlen(name);
    if (len == 0) {
        err_set(err, ERR_BAD_REQUEST, "tar entry name is empty");
        return false;
    }
    if (len > TAR_NAME_MAX) {
        err_set(err, ERR_BAD_REQUEST,
                "tar entry name \"%.64s...\" is %zu bytes, over the limit of %d",
                printable(name, shown), len, TAR_NAME_MAX);
        return false;
    }
    if (name[0] == '/') {
        err_set(err, ERR_BAD_REQUEST, "tar entry name \"%s\" is absolute", printable(name, shown));
        return false;
    }
    const char *comp = name;
    for (;;) {
        const char *slash = strchr(comp, '/');
        size_t n = slash != NULL ? (size_t)(slash - comp) : strlen(comp);
        if (n == 0 || (n == 1 && comp[0] == '.') || (n == 2 && comp[0] == '.' && comp[1] == '.')) {
            err_set(err, ERR_BAD_REQUEST,
                    "tar entry name \"%s\" has an empty, \".\" or \"..\" component",
                    printable(name, shown));
            return false;
        }
        if (slash == NULL)
            break;
        comp = slash + 1;
    }
    return true;
}

/* put_octal: value as zero-padded octal filling a field of n bytes, NUL-terminated. The caller
 * has checked that it fits. */
static void put_octal(unsigned char *field, size_t n, uint64_t value)
{
    char tmp[24];
    snprintf(tmp, sizeof(tmp), "%0*" PRIo64, (int)(n - 1), value);
    memcpy(field, tmp, n - 1);
    field[n - 1] = '\0';
}

/* header_checksum_unsigned: the ustar checksum with the checksum field counted as spaces. */
static uint64_t header_checksum_unsigned(const unsigned char *h)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < TAR_BLOCK; i++)
        sum += (i >= OFF_CHKSUM && i < OFF_CHKSUM + 8) ? (unsigned char)' ' : h[i];
    return sum;
}

/* header_build: a ustar header for stored (a directory's name already ends in '/'). A name over
 * 100 bytes is split at the leftmost '/' that leaves at most 100 bytes for the name field; if
 * the prefix is then over 155 bytes, no split can work (any later '/' gives a longer prefix). */
static bool header_build(unsigned char h[TAR_BLOCK], const char *stored, char type, unsigned mode,
                         int64_t mtime, uint64_t size, Err *err)
{
    char shown[MSG_NAME_MAX];
    memset(h, 0, TAR_BLOCK);
    size_t len = strlen(stored);
    const char *base = stored;
    size_t prefix_len = 0;
    if (len > NAME_FIELD) {
        size_t i = 1;
        for (; i + 1 < len; i++) {
            if (stored[i] == '/' && len - i - 1 <= NAME_FIELD)
                break;
        }
        if (i + 1 >= len || i > PREFIX_FIELD) {
            err_set(err, ERR_BAD_REQUEST,
                    "tar entry name \"%s\" cannot be stored in ustar: no '/' splits it into a "
                    "prefix of at most 155 and a name of at most 100 bytes",
                    printable(stored, shown));
            return false;
        }
        prefix_len = i;
        base = stored + i + 1;
    }
    memcpy(h + OFF_NAME, base, strlen(base)); /* exactly 100 bytes has no NUL, as ustar allows */
    memcpy(h + OFF_PREFIX, stored, prefix_len);
    put_octal(h + OFF_MODE, 8, mode & 07777);
    put_octal(h + OFF_UID, 8, 0);
    put_octal(h + OFF_GID, 8, 0);
    put_octal(h + OFF_SIZE, 12, size);
    put_octal(h + OFF_MTIME, 12, (uint64_t)mtime);
    h[OFF_TYPE] = (unsigned char)type;
    memcpy(h + OFF_MAGIC, "ustar", 6); /* with its NUL */
    memcpy(h + OFF_VERSION, "00", 2);
    put_octal(h + OFF_DEVMAJOR, 8, 0);
    put_octal(h + OFF_DEVMINOR, 8, 0);
    char sum[8];
    snprintf(sum, sizeof(sum), "%06" PRIo64, header_checksum_unsigned(h));
    memcpy(h + OFF_CHKSUM, sum, 6);
    h[OFF_CHKSUM + 6] = '\0';
    h[OFF_CHKSUM + 7] = ' ';
    return true;
}

/* writer_usable: a finished or broken writer takes no more calls. */
static bool writer_usable(const TarWriter *w, Err *err)
{
    if (w->failed) {
        err_set(err, ERR_INTERNAL, "tar writer failed earlier; the archive is incomplete");
        return false;
    }
    if (w->finished) {
        err_set(err, ERR_INTERNAL, "tar archive is already finished");
        return false;
    }
    return true;
}

/* writer_emit: hand bytes to the sink; a sink failure breaks the writer for good, since the
 * sink may have taken part of the bytes. */
static bool writer_emit(TarWriter *w, const void *data, size_t len, Err *err)
{
    if (len == 0)
        return true;
    if (!w->write(w->ctx, data, len, err)) {
        w->failed = true;
        return false;
    }
    w->bytes_out += len;
    return true;
}

/* writer_entry_header: validate and write one header; nothing is written when validation fails. */
static bool writer_entry_header(TarWriter *w, const char *name, bool dir, unsigned mode,
                                int64_t mtime, uint64_t size, Err *err)
{
    char shown[MSG_NAME_MAX];
    if (!writer_usable(w, err))
        return false;
    if (w->in_entry) {
        err_set(err, ERR_INTERNAL, "tar entry \"%s\" is not finished (%" PRIu64 " bytes owed)",
                printable(w->entry_name, shown), w->remaining);
        return false;
    }
    char stored[TAR_NAME_MAX + 2];
    if (!str_copy(stored, sizeof(stored), name)) {
        err_set(err, ERR_BAD_REQUEST, "tar entry name \"%.64s...\" is over the limit of %d bytes",
                printable(name, shown), TAR_NAME_MAX);
        return false;
    }
    size_t len = strlen(stored);
    if (dir) {
        while (len > 1 && stored[len - 1] == '/')
            stored[--len] = '\0';
    }
    if (!name_check(stored, err))
        return false;
    if (mtime < 0 || mtime > TAR_MTIME_MAX) {
        err_set(err, ERR_BAD_REQUEST, "tar entry \"%s\": mtime %" PRId64 " out of range",
                printable(stored, shown), mtime);
        return false;
    }
    if (size > TAR_SIZE_MAX) {
        err_set(err, ERR_PAYLOAD_TOO_LARGE,
                "tar entry \"%s\": %" PRIu64 " bytes is over the ustar limit of %llu",
                printable(stored, shown), size, TAR_SIZE_MAX);
        return false;
    }
    unsigned char h[TAR_BLOCK];
    bool built = false;
    if (dir) {
        /* POSIX makes the trailing '/' of a directory optional (the typeflag says it all); drop
         * it only when the name does not fit otherwise, so the choice stays deterministic */
        stored[len] = '/';
        stored[len + 1] = '\0';
        built = header_build(h, stored, '5', mode, mtime, size, NULL);
        stored[len] = '\0';
    }
    if (!built && !header_build(h, stored, dir ? '5' : '0', mode, mtime, size, err))
        return false;
    if (!writer_emit(w, h, sizeof(h), err))
        return false;
    str_copy(w->entry_name, sizeof(w->entry_name), stored);
    return true;
}

bool tar_writer_add_dir(TarWriter *w, const char *name, unsigned mode, int64_t mtime, Err *err)
{
    return writer_entry_header(w, name, true, mode, mtime, 0, err);
}

bool tar_writer_add_file_stream(TarWriter *w, const char *name, unsigned mode, int64_t mtime,
                                uint64_t size, Err *err)
{
    if (!writer_entry_header(w, name, false, mode, mtime, size, err))
        return false;
    w->in_entry = true;
    w->remaining = size;
    w->pad = (TAR_BLOCK - size % TAR_BLOCK) % TAR_BLOCK;
    return true;
}

bool tar_writer_write_data(TarWriter *w, const void *data, size_t len, Err *err)
{
    char shown[MSG_NAME_MAX];
    if (!writer_usable(w, err))
        return false;
    if (!w->in_entry) {
        err_set(err, ERR_INTERNAL, "tar data written outside a streamed entry");
        return false;
    }
    if ((uint64_t)len > w->remaining) {
        err_set(err, ERR_INTERNAL,
                "tar entry \"%s\": %zu bytes given but only %" PRIu64 " more were announced",
                printable(w->entry_name, shown), len, w->remaining);
        return false;
    }
    if (!writer_emit(w, data, len, err))
        return false;
    w->remaining -= len;
    return true;
}

bool tar_writer_end_file(TarWriter *w, Err *err)
{
    char shown[MSG_NAME_MAX];
    if (!writer_usable(w, err))
        return false;
    if (!w->in_entry) {
        err_set(err, ERR_INTERNAL, "tar_writer_end_file without a streamed entry");
        return false;
    }
    if (w->remaining > 0) {
        err_set(err, ERR_INTERNAL, "tar entry \"%s\": %" PRIu64 " bytes of data are missing",
                printable(w->entry_name, shown), w->remaining);
        return false;
    }
    if (!writer_emit(w, ZERO_BLOCKS, (size_t)w->pad, err))
        return false;
    w->in_entry = false;
    w->pad = 0;
    return true;
}

bool tar_writer_add_file(TarWriter *w, const char *name, unsigned mode, int64_t mtime,
                         const void *data, size_t len, Err *err)
{
    return tar_writer_add_file_stream(w, name, mode, mtime, (uint64_t)len, err) &&
           tar_writer_write_data(w, data, len, err) && tar_writer_end_file(w, err);
}

bool tar_writer_finish(TarWriter *w, Err *err)
{
    char shown[MSG_NAME_MAX];
    if (!writer_usable(w, err))
        return false;
    if (w->in_entry) {
        err_set(err, ERR_INTERNAL, "tar entry \"%s\" is not finished",
                printable(w->entry_name, shown));
        return false;
    }
    if (!writer_emit(w, ZERO_BLOCKS, sizeof(ZERO_BLOCKS), err))
        return false;
    w->finished = true;
    return true;
}

/* ---- zstd ---- */

struct TarZstdEncoder {
    ZSTD_CCtx *cctx;
    TarWriteFn sink;
    void *sink_ctx;
    void *out;
    size_t out_cap;
    bool failed;
};

/* tar_zstd_encoder_new: single-threaded (nbWorkers 0) so the output depends only on the input,
 * the level and the library version; a content checksum lets the reader detect corruption. */
bool tar_zstd_encoder_new(int level, TarWriteFn sink, void *sink_ctx, TarZstdEncoder **out,
                          Err *err)
{
    if (level < ZSTD_LEVEL_MIN || level > ZSTD_LEVEL_MAX) {
        err_set(err, ERR_INTERNAL, "zstd level %d outside %d..%d", level, ZSTD_LEVEL_MIN,
                ZSTD_LEVEL_MAX);
        return false;
    }
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    if (cctx == NULL) {
        err_set(err, ERR_INTERNAL, "cannot create a zstd compression context");
        return false;
    }
    size_t rc = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
    if (!ZSTD_isError(rc))
        rc = ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
    if (!ZSTD_isError(rc))
        rc = ZSTD_CCtx_setParameter(cctx, ZSTD_c_nbWorkers, 0);
    if (ZSTD_isError(rc)) {
        err_set(err, ERR_INTERNAL, "cannot configure zstd: %s", ZSTD_getErrorName(rc));
        ZSTD_freeCCtx(cctx);
        return false;
    }
    TarZstdEncoder *enc = xcalloc(1, sizeof(*enc));
    enc->cctx = cctx;
    enc->sink = sink;
    enc->sink_ctx = sink_ctx;
    enc->out_cap = ZSTD_CStreamOutSize();
    enc->out = xmalloc(enc->out_cap);
    *out = enc;
    return true;
}

/* encoder_drive: run the compressor over in with the given directive, passing every produced
 * byte on; e_continue stops once the input is consumed, e_end once the frame is fully flushed. */
static bool encoder_drive(TarZstdEncoder *enc, ZSTD_inBuffer *in, ZSTD_EndDirective mode, Err *err)
{
    if (enc->failed) {
        err_set(err, ERR_INTERNAL, "zstd encoder failed earlier; the output is incomplete");
        return false;
    }
    for (;;) {
        ZSTD_outBuffer out = {enc->out, enc->out_cap, 0};
        size_t left = ZSTD_compressStream2(enc->cctx, &out, in, mode);
        if (ZSTD_isError(left)) {
            err_set(err, ERR_INTERNAL, "zstd compression failed: %s", ZSTD_getErrorName(left));
            enc->failed = true;
            return false;
        }
        if (out.pos > 0 && !enc->sink(enc->sink_ctx, enc->out, out.pos, err)) {
            enc->failed = true;
            return false;
        }
        if (mode == ZSTD_e_end ? left == 0 : in->pos == in->size)
            return true;
    }
}

bool tar_zstd_encoder_write(void *encoder, const void *data, size_t len, Err *err)
{
    ZSTD_inBuffer in = {data, len, 0};
    return encoder_drive(encoder, &in, ZSTD_e_continue, err);
}

bool tar_zstd_encoder_finish(TarZstdEncoder *enc, Err *err)
{
    ZSTD_inBuffer in = {NULL, 0, 0};
    return encoder_drive(enc, &in, ZSTD_e_end, err);
}

void tar_zstd_encoder_free(TarZstdEncoder *enc)
{
    if (enc == NULL)
        return;
    ZSTD_freeCCtx(enc->cctx);
    free(enc->out);
    free(enc);
}

/* ---- gzip ---- */

#define GZIP_WINDOW_BITS (15 + 16) /* 32 KiB window, gzip wrapper */
#define GZIP_MEM_LEVEL   8
#define GZIP_OUT_CHUNK   (64u * 1024)

struct TarGzipEncoder {
    z_stream zs;
    TarWriteFn sink;
    void *sink_ctx;
    unsigned char out[GZIP_OUT_CHUNK];
    bool failed;
};

bool tar_gzip_encoder_new(int level, TarWriteFn sink, void *sink_ctx, TarGzipEncoder **out,
                          Err *err)
{
    if (level < Z_BEST_SPEED || level > Z_BEST_COMPRESSION) {
        err_set(err, ERR_INTERNAL, "gzip level %d outside %d..%d", level, Z_BEST_SPEED,
                Z_BEST_COMPRESSION);
        return false;
    }
    TarGzipEncoder *enc = xcalloc(1, sizeof(*enc));
    int rc = deflateInit2(&enc->zs, level, Z_DEFLATED, GZIP_WINDOW_BITS, GZIP_MEM_LEVEL,
                          Z_DEFAULT_STRATEGY);
    if (rc != Z_OK) {
        err_set(err, ERR_INTERNAL, "cannot create a gzip compressor: zlib error %d", rc);
        free(enc);
        return false;
    }
    enc->sink = sink;
    enc->sink_ctx = sink_ctx;
    *out = enc;
    return true;
}

/* gzip_drive: deflate what zs holds with flush, handing every full output buffer to the sink. */
static bool gzip_drive(TarGzipEncoder *enc, int flush, Err *err)
{
    if (enc->failed) {
        err_set(err, ERR_INTERNAL, "gzip stream already failed");
        return false;
    }
    for (;;) {
        enc->zs.next_out = enc->out;
        enc->zs.avail_out = sizeof(enc->out);
        int rc = deflate(&enc->zs, flush);
        if (rc == Z_STREAM_ERROR) {
            enc->failed = true;
            err_set(err, ERR_INTERNAL, "gzip compression failed");
            return false;
        }
        size_t n = sizeof(enc->out) - enc->zs.avail_out;
        if (n > 0 && !enc->sink(enc->sink_ctx, enc->out, n, err)) {
            enc->failed = true;
            return false;
        }
        if (flush == Z_FINISH ? rc == Z_STREAM_END
                              : enc->zs.avail_in == 0 && enc->zs.avail_out != 0)
            return true;
    }
}

bool tar_gzip_encoder_write(void *encoder, const void *data, size_t len, Err *err)
{
    TarGzipEncoder *enc = encoder;
    const unsigned char *p = data;
    while (len > 0) { /* avail_in is a uInt */
        uInt chunk = len > UINT32_MAX ? UINT32_MAX : (uInt)len;
        enc->zs.next_in = (unsigned char *)(uintptr_t)p;
        enc->zs.avail_in = chunk;
        if (!gzip_drive(enc, Z_NO_FLUSH, err))
            return false;
        p += chunk;
        len -= chunk;
    }
    return true;
}

bool tar_gzip_encoder_finish(TarGzipEncoder *enc, Err *err)
{
    enc->zs.next_in = NULL;
    enc->zs.avail_in = 0;
    return gzip_drive(enc, Z_FINISH, err);
}

void tar_gzip_encoder_free(TarGzipEncoder *enc)
{
    if (enc == NULL)
        return;
    deflateEnd(&enc->zs);
    free(enc);
}

struct TarZstdDecoder {
    ZSTD_DCtx *dctx;
    TarReadFn source;
    void *source_ctx;
    unsigned char *in_buf;
    size_t in_cap;
    ZSTD_inBuffer in;
    size_t last_ret; /* from the last call that made progress: 0 = at a frame boundary */
    bool any_input;
    bool src_eof;
    bool failed;
};

/* tar_zstd_decoder_new: the window is capped at zstd's default limit (128 MiB), so a hostile
 * frame cannot make us allocate more. */
TarZstdDecoder *tar_zstd_decoder_new(TarReadFn source, void *source_ctx)
{
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    if (dctx == NULL)
        abort(); /* only on out-of-memory, like xmalloc */
    (void)ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, TAR_ZSTD_WINDOW_LOG_MAX);
    TarZstdDecoder *dec = xcalloc(1, sizeof(*dec));
    dec->dctx = dctx;
    dec->source = source;
    dec->source_ctx = source_ctx;
    dec->in_cap = ZSTD_DStreamInSize();
    dec->in_buf = xmalloc(dec->in_cap);
    dec->in.src = dec->in_buf;
    dec->last_ret = 1;
    return dec;
}

/* tar_zstd_decoder_read: the decompressor is called even with no new input, since it may hold
 * output from an earlier call; only when it yields nothing and the input is used up do we read
 * more. At the end of the source the last frame must be complete (the last call that made
 * progress returned 0). */
bool tar_zstd_decoder_read(void *decoder, void *buf, size_t cap, size_t *got, Err *err)
{
    TarZstdDecoder *dec = decoder;
    if (dec->failed) {
        err_set(err, ERR_INTERNAL, "zstd decoder failed earlier");
        return false;
    }
    if (cap == 0) {
        err_set(err, ERR_INTERNAL, "zstd decoder read with an empty buffer");
        return false;
    }
    for (;;) {
        ZSTD_outBuffer out = {buf, cap, 0};
        size_t in_before = dec->in.pos;
        size_t ret = ZSTD_decompressStream(dec->dctx, &out, &dec->in);
        if (ZSTD_isError(ret)) {
            err_set(err, ERR_BAD_REQUEST, "corrupt zstd data: %s", ZSTD_getErrorName(ret));
            dec->failed = true;
            return false;
        }
        /* a call without progress returns the next frame's header size as its hint, which says
         * nothing about whether the last frame was complete */
        if (dec->in.pos != in_before || out.pos > 0)
            dec->last_ret = ret;
        if (out.pos > 0) {
            *got = out.pos;
            return true;
        }
        if (dec->in.pos < dec->in.size)
            continue;
        if (dec->src_eof) {
            if (!dec->any_input) {
                err_set(err, ERR_BAD_REQUEST, "empty input: not a zstd stream");
                dec->failed = true;
                return false;
            }
            if (dec->last_ret != 0) {
                err_set(err, ERR_BAD_REQUEST, "truncated zstd stream: input ends inside a frame");
                dec->failed = true;
                return false;
            }
            *got = 0;
            return true;
        }
        size_t n = 0;
        if (!dec->source(dec->source_ctx, dec->in_buf, dec->in_cap, &n, err)) {
            dec->failed = true;
            return false;
        }
        if (n == 0)
            dec->src_eof = true;
        else
            dec->any_input = true;
        dec->in.src = dec->in_buf;
        dec->in.size = n;
        dec->in.pos = 0;
    }
}

void tar_zstd_decoder_free(TarZstdDecoder *dec)
{
    if (dec == NULL)
        return;
    ZSTD_freeDCtx(dec->dctx);
    free(dec->in_buf);
    free(dec);
}

/* ---- reader ---- */

struct TarReader {
    TarReadFn source;
    void *source_ctx;
    uint64_t max_total;
    uint64_t max_entries;
    uint64_t entries;
    uint64_t total;     /* sum of entry sizes, against max_total */
    uint64_t offset;    /* archive bytes consumed, for messages */
    uint64_t remaining; /* data of the current entry not yet consumed */
    uint64_t pad;       /* padding after the current entry */
    char cur_name[TAR_NAME_MAX + 2];
    bool done;
    bool failed;
    bool src_eof;
    unsigned char *buf;
    size_t buf_pos;
    size_t buf_len;
};

TarReader *tar_reader_new(TarReadFn source, void *source_ctx, const TarLimits *limits)
{
    TarReader *r = xcalloc(1, sizeof(*r));
    r->source = source;
    r->source_ctx = source_ctx;
    r->max_total = TAR_DEFAULT_MAX_TOTAL_BYTES;
    r->max_entries = TAR_DEFAULT_MAX_ENTRIES;
    if (limits != NULL && limits->max_total_bytes != 0)
        r->max_total = limits->max_total_bytes;
    if (limits != NULL && limits->max_entries != 0)
        r->max_entries = limits->max_entries;
    r->buf = xmalloc(TAR_IO_CHUNK);
    return r;
}

void tar_reader_free(TarReader *r)
{
    if (r == NULL)
        return;
    free(r->buf);
    free(r);
}

/* reader_fill: bytes buffered, reading from the source when none are; 0 only at the end. */
static bool reader_fill(TarReader *r, size_t *avail, Err *err)
{
    if (r->buf_pos == r->buf_len && !r->src_eof) {
        size_t n = 0;
        if (!r->source(r->source_ctx, r->buf, TAR_IO_CHUNK, &n, err)) {
            r->failed = true;
            return false;
        }
        if (n > TAR_IO_CHUNK) {
            err_set(err, ERR_INTERNAL, "tar source returned more than asked");
            r->failed = true;
            return false;
        }
        r->buf_pos = 0;
        r->buf_len = n;
        if (n == 0)
            r->src_eof = true;
    }
    *avail = r->buf_len - r->buf_pos;
    return true;
}

/* reader_take: up to n bytes into dst (NULL = discard); *took < n only at the end of input. */
static bool reader_take(TarReader *r, void *dst, uint64_t n, uint64_t *took, Err *err)
{
    uint64_t done = 0;
    while (done < n) {
        size_t avail = 0;
        if (!reader_fill(r, &avail, err))
            return false;
        if (avail == 0)
            break;
        size_t k = avail;
        if ((uint64_t)k > n - done)
            k = (size_t)(n - done);
        if (dst != NULL)
            memcpy((unsigned char *)dst + done, r->buf + r->buf_pos, k);
        r->buf_pos += k;
        done += k;
    }
    r->offset += done;
    *took = done;
    return true;
}

/* reader_fail: mark the reader unusable and set the error. */
#define reader_fail(r, err, code, ...)                                                             \
    do {                                                                                           \
        (r)->failed = true;                                                                        \
        err_set((err), (code), __VA_ARGS__);                                                       \
    } while (0)

/* parse_number: a numeric header field: optional leading spaces, octal digits, then only NULs or
 * spaces; or GNU base-256 (first byte 0x80, big-endian rest). Negative base-256 is refused. */
static bool parse_number(const unsigned char *f, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (f[0] == 0x80) {
        for (size_t i = 1; i < n; i++) {
            if (v > (UINT64_MAX >> 8))
                return false;
            v = (v << 8) | f[i];
        }
        *out = v;
        return true;
    }
    size_t i = 0;
    while (i < n && f[i] == ' ')
        i++;
    size_t digits = 0;
    for (; i < n && f[i] >= '0' && f[i] <= '7'; i++, digits++) {
        if (v > (UINT64_MAX >> 3))
            return false;
        v = (v << 3) | (uint64_t)(f[i] - '0');
    }
    for (; i < n; i++) {
        if (f[i] != ' ' && f[i] != '\0')
            return false;
    }
    if (digits == 0)
        return false;
    *out = v;
    return true;
}

/* entry_type_name: how an unsupported typeflag is named in errors. */
static const char *entry_type_name(unsigned char t)
{
    switch (t) {
    case '1':
        return "hard links";
    case '2':
        return "symbolic links";
    case '3':
        return "character devices";
    case '4':
        return "block devices";
    case '6':
        return "fifos";
    case 'x':
    case 'g':
        return "pax extended headers";
    case 'L':
    case 'K':
        return "GNU long names";
    default:
        return "entries of this type";
    }
}

/* normalize_name: raw archive name to the form TarEntry promises. Absolute names and ".."
 * components are refused outright rather than rewritten: an archive holding them is hostile or
 * broken, and silently extracting it elsewhere would hide that. */
static bool normalize_name(const char *raw, char out[TAR_NAME_MAX + 2], Err *err)
{
    char shown[MSG_NAME_MAX];
    if (raw[0] == '/') {
        err_set(err, ERR_BAD_REQUEST, "tar entry \"%s\" has an absolute name",
                printable(raw, shown));
        return false;
    }
    size_t len = 0;
    const char *comp = raw;
    for (;;) {
        const char *slash = strchr(comp, '/');
        size_t n = slash != NULL ? (size_t)(slash - comp) : strlen(comp);
        if (n == 2 && comp[0] == '.' && comp[1] == '.') {
            err_set(err, ERR_BAD_REQUEST, "tar entry \"%s\" has a \"..\" component",
                    printable(raw, shown));
            return false;
        }
        if (n > 0 && !(n == 1 && comp[0] == '.')) {
            if (len > 0)
                out[len++] = '/';
            memcpy(out + len, comp, n); /* raw is at most 256 bytes, out holds 257 */
            len += n;
        }
        if (slash == NULL)
            break;
        comp = slash + 1;
    }
    out[len] = '\0';
    return true;
}

/* reader_parse_header: validate one non-zero header block into *e. *skip is set for the "."
 * entry of the archive root, which names nothing to create. */
static bool reader_parse_header(TarReader *r, const unsigned char *h, uint64_t at, TarEntry *e,
                                bool *skip, Err *err)
{
    char shown[MSG_NAME_MAX];
    uint64_t stored_sum = 0;
    if (!parse_number(h + OFF_CHKSUM, 8, &stored_sum)) {
        reader_fail(r, err, ERR_BAD_REQUEST,
                    "tar header at offset %" PRIu64 ": unreadable checksum field", at);
        return false;
    }
    int64_t signed_sum = 0;
    for (size_t i = 0; i < TAR_BLOCK; i++)
        signed_sum += (i >= OFF_CHKSUM && i < OFF_CHKSUM + 8) ? ' ' : (signed char)h[i];
    if (stored_sum != header_checksum_unsigned(h) && (int64_t)stored_sum != signed_sum) {
        reader_fail(r, err, ERR_BAD_REQUEST,
                    "tar header at offset %" PRIu64 ": bad checksum (corrupt archive)", at);
        return false;
    }
    bool posix = memcmp(h + OFF_MAGIC, "ustar", 6) == 0;
    bool gnu = memcmp(h + OFF_MAGIC, "ustar  ", 8) == 0;
    if (!posix && !gnu) {
        reader_fail(r, err, ERR_BAD_REQUEST,
                    "tar header at offset %" PRIu64 ": not a ustar archive (bad magic)", at);
        return false;
    }
    char raw[TAR_NAME_MAX + 2];
    size_t name_len = strnlen((const char *)h + OFF_NAME, NAME_FIELD);
    size_t prefix_len = posix ? strnlen((const char *)h + OFF_PREFIX, PREFIX_FIELD) : 0;
    size_t len = 0;
    if (prefix_len > 0) {
        memcpy(raw, h + OFF_PREFIX, prefix_len);
        len = prefix_len;
        raw[len++] = '/';
    }
    memcpy(raw + len, h + OFF_NAME, name_len);
    len += name_len;
    raw[len] = '\0';
    printable(raw, shown);

    unsigned char type = h[OFF_TYPE];
    if (type == '0' || type == '\0' || type == '7') {
        e->type = TAR_ENTRY_FILE;
    } else if (type == '5') {
        e->type = TAR_ENTRY_DIR;
    } else {
        reader_fail(r, err, ERR_BAD_REQUEST, "tar entry \"%s\": %s are not supported (type '%c')",
                    shown, entry_type_name(type), (type >= 0x20 && type < 0x7f) ? type : '?');
        return false;
    }
    if (len == 0) {
        reader_fail(r, err, ERR_BAD_REQUEST, "tar header at offset %" PRIu64 ": empty name", at);
        return false;
    }
    if (e->type == TAR_ENTRY_FILE && raw[len - 1] == '/') {
        reader_fail(r, err, ERR_BAD_REQUEST,
                    "tar entry \"%s\": a regular file named like a directory", shown);
        return false;
    }
    if (!normalize_name(raw, e->name, err)) {
        r->failed = true;
        return false;
    }
    if (e->name[0] == '\0' && e->type == TAR_ENTRY_FILE) {
        reader_fail(r, err, ERR_BAD_REQUEST, "tar entry \"%s\": a regular file without a name",
                    shown);
        return false;
    }
    uint64_t mode = 0, mtime = 0, size = 0;
    if (!parse_number(h + OFF_MODE, 8, &mode) || !parse_number(h + OFF_SIZE, 12, &size) ||
        !parse_number(h + OFF_MTIME, 12, &mtime) || mtime > (uint64_t)INT64_MAX) {
        reader_fail(r, err, ERR_BAD_REQUEST, "tar entry \"%s\": bad mode, size or mtime field",
                    shown);
        return false;
    }
    if (e->type == TAR_ENTRY_DIR && size != 0) {
        reader_fail(r, err, ERR_BAD_REQUEST,
                    "tar entry \"%s\": a directory with %" PRIu64 " bytes of data", shown, size);
        return false;
    }
    if (size > r->max_total || r->total > r->max_total - size) {
        reader_fail(r, err, ERR_PAYLOAD_TOO_LARGE,
                    "tar entry \"%s\": archive data exceeds the limit of %" PRIu64 " bytes", shown,
                    r->max_total);
        return false;
    }
    r->total += size;
    e->mode = (unsigned)(mode & 07777);
    e->mtime = (int64_t)mtime;
    e->size = size;
    *skip = e->name[0] == '\0';
    return true;
}

/* reader_drain: after the end marker, read the source to its end so a decoder below verifies
 * its frame and checksum. What follows the marker (its second block, GNU's padding to a 10 KiB
 * record) is ignored but bounded, so an endless source cannot keep us here. */
static bool reader_drain(TarReader *r, Err *err)
{
    uint64_t trailing = 0;
    for (;;) {
        size_t avail = 0;
        if (!reader_fill(r, &avail, err))
            return false;
        if (avail == 0)
            return true;
        trailing += avail;
        if (trailing > TAR_TRAILING_MAX) {
            reader_fail(r, err, ERR_BAD_REQUEST,
                        "tar archive: more than %d bytes follow the end-of-archive marker",
                        TAR_TRAILING_MAX);
            return false;
        }
        r->offset += avail;
        r->buf_pos = r->buf_len;
    }
}

bool tar_reader_next(TarReader *r, TarEntry *entry, bool *end, Err *err)
{
    char shown[MSG_NAME_MAX];
    if (r->failed) {
        err_set(err, ERR_INTERNAL, "tar reader failed earlier");
        return false;
    }
    if (r->done) {
        *end = true;
        return true;
    }
    uint64_t skip_n = r->remaining + r->pad;
    uint64_t took = 0;
    if (!reader_take(r, NULL, skip_n, &took, err))
        return false;
    if (took < skip_n) {
        reader_fail(r, err, ERR_BAD_REQUEST,
                    "truncated tar archive: input ends inside the data of \"%s\"",
                    printable(r->cur_name, shown));
        return false;
    }
    r->remaining = 0;
    r->pad = 0;
    for (;;) {
        unsigned char h[TAR_BLOCK];
        uint64_t at = r->offset;
        if (!reader_take(r, h, TAR_BLOCK, &took, err))
            return false;
        if (took == 0) {
            reader_fail(r, err, ERR_BAD_REQUEST,
                        "truncated tar archive: input ends without the end-of-archive marker");
            return false;
        }
        if (took < TAR_BLOCK) {
            reader_fail(r, err, ERR_BAD_REQUEST,
                        "truncated tar archive: input ends inside the header at offset %" PRIu64,
                        at);
            return false;
        }
        if (memcmp(h, ZERO_BLOCKS, TAR_BLOCK) == 0) {
            /* end of archive; a lone zero block at the very end loses nothing, so accept it */
            if (!reader_drain(r, err))
                return false;
            r->done = true;
            *end = true;
            return true;
        }
        if (r->entries >= r->max_entries) {
            reader_fail(r, err, ERR_PAYLOAD_TOO_LARGE,
                        "tar archive has more than %" PRIu64 " entries", r->max_entries);
            return false;
        }
        r->entries++;
        bool skip = false;
        if (!reader_parse_header(r, h, at, entry, &skip, err))
            return false;
        if (skip)
            continue;
        r->remaining = entry->size;
        r->pad = (TAR_BLOCK - entry->size % TAR_BLOCK) % TAR_BLOCK;
        str_copy(r->cur_name, sizeof(r->cur_name), entry->name);
        *end = false;
        return true;
    }
}

bool tar_reader_read_data(TarReader *r, void *buf, size_t cap, size_t *got, Err *err)
{
    char shown[MSG_NAME_MAX];
    if (r->failed) {
        err_set(err, ERR_INTERNAL, "tar reader failed earlier");
        return false;
    }
    *got = 0;
    if (r->remaining == 0 || cap == 0)
        return true;
    size_t avail = 0;
    if (!reader_fill(r, &avail, err))
        return false;
    if (avail == 0) {
        reader_fail(r, err, ERR_BAD_REQUEST,
                    "truncated tar archive: input ends inside the data of \"%s\" (%" PRIu64
                    " bytes missing)",
                    printable(r->cur_name, shown), r->remaining);
        return false;
    }
    size_t k = avail < cap ? avail : cap;
    if ((uint64_t)k > r->remaining)
        k = (size_t)r->remaining;
    memcpy(buf, r->buf + r->buf_pos, k);
    r->buf_pos += k;
    r->offset += k;
    r->remaining -= k;
    *got = k;
    return true;
}

bool tar_reader_foreach(TarReader *r, TarEntryFn fn, void *ctx, Err *err)
{
    for (;;) {
        TarEntry e;
        bool end = false;
        if (!tar_reader_next(r, &e, &end, err))
            return false;
        if (end)
            return true;
        if (!fn(ctx, r, &e, err)) {
            if (err != NULL && err->code == ERR_NONE)
                err_set(err, ERR_INTERNAL, "tar entry callback failed without an error");
            return false;
        }
    }
}

/* ---- extraction ---- */

typedef struct DirMode {
    char *name;
    unsigned mode;
    size_t seq; /* archive order: for duplicates the last entry wins */
} DirMode;

typedef struct Extract {
    const char *dest;
    int root_fd;
    DirMode *dirs;
    size_t ndirs;
    size_t dirs_cap;
    unsigned char *buf;
} Extract;

/* extract_open_parent: a descriptor for the directory holding name's last component, walking
 * from the root one component at a time with O_NOFOLLOW (creating missing directories), so no
 * symlink, wherever it came from, can lead outside the destination. *leaf points into name. */
static bool extract_open_parent(Extract *x, const char *name, int *parent, const char **leaf,
                                Err *err)
{
    char shown[MSG_NAME_MAX];
    int fd = dup(x->root_fd);
    if (fd < 0) {
        err_set(err, ERR_INTERNAL, "dup: %s", errno_text(errno));
        return false;
    }
    const char *comp = name;
    for (;;) {
        const char *slash = strchr(comp, '/');
        if (slash == NULL)
            break;
        char part[TAR_NAME_MAX + 2];
        size_t n = (size_t)(slash - comp);
        memcpy(part, comp, n);
        part[n] = '\0';
        int next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0 && errno == ENOENT) {
            if (mkdirat(fd, part, 0700) != 0 && errno != EEXIST) {
                err_set(err, ERR_INTERNAL, "cannot create %s/%.*s: %s", x->dest,
                        (int)(slash - name), name, errno_text(errno));
                close(fd);
                return false;
            }
            next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (next < 0) {
            int e = errno;
            if (e == ENOTDIR || e == ELOOP)
                err_set(err, ERR_BAD_REQUEST, "tar entry \"%s\": \"%.*s\" is not a directory",
                        printable(name, shown), (int)(slash - name), name);
            else
                err_set(err, ERR_INTERNAL, "cannot open %s/%.*s: %s", x->dest, (int)(slash - name),
                        name, errno_text(e));
            close(fd);
            return false;
        }
        close(fd);
        fd = next;
        comp = slash + 1;
    }
    *parent = fd;
    *leaf = comp;
    return true;
}

/* extract_dir: directories are created 0700 so entries can be written into them; the recorded
 * mode is applied once everything is in place. */
static bool extract_dir(Extract *x, const TarEntry *e, Err *err)
{
    char shown[MSG_NAME_MAX];
    int parent = -1;
    const char *leaf = NULL;
    if (!extract_open_parent(x, e->name, &parent, &leaf, err))
        return false;
    if (mkdirat(parent, leaf, 0700) != 0) {
        int saved = errno;
        struct stat st;
        if (saved != EEXIST || fstatat(parent, leaf, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISDIR(st.st_mode)) {
            if (saved == EEXIST)
                err_set(err, ERR_BAD_REQUEST, "tar entry \"%s\": exists and is not a directory",
                        printable(e->name, shown));
            else
                err_set(err, ERR_INTERNAL, "cannot create %s/%s: %s", x->dest, e->name,
                        errno_text(saved));
            close(parent);
            return false;
        }
    }
    close(parent);
    if (x->ndirs == x->dirs_cap) {
        x->dirs_cap = x->dirs_cap == 0 ? 64 : x->dirs_cap * 2;
        x->dirs = xrealloc(x->dirs, x->dirs_cap * sizeof(*x->dirs));
    }
    x->dirs[x->ndirs].name = xstrdup(e->name);
    x->dirs[x->ndirs].mode = e->mode & 0777;
    x->dirs[x->ndirs].seq = x->ndirs;
    x->ndirs++;
    return true;
}

/* extract_file: O_EXCL refuses a second entry of the same name (and anything already there). */
static bool extract_file(Extract *x, TarReader *r, const TarEntry *e, Err *err)
{
    char shown[MSG_NAME_MAX];
    int parent = -1;
    const char *leaf = NULL;
    if (!extract_open_parent(x, e->name, &parent, &leaf, err))
        return false;
    int fd = openat(parent, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    int saved = errno;
    close(parent);
    if (fd < 0) {
        if (saved == EEXIST)
            err_set(err, ERR_BAD_REQUEST, "tar entry \"%s\": duplicate entry",
                    printable(e->name, shown));
        else
            err_set(err, ERR_INTERNAL, "cannot create %s/%s: %s", x->dest, e->name,
                    errno_text(saved));
        return false;
    }
    for (;;) {
        size_t got = 0;
        if (!tar_reader_read_data(r, x->buf, TAR_IO_CHUNK, &got, err))
            goto fail;
        if (got == 0)
            break;
        int out_fd = fd;
        if (!tar_fd_write(&out_fd, x->buf, got, err)) {
            err_prefix(err, "extracting %s/%s: ", x->dest, e->name);
            goto fail;
        }
    }
    if (fchmod(fd, e->mode & 0777) != 0) {
        err_set(err, ERR_INTERNAL, "cannot chmod %s/%s: %s", x->dest, e->name, errno_text(errno));
        goto fail;
    }
    if (close(fd) != 0) {
        err_set(err, ERR_INTERNAL, "cannot close %s/%s: %s", x->dest, e->name, errno_text(errno));
        return false;
    }
    return true;
fail:
    close(fd);
    return false;
}

static bool extract_entry(void *ctx, TarReader *r, const TarEntry *e, Err *err)
{
    Extract *x = ctx;
    return e->type == TAR_ENTRY_DIR ? extract_dir(x, e, err) : extract_file(x, r, e, err);
}

/* dir_mode_cmp: names descending, so a directory's mode is set after its descendants' (a parent
 * made read-only first would block them); equal names: the last archive entry first. */
static int dir_mode_cmp(const void *a, const void *b)
{
    const DirMode *x = a, *y = b;
    int c = strcmp(y->name, x->name);
    if (c != 0)
        return c;
    return x->seq < y->seq ? 1 : (x->seq > y->seq ? -1 : 0);
}

static bool extract_apply_dir_modes(Extract *x, Err *err)
{
    if (x->ndirs > 1)
        qsort(x->dirs, x->ndirs, sizeof(*x->dirs), dir_mode_cmp);
    for (size_t i = 0; i < x->ndirs; i++) {
        if (i > 0 && strcmp(x->dirs[i].name, x->dirs[i - 1].name) == 0)
            continue;
        int parent = -1;
        const char *leaf = NULL;
        if (!extract_open_parent(x, x->dirs[i].name, &parent, &leaf, err))
            return false;
        int fd = openat(parent, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int saved = errno;
        close(parent);
        if (fd < 0 || fchmod(fd, x->dirs[i].mode) != 0) {
            if (fd >= 0)
                saved = errno;
            err_set(err, ERR_INTERNAL, "cannot chmod %s/%s: %s", x->dest, x->dirs[i].name,
                    errno_text(saved));
            if (fd >= 0)
                close(fd);
            return false;
        }
        close(fd);
    }
    return true;
}

static bool first_entry(const char *path, const char *name, void *arg)
{
    (void)path;
    (void)name;
    *(bool *)arg = false; /* not empty */
    return false;
}

/* dest_prepare: dest must be an empty directory or absent (then created); *created says which,
 * for the cleanup after a failure. */
static bool dest_prepare(const char *dest, bool *created, Err *err)
{
    struct stat st;
    *created = false;
    if (stat(dest, &st) != 0) {
        if (errno != ENOENT) {
            err_set(err, ERR_INTERNAL, "cannot stat %s: %s", dest, errno_text(errno));
            return false;
        }
        if (!fs_mkdir_p(dest, 0700, err))
            return false;
        *created = true;
        return true;
    }
    if (!S_ISDIR(st.st_mode)) {
        err_set(err, ERR_CONFLICT, "extract destination %s is not a directory", dest);
        return false;
    }
    bool empty = true;
    if (!fs_dir_each(dest, false, first_entry, &empty, err))
        return false;
    if (!empty) {
        err_set(err, ERR_CONFLICT, "extract destination %s is not empty", dest);
        return false;
    }
    return true;
}

/* dest_cleanup: undo a failed extraction. dest was empty or absent before, so everything in it
 * is ours to remove. */
static bool cleanup_entry(const char *path, const char *name, void *arg)
{
    (void)name;
    (void)arg;
    Err e = {0};
    if (!fs_remove_tree(path, &e))
        log_err(&e, "cleaning up a failed extraction");
    return true;
}

static void dest_cleanup(const char *dest, bool created)
{
    Err e = {0};
    if (created) {
        if (!fs_remove_tree(dest, &e))
            log_err(&e, "cleaning up a failed extraction");
        return;
    }
    if (!fs_dir_each(dest, true, cleanup_entry, NULL, &e))
        log_err(&e, "cleaning up a failed extraction");
}

bool tar_reader_extract_to_dir(TarReader *r, const char *dest_dir, Err *err)
{
    bool created = false;
    if (!dest_prepare(dest_dir, &created, err))
        return false;
    Extract x = {.dest = dest_dir, .root_fd = -1};
    bool ok = false;
    x.root_fd = open(dest_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (x.root_fd < 0) {
        err_set(err, ERR_INTERNAL, "cannot open %s: %s", dest_dir, errno_text(errno));
        goto cleanup;
    }
    x.buf = xmalloc(TAR_IO_CHUNK);
    if (!tar_reader_foreach(r, extract_entry, &x, err))
        goto cleanup;
    if (!extract_apply_dir_modes(&x, err))
        goto cleanup;
    ok = true;
cleanup:
    if (x.root_fd >= 0)
        close(x.root_fd);
    for (size_t i = 0; i < x.ndirs; i++)
        free(x.dirs[i].name);
    free(x.dirs);
    free(x.buf);
    if (!ok)
        dest_cleanup(dest_dir, created);
    return ok;
}

/* ---- directory -> .tar.zst ---- */

typedef struct Create {
    TarWriter w;
    char path[PATH_MAX]; /* the root, then "/" and the relative name being visited */
    size_t root_len;
    unsigned char *buf;
} Create;

static int skip_dots(const struct dirent *de)
{
    return strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
}

/* bytewise: strcmp order, not the locale's (alphasort uses strcoll), so every machine agrees. */
static int bytewise(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* kind_name: what a non-archivable file is, for the refusal message. */
static const char *kind_name(mode_t m)
{
    if (S_ISLNK(m))
        return "a symbolic link";
    if (S_ISCHR(m) || S_ISBLK(m))
        return "a device";
    if (S_ISFIFO(m))
        return "a fifo";
    if (S_ISSOCK(m))
        return "a socket";
    return "not a regular file or directory";
}

/* create_add_file: stream a file of the size fstat reported; a file that shrinks or grows
 * meanwhile is an error rather than a silently inconsistent archive. */
static bool create_add_file(Create *c, const char *rel, Err *err)
{
    int fd = open(c->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        err_set(err, ERR_INTERNAL, "cannot open %s: %s", c->path, errno_text(errno));
        return false;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        err_set(err, ERR_INTERNAL, "cannot stat %s: %s", c->path, errno_text(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        err_set(err, ERR_BAD_REQUEST, "refusing to archive %s: %s", c->path, kind_name(st.st_mode));
        goto fail;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (!tar_writer_add_file_stream(&c->w, rel, (unsigned)(st.st_mode & 07777), 0, size, err))
        goto fail;
    uint64_t done = 0;
    for (;;) {
        ssize_t n = read(fd, c->buf, TAR_IO_CHUNK);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            err_set(err, ERR_INTERNAL, "cannot read %s: %s", c->path, errno_text(errno));
            goto fail;
        }
        if (n == 0)
            break;
        if ((uint64_t)n > size - done) {
            err_set(err, ERR_CONFLICT, "%s grew while being archived", c->path);
            goto fail;
        }
        if (!tar_writer_write_data(&c->w, c->buf, (size_t)n, err))
            goto fail;
        done += (uint64_t)n;
    }
    if (done < size) {
        err_set(err, ERR_CONFLICT, "%s shrank while being archived", c->path);
        goto fail;
    }
    close(fd);
    return tar_writer_end_file(&c->w, err);
fail:
    close(fd);
    return false;
}

/* create_walk: pre-order, children in bytewise order, so the same tree always gives the same
 * entry sequence. */
static bool create_walk(Create *c, Err *err)
{
    struct dirent **list = NULL;
    int n = scandir(c->path, &list, skip_dots, bytewise);
    if (n < 0) {
        err_set(err, ERR_INTERNAL, "cannot list %s: %s", c->path, errno_text(errno));
        return false;
    }
    size_t len = strlen(c->path);
    bool ok = true;
    for (int i = 0; i < n && ok; i++) {
        if (!str_printf(c->path + len, sizeof(c->path) - len, "/%s", list[i]->d_name)) {
            c->path[len] = '\0';
            err_set(err, ERR_BAD_REQUEST, "path too long under %s", c->path);
            ok = false;
            break;
        }
        const char *rel = c->path + c->root_len + 1;
        struct stat st;
        if (lstat(c->path, &st) != 0) {
            err_set(err, ERR_INTERNAL, "cannot stat %s: %s", c->path, errno_text(errno));
            ok = false;
        } else if (S_ISDIR(st.st_mode)) {
            ok = tar_writer_add_dir(&c->w, rel, (unsigned)(st.st_mode & 07777), 0, err) &&
                 create_walk(c, err);
        } else if (S_ISREG(st.st_mode)) {
            ok = create_add_file(c, rel, err);
        } else {
            err_set(err, ERR_BAD_REQUEST, "refusing to archive %s: %s", c->path,
                    kind_name(st.st_mode));
            ok = false;
        }
        c->path[len] = '\0';
    }
    for (int i = 0; i < n; i++)
        free(list[i]);
    free(list);
    return ok;
}

bool tar_zst_create_from_dir(const char *dir, const char *out_path, Err *err)
{
    char tmp[PATH_MAX];
    char out_dir[PATH_MAX];
    unsigned long seq = atomic_fetch_add(&g_tmp_seq, 1);
    if (!str_printf(tmp, sizeof(tmp), "%s.tmp.%ld.%lu", out_path, (long)getpid(), seq) ||
        !fs_dir_of(out_path, out_dir, sizeof(out_dir))) {
        err_set(err, ERR_INTERNAL, "path too long: %s", out_path);
        return false;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        err_set(err, ERR_NOT_FOUND, "%s is not a directory", dir);
        return false;
    }
    Create *c = xcalloc(1, sizeof(*c));
    TarZstdEncoder *enc = NULL;
    bool ok = false;
    int fd = -1;
    if (!str_copy(c->path, sizeof(c->path), dir)) {
        err_set(err, ERR_INTERNAL, "path too long: %s", dir);
        goto cleanup;
    }
    c->root_len = strlen(c->path);
    while (c->root_len > 1 && c->path[c->root_len - 1] == '/')
        c->path[--c->root_len] = '\0';
    c->buf = xmalloc(TAR_IO_CHUNK);
    fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) {
        err_set(err, ERR_INTERNAL, "cannot create %s: %s", tmp, errno_text(errno));
        goto cleanup;
    }
    if (!tar_zstd_encoder_new(TAR_DEFAULT_ZSTD_LEVEL, tar_fd_write, &fd, &enc, err))
        goto cleanup;
    tar_writer_init(&c->w, tar_zstd_encoder_write, enc);
    if (!create_walk(c, err) || !tar_writer_finish(&c->w, err) ||
        !tar_zstd_encoder_finish(enc, err)) {
        err_prefix(err, "archiving %s: ", dir);
        goto cleanup;
    }
    if (fsync(fd) != 0) {
        err_set(err, ERR_INTERNAL, "cannot fsync %s: %s", tmp, errno_text(errno));
        goto cleanup;
    }
    int rc = close(fd);
    fd = -1;
    if (rc != 0) {
        err_set(err, ERR_INTERNAL, "cannot close %s: %s", tmp, errno_text(errno));
        goto cleanup;
    }
    if (rename(tmp, out_path) != 0) {
        err_set(err, ERR_INTERNAL, "cannot rename %s to %s: %s", tmp, out_path, errno_text(errno));
        goto cleanup;
    }
    ok = fs_fsync_dir(out_dir, err); /* renamed: content in place, durability not yet known */
    tar_zstd_encoder_free(enc);
    free(c->buf);
    free(c);
    return ok;
cleanup:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    tar_zstd_encoder_free(enc);
    free(c->buf);
    free(c);
    return false;
}

bool tar_zst_extract_to_dir(const char *path, const char *dest_dir, Err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            err_set(err, ERR_NOT_FOUND, "%s: no such file", path);
        else
            err_set(err, ERR_INTERNAL, "cannot open %s: %s", path, errno_text(errno));
        return false;
    }
    TarZstdDecoder *dec = tar_zstd_decoder_new(tar_fd_read, &fd);
    TarReader *r = tar_reader_new(tar_zstd_decoder_read, dec, NULL);
    bool ok = tar_reader_extract_to_dir(r, dest_dir, err);
    if (!ok)
        err_prefix(err, "extracting %s: ", path);
    tar_reader_free(r);
    tar_zstd_decoder_free(dec);
    close(fd);
    return ok;
}
