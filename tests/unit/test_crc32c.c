/* test_crc32c.c: CRC-32C against published check values and the bytewise definition. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "shared/crc32c.h"

/* crc32c_bitwise: the definition, one bit at a time, to check the sliced tables against. */
static uint32_t crc32c_bitwise(const uint8_t *p, size_t len)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return ~c;
}

static void test_check_values(void **state)
{
    static const struct {
        const char *in;
        uint32_t crc;
    } rows[] = {
        {"", 0x00000000u},
        {"a", 0xC1D04330u},
        {"123456789", 0xE3069283u},
        {"The quick brown fox jumps over the lazy dog", 0x22620404u},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        assert_int_equal(crc32c(rows[i].in, strlen(rows[i].in)), rows[i].crc);

    uint8_t zeros[32] = {0};
    assert_int_equal(crc32c(zeros, sizeof(zeros)), 0x8A9136AAu); /* RFC 3720 B.4 */
    uint8_t ones[32];
    memset(ones, 0xFF, sizeof(ones));
    assert_int_equal(crc32c(ones, sizeof(ones)), 0x62A8AB43u);
}

static void test_matches_bitwise_and_extends(void **state)
{
    uint8_t buf[1031];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 131 + 7);
    for (size_t len = 0; len < sizeof(buf); len += 37) {
        assert_int_equal(crc32c(buf, len), crc32c_bitwise(buf, len));
        for (size_t split = 0; split <= len; split += 113)
            assert_int_equal(crc32c_extend(crc32c(buf, split), buf + split, len - split),
                             crc32c(buf, len));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_values),
        cmocka_unit_test(test_matches_bitwise_and_extends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
