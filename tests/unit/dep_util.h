/*
 * dep_util.h: what a unit test does when an external program it needs (Postgres, initdb, GNU tar)
 * is missing. On a developer machine it skips with a message; under CI (CI=true) or with
 * REQUIRE_POSTGRES=1 it fails, so a CI image without the dependency cannot go green. Header-only
 * (static functions) because every test is its own executable; include after <cmocka.h>.
 */
#ifndef TESTS_UNIT_DEP_UTIL_H
#define TESTS_UNIT_DEP_UTIL_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* dep_required: true when a missing dependency must fail the test instead of skipping it. */
static inline bool dep_required(void)
{
    const char *ci = getenv("CI");
    const char *req = getenv("REQUIRE_POSTGRES");
    return (ci != NULL && strcmp(ci, "true") == 0) || (req != NULL && strcmp(req, "1") == 0);
}

/* SKIP_MISSING_DEP(why): skip the current test (fail it when dep_required()). */
#define SKIP_MISSING_DEP(why)                                                                      \
    do {                                                                                           \
        if (dep_required())                                                                        \
            fail_msg("%s (a missing dependency fails the test under CI=true or "                   \
                     "REQUIRE_POSTGRES=1)",                                                        \
                     (why));                                                                       \
        print_message("%s: skipping\n", (why));                                                    \
        skip();                                                                                    \
    } while (0)

#endif
