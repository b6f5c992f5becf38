/*
 * fuzz_remote_storage: remote storage URL syntax (daemon flags) and object key validation
 * (shared/remote_storage.c), plus the index's layer name check (pageserver/index_part.c) that
 * guards names before they become object keys. An accepted URL's parts are NUL-terminated and
 * an accepted local path is absolute.
 */
#include "tests/fuzz/fuzz_util.h"

#include "pageserver/index_part.h"
#include "shared/remote_storage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_strndup(data, size);
    Err err = {0};

    RemoteStorageUrl url;
    memset(&url, 0xA5, sizeof url);
    if (remote_storage_url_parse(s, &url, &err)) {
        if (url.kind == REMOTE_STORAGE_LOCAL_FS) {
            FUZZ_CHECK(memchr(url.path, '\0', sizeof url.path) != NULL);
            FUZZ_CHECK(url.path[0] == '/' && strlen(url.path) > 1);
        } else {
            FUZZ_CHECK(memchr(url.bucket, '\0', sizeof url.bucket) != NULL);
            FUZZ_CHECK(memchr(url.prefix, '\0', sizeof url.prefix) != NULL);
        }
        (void)!remote_storage_url_check_supported(&url, &err);
    } else {
        FUZZ_CHECK(err.code == ERR_BAD_REQUEST);
    }

    if (remote_key_validate(s, &err)) {
        /* '/'-separated segments, none empty, "." or ".." */
        for (const char *c = s;;) {
            const char *slash = strchr(c, '/');
            size_t n = slash ? (size_t)(slash - c) : strlen(c);
            FUZZ_CHECK(n > 0 && !(n == 1 && c[0] == '.') &&
                       !(n == 2 && c[0] == '.' && c[1] == '.'));
            if (!slash)
                break;
            c = slash + 1;
        }
    }
    if (index_part_layer_name_check(s, &err))
        FUZZ_CHECK(strlen(s) < INDEX_LAYER_NAME_SIZE);
    free(s);
    return 0;
}
