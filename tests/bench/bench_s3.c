/*
 * bench_s3.c: the S3 remote storage backend's upload and download of layer-sized files, the
 * backend half of tests/bench/bench_s3.sh (which measures curl on the same files and server and
 * prints the ratio).
 *
 * Usage: bench_s3 URL DIR N   (URL: s3://bucket/prefix?..., credentials in AWS_*; DIR holds
 * files f0..f<N-1>). Puts each file under bench/f<i> with remote_put_file, then downloads each
 * with remote_get_to_file into DIR/back<i> and checks its size, and prints one line per direction:
 * "put <bytes> <seconds>" and "get <bytes> <seconds>". Asserts nothing about time.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "shared/err.h"
#include "shared/remote_storage.h"
#include "shared/str.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: bench_s3 URL DIR N\n");
        return 64;
    }
    int n = atoi(argv[3]);
    Err err = {0};
    RemoteStorage *rs = NULL;
    if (!remote_storage_open(argv[1], &rs, &err)) {
        fprintf(stderr, "bench_s3: %s\n", err.msg);
        return 1;
    }
    uint64_t bytes = 0;
    char local[4096], key[64];
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        struct stat st;
        if (!str_printf(local, sizeof(local), "%s/f%d", argv[2], i) || stat(local, &st) != 0) {
            fprintf(stderr, "bench_s3: cannot stat %s\n", local);
            return 1;
        }
        bytes += (uint64_t)st.st_size;
        snprintf(key, sizeof(key), "bench/f%d", i);
        if (!remote_put_file(rs, key, local, &err)) {
            fprintf(stderr, "bench_s3: put %s: %s\n", key, err.msg);
            return 1;
        }
    }
    printf("put %" PRIu64 " %.6f\n", bytes, now_s() - t0);
    t0 = now_s();
    uint64_t got = 0;
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "bench/f%d", i);
        if (!str_printf(local, sizeof(local), "%s/back%d", argv[2], i) ||
            !remote_get_to_file(rs, key, local, &err)) {
            fprintf(stderr, "bench_s3: get %s: %s\n", key, err.msg);
            return 1;
        }
        struct stat st;
        if (stat(local, &st) == 0)
            got += (uint64_t)st.st_size;
    }
    printf("get %" PRIu64 " %.6f\n", got, now_s() - t0);
    remote_storage_free(rs);
    if (got != bytes) {
        fprintf(stderr, "bench_s3: downloaded %" PRIu64 " bytes of %" PRIu64 "\n", got, bytes);
        return 1;
    }
    return 0;
}
