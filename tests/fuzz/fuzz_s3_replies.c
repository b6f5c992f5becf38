/*
 * fuzz_s3_replies: the S3 backend's parsers of what an S3 server answers (shared/
 * remote_storage_s3.c, libxml2): a ListBucketResult page and a DeleteResult. Whatever the bytes,
 * a parse either fails with ERR_INTERNAL or yields a listing whose keys and prefixes are strings
 * and per-key failures whose indexes are in range.
 */
#include "tests/fuzz/fuzz_util.h"

#include "shared/remote_storage.h"
#include "shared/remote_storage_backend.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_strndup(data, size);
    Err err = {0};

    RemoteListing page = {0};
    if (remote_s3_parse_listing(s, size, "pre/", &page, &err)) {
        for (size_t i = 0; i < page.n; i++)
            FUZZ_CHECK(page.items[i].key != NULL &&
                       memchr(page.items[i].etag, '\0', REMOTE_ETAG_SIZE) != NULL);
        for (size_t i = 0; i < page.n_prefixes; i++)
            FUZZ_CHECK(page.prefixes[i] != NULL);
    } else {
        FUZZ_CHECK(err.code == ERR_INTERNAL);
    }
    remote_listing_free(&page);

    static const char *const KEYS[] = {"a", "b/c", "pre/x"};
    RemoteDeleteResult res = {0};
    err_clear(&err);
    if (remote_s3_parse_delete_result(s, size, "pre/", KEYS, 3, &res, &err)) {
        for (size_t i = 0; i < res.n_failures; i++)
            FUZZ_CHECK(res.failures[i].index < 3 && res.failures[i].err.code != ERR_NONE);
    } else {
        FUZZ_CHECK(err.code == ERR_INTERNAL);
    }
    remote_delete_result_free(&res);
    free(s);
    return 0;
}
