/*
 * fuzz_pg_control: Postgres' global/pg_control as read from an import or an initdb result
 * (pageserver/pg_control.c). The file is CRC-protected, so the first input byte picks a mode:
 * odd = the rest is parsed as is; even = it is padded or cut to PG_CONTROL_FILE_SIZE and its CRC
 * recomputed first, so the fuzzer reaches the field checks.
 */
#include "tests/fuzz/fuzz_util.h"

#include "pageserver/pg_control.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool fix = (data[0] & 1) == 0;
    data++;
    size--;
    PgControl c;
    Err err = {0};
    if (!fix) {
        uint8_t *copy = malloc(size ? size : 1);
        if (!copy)
            abort();
        if (size)
            memcpy(copy, data, size);
        if (pg_control_parse(copy, size, &c, &err))
            (void)pg_control_base_lsn(&c);
        free(copy);
        return 0;
    }
    static uint8_t buf[PG_CONTROL_FILE_SIZE];
    memset(buf, 0, sizeof buf);
    memcpy(buf, data, size < sizeof buf ? size : sizeof buf);
    pg_control_update_crc(buf);
    if (pg_control_parse(buf, sizeof buf, &c, &err)) {
        (void)pg_control_base_lsn(&c);
        (void)pg_db_state_name(c.state);
    } else {
        FUZZ_CHECK(err_is_set(&err));
    }
    return 0;
}
