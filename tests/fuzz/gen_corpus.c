/*
 * gen_corpus: writes the binary and signed seeds of tests/fuzz/corpus/ with the project's own
 * writers (docs/fuzzing.md): JWTs signed with the fuzz test key (auth/), layer files (layer/),
 * tar and tar.zst archives (tar/) and an index_part.json (index_part/). Hand-written text seeds
 * live next to them. Usage: gen_corpus <corpus dir> (rewrites only the files named here).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pageserver/index_part.h"
#include "pageserver/layer.h"
#include "shared/auth.h"
#include "shared/fsutil.h"
#include "shared/tar.h"

/* The private half of fuzz_auth.c's test key. Not used by any daemon. */
static const char FUZZ_PRIVATE_KEY[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIMiWU9uS6zQztWoogeZLkLPx6kKFZgpxNrPqj5pWLPq0\n"
    "-----END PRIVATE KEY-----\n";

static const char *g_dir;
static char g_tmp[PATH_MAX];

static void die(const char *what, const Err *err)
{
    fprintf(stderr, "gen_corpus: %s: %s\n", what, err ? err->msg : "failed");
    exit(1);
}

/* seed: corpus/<name>/<file> = mode byte (when mode >= 0) + data. */
static void seed(const char *name, const char *file, int mode, const void *data, size_t len)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    Err err = {0};
    if (!fs_mkdir_p(path, 0755, &err))
        die(path, &err);
    snprintf(path, sizeof path, "%s/%s/%s", g_dir, name, file);
    FILE *f = fopen(path, "wb");
    if (!f)
        die(path, NULL);
    if (mode >= 0)
        fputc(mode, f);
    if (len && fwrite(data, 1, len, f) != len)
        die(path, NULL);
    fclose(f);
}

static void gen_auth(void)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/key.pem", g_tmp);
    FILE *f = fopen(path, "w");
    if (!f)
        die(path, NULL);
    fputs(FUZZ_PRIVATE_KEY, f);
    fclose(f);
    AuthSigner *signer;
    Err err = {0};
    if (!auth_signer_new_from_file(path, &signer, &err))
        die("signer", &err);
    TenantId tenant = {{0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f, 0x70, 0x81, 0x92, 0xa3, 0xb4, 0xc5,
                        0xd6, 0xe7, 0xf8, 0x09}};
    struct {
        const char *file;
        AuthScope scope;
        const TenantId *tenant;
        int64_t exp;
        bool bearer;
    } tokens[] = {
        {"pageserverapi", AUTH_SCOPE_PAGESERVERAPI, NULL, 0, false},
        {"tenant_exp", AUTH_SCOPE_TENANT, &tenant, 4102444800LL, false},
        {"admin_bearer", AUTH_SCOPE_ADMIN, NULL, 0, true},
        {"expired", AUTH_SCOPE_GENERATIONS_API, NULL, 1000, false},
    };
    for (size_t i = 0; i < sizeof tokens / sizeof tokens[0]; i++) {
        char *jwt;
        if (!auth_sign(signer, tokens[i].scope, tokens[i].tenant, tokens[i].exp, &jwt, &err))
            die("sign", &err);
        char text[2048];
        snprintf(text, sizeof text, "%s%s", tokens[i].bearer ? "Bearer " : "", jwt);
        seed("auth", tokens[i].file, -1, text, strlen(text));
        free(jwt);
    }
    auth_signer_free(signer);
    unlink(path);
}

static void gen_layer(const char *file, size_t n, uint32_t block_size)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/layer", g_tmp);
    KeyRange range = {.start = key_rel_block(1663, 5, 1259, 0, 0),
                      .end = key_rel_block(1663, 5, 1259, 0, 1000)};
    LayerDesc desc = layer_desc_image(&range, 0x16960E8);
    LayerWriterOptions opts = {.index_block_size = block_size};
    LayerWriter *w;
    Err err = {0};
    if (!layer_writer_new(path, &desc, &opts, &w, &err))
        die("layer_writer_new", &err);
    for (size_t i = 0; i < n; i++) {
        char value[64];
        int len = snprintf(value, sizeof value, "value %zu %s", i, i % 2 ? "aaaaaaaaaaaaaaaa" : "");
        Key k = key_rel_block(1663, 5, 1259, 0, (uint32_t)(3 * i + 1));
        if (!layer_writer_add(w, &k, value, (size_t)len, &err))
            die("layer_writer_add", &err);
    }
    if (!layer_writer_finish(w, NULL, &err))
        die("layer_writer_finish", &err);
    char *data;
    size_t len;
    if (!fs_read_file(path, 1 << 20, &data, &len, &err))
        die(path, &err);
    seed("layer", file, 0, data, len); /* mode 0: checksums recomputed (a no-op here) */
    free(data);
    unlink(path);
}

typedef struct MemSink {
    uint8_t buf[64 * 1024];
    size_t len;
} MemSink;

static bool mem_sink(void *ctx, const void *data, size_t len, Err *err)
{
    MemSink *s = ctx;
    if (len > sizeof s->buf - s->len) {
        err_set(err, ERR_INTERNAL, "sink full");
        return false;
    }
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    return true;
}

static void write_archive(TarWriteFn sink, void *ctx)
{
    TarWriter w;
    tar_writer_init(&w, sink, ctx);
    Err err = {0};
    static const char version[] = "15\n";
    static const char conf[] = "max_connections = 100\n";
    if (!tar_writer_add_dir(&w, "global", 0700, 0, &err) ||
        !tar_writer_add_file(&w, "PG_VERSION", 0600, 0, version, strlen(version), &err) ||
        !tar_writer_add_file(&w, "global/postgresql.conf", 0600, 1700000000, conf, strlen(conf),
                             &err) ||
        !tar_writer_add_file(&w, "base/1/empty", 0600, 0, "", 0, &err) ||
        !tar_writer_finish(&w, &err))
        die("tar writer", &err);
}

static void gen_tar(void)
{
    static MemSink plain, zst;
    write_archive(mem_sink, &plain);
    seed("tar", "plain_iterate", 0x00, plain.buf, plain.len);
    seed("tar", "plain_extract", 0x02, plain.buf, plain.len);
    TarZstdEncoder *enc;
    Err err = {0};
    if (!tar_zstd_encoder_new(TAR_DEFAULT_ZSTD_LEVEL, mem_sink, &zst, &enc, &err))
        die("zstd encoder", &err);
    write_archive(tar_zstd_encoder_write, enc);
    if (!tar_zstd_encoder_finish(enc, &err))
        die("zstd finish", &err);
    tar_zstd_encoder_free(enc);
    seed("tar", "zstd_iterate", 0x01, zst.buf, zst.len);
    seed("tar", "zstd_extract", 0x03, zst.buf, zst.len);
}

static void gen_index_part(void)
{
    IndexPart *p = index_part_new();
    Err err = {0};
    IndexLayer a = {.name = "000000067F000006790000050700000000FF-000000067F000006790000050700000"
                            "003E8__00000000016960E8",
                    .file_size = 8192,
                    .generation = 3,
                    .shard = {1, 4}};
    IndexLayer b = {.name = "000000000000000000000000000000000000-FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
                            "FFFF__0000000001000000",
                    .file_size = 123,
                    .generation = GENERATION_NONE,
                    .shard = {0, 0}};
    if (!index_part_add_layer(p, &a, &err) || !index_part_add_layer(p, &b, &err))
        die("index_part_add_layer", &err);
    p->disk_consistent_lsn = 0x16960E8;
    p->metadata.disk_consistent_lsn = 0x16960E8;
    p->metadata.prev_record_lsn = 0x16960B0;
    p->metadata.has_ancestor = true;
    p->metadata.ancestor_timeline.b[0] = 0xab;
    p->metadata.ancestor_lsn = 0x1000000;
    p->metadata.initdb_lsn = 0x1000000;
    p->metadata.pg_version = 15;
    index_part_set_deleted_at(p, 1700000000123LL);
    char *text = index_part_serialize(p);
    seed("index_part", "full", -1, text, strlen(text));
    free(text);
    index_part_free(p);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_corpus <corpus dir>\n");
        return 2;
    }
    g_dir = argv[1];
    snprintf(g_tmp, sizeof g_tmp, "/tmp/gen_corpus.XXXXXX");
    if (!mkdtemp(g_tmp))
        die("mkdtemp", NULL);
    gen_auth();
    gen_layer("image_3", 3, 0);
    gen_layer("image_20_small_blocks", 20, 64);
    gen_layer("empty", 0, 0);
    gen_tar();
    gen_index_part();
    rmdir(g_tmp);
    return 0;
}
