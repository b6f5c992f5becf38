/* test_failpoint.c: unit tests for shared/failpoint.c (parsing, actions, counts, probability). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "shared/err.h"
#include "shared/failpoint.h"
#include "shared/log.h"

static int setup(void **state)
{
    failpoint_reset_all();
    return 0;
}

static long elapsed_ms(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
}

static void test_unarmed_passes(void **state)
{
    Err err = {0};
    assert_true(failpoint_check("nothing-armed", &err));
    assert_false(err_is_set(&err));
    assert_int_equal(failpoint_delay_ms("nothing-armed", &err), 0);
    /* another point armed: this one still passes */
    assert_true(failpoint_set("other", "return", &err));
    assert_true(failpoint_check("nothing-armed", &err));
    assert_false(err_is_set(&err));
}

static void test_return_actions(void **state)
{
    Err err = {0};
    assert_true(failpoint_set("fp.return", "return", &err));
    assert_false(failpoint_check("fp.return", &err));
    assert_int_equal(err.code, ERR_INTERNAL);
    assert_non_null(strstr(err.msg, "fp.return"));
    /* unlimited: fires again */
    err_clear(&err);
    assert_false(failpoint_check("fp.return", &err));

    assert_true(failpoint_set("fp.return", "return(disk on fire, again)", &err));
    err_clear(&err);
    assert_false(failpoint_check("fp.return", &err));
    assert_int_equal(err.code, ERR_INTERNAL);
    assert_string_equal(err.msg, "disk on fire, again");

    err_clear(&err);
    assert_int_equal(failpoint_delay_ms("fp.return", &err), -1);
    assert_string_equal(err.msg, "disk on fire, again");

    assert_true(failpoint_set("fp.return", "off", &err));
    err_clear(&err);
    assert_true(failpoint_check("fp.return", &err));
    assert_false(err_is_set(&err));
}

static void test_sleep_action(void **state)
{
    Err err = {0};
    assert_true(failpoint_set("fp.sleep", "sleep(120)", &err));
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    assert_true(failpoint_check("fp.sleep", &err));
    long took = elapsed_ms(&start);
    assert_true(took >= 120);
    assert_true(took < 5000);
    assert_false(err_is_set(&err));

    /* the async form does not sleep, it reports the delay */
    clock_gettime(CLOCK_MONOTONIC, &start);
    assert_int_equal(failpoint_delay_ms("fp.sleep", &err), 120);
    assert_true(elapsed_ms(&start) < 100);

    /* a non-sleep point through delay_ms: 0 when not armed */
    assert_int_equal(failpoint_delay_ms("fp.unarmed", &err), 0);
}

static void test_counted(void **state)
{
    Err err = {0};
    assert_true(failpoint_set("fp.count", "2*return(twice)", &err));
    assert_false(failpoint_check("fp.count", &err));
    assert_false(failpoint_check("fp.count", &err));
    err_clear(&err);
    assert_true(failpoint_check("fp.count", &err));
    assert_false(err_is_set(&err));
    assert_true(failpoint_check("fp.count", &err));

    /* a counted sleep consumes a firing through delay_ms */
    assert_true(failpoint_set("fp.count", "1*sleep(7)", &err));
    assert_int_equal(failpoint_delay_ms("fp.count", &err), 7);
    assert_int_equal(failpoint_delay_ms("fp.count", &err), 0);
}

static void test_probability(void **state)
{
    Err err = {0};
    assert_true(failpoint_set("fp.never", "0%return", &err));
    assert_true(failpoint_set("fp.always", "100%return", &err));
    assert_true(failpoint_set("fp.half", "50%return", &err));
    int half = 0;
    for (int i = 0; i < 2000; i++) {
        err_clear(&err);
        assert_true(failpoint_check("fp.never", &err));
        assert_false(err_is_set(&err));
        assert_false(failpoint_check("fp.always", &err));
        if (!failpoint_check("fp.half", &err))
            half++;
    }
    /* 2000 draws at p=0.5: sd ~22; 700..1300 is > 13 sd from the mean */
    assert_true(half > 700 && half < 1300);

    /* probability and count combine: fires at most n times */
    assert_true(failpoint_set("fp.both", "100%3*return", &err));
    int fired = 0;
    for (int i = 0; i < 10; i++) {
        if (!failpoint_check("fp.both", &err))
            fired++;
    }
    assert_int_equal(fired, 3);
}

static void test_parse_errors(void **state)
{
    static const struct {
        const char *name;
        const char *action;
        bool ok;
    } cases[] = {
        {"a", "off", true},         {"a", "return", true},        {"a", " return ( x ) ", true},
        {"a", "return()", true},    {"a", "sleep(0)", true},      {"a", "sleep(100)", true},
        {"a", "exit", true},        {"a", "abort", true},         {"a", "5*return", true},
        {"a", "12.5%return", true}, {"a", "50%2*sleep(1)", true}, {"a", "", false},
        {"a", "retur", false},      {"a", "sleep", false},        {"a", "sleep()", false},
        {"a", "sleep(-1)", false},  {"a", "sleep(1x)", false},    {"a", "sleep(1", false},
        {"a", "return(x", false},   {"a", "exit(1)", false},      {"a", "0*return", false},
        {"a", "x*return", false},   {"a", "101%return", false},   {"a", "-1%return", false},
        {"a", "%return", false},    {"a", "pause", false},        {"", "return", false},
        {"a=b", "return", false},   {"a b", "return", false},     {NULL, "return", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        Err err = {0};
        bool ok = failpoint_set(cases[i].name, cases[i].action, &err);
        if (ok != cases[i].ok)
            fail_msg("case %zu: failpoint_set(%s, \"%s\") = %d (%s)", i,
                     cases[i].name ? cases[i].name : "NULL", cases[i].action, ok, err.msg);
        if (!ok)
            assert_int_equal(err.code, ERR_BAD_REQUEST);
    }
    failpoint_reset_all();
    Err err = {0};
    assert_true(failpoint_check("a", &err)); /* reset disarmed everything */
}

static void test_configure_spec(void **state)
{
    Err err = {0};
    assert_true(failpoint_configure(" a = return(boom) ; b=2*sleep(5);;c=off;", &err));
    assert_false(failpoint_check("a", &err));
    assert_string_equal(err.msg, "boom");
    assert_int_equal(failpoint_delay_ms("b", &err), 5);
    err_clear(&err);
    assert_true(failpoint_check("c", &err));

    assert_true(failpoint_configure("", &err));
    assert_true(failpoint_configure(NULL, &err));

    /* a bad item arms nothing, not even the good items before it */
    failpoint_reset_all();
    assert_false(failpoint_configure("x=return;y=bogus", &err));
    assert_int_equal(err.code, ERR_BAD_REQUEST);
    assert_non_null(strstr(err.msg, "y"));
    err_clear(&err);
    assert_true(failpoint_check("x", &err));
    assert_false(failpoint_configure("noequals", &err));
    assert_false(failpoint_configure("a=return,b=return", &err)); /* ',' is not a separator */

    /* off through configure disarms */
    assert_true(failpoint_configure("a=return", &err));
    assert_true(failpoint_configure("a=off", &err));
    err_clear(&err);
    assert_true(failpoint_check("a", &err));
}

static void test_configure_json(void **state)
{
    Err err = {0};
    json_error_t jerr;
    json_t *body = json_loads("[{\"name\": \"j1\", \"actions\": \"return(from json)\"},"
                              " {\"name\": \"j2\", \"actions\": \"sleep(3)\"}]",
                              0, &jerr);
    assert_non_null(body);
    assert_true(failpoint_configure_json(body, &err));
    json_decref(body);
    assert_false(failpoint_check("j1", &err));
    assert_string_equal(err.msg, "from json");
    assert_int_equal(failpoint_delay_ms("j2", &err), 3);

    static const char *bad[] = {
        "{\"name\": \"j\", \"actions\": \"return\"}",
        "[{\"name\": \"j\"}]",
        "[{\"name\": \"j\", \"actions\": 5}]",
        "[{\"name\": 1, \"actions\": \"return\"}]",
        "[{\"name\": \"j\", \"actions\": \"return\", \"extra\": 1}]",
        "[{\"name\": \"j3\", \"actions\": \"return\"}, {\"name\": \"j4\", \"actions\": \"nope\"}]",
        "[\"j=return\"]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *b = json_loads(bad[i], 0, &jerr);
        assert_non_null(b);
        err_clear(&err);
        assert_false(failpoint_configure_json(b, &err));
        assert_int_equal(err_http_status(err.code), 400);
        json_decref(b);
    }
    /* the partially valid body did not arm j3 */
    err_clear(&err);
    assert_true(failpoint_check("j3", &err));
    json_t *empty = json_array();
    assert_true(failpoint_configure_json(empty, &err));
    json_decref(empty);
}

/* run_child: fork, arm fp.crash with action, hit it, and report how the child ended and what it
 * wrote to stderr (into out[cap]). */
static int run_child(const char *action, char *out, size_t cap)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        Err err = {0};
        if (!failpoint_set("fp.crash", action, &err))
            _exit(3);
        if (!failpoint_check("fp.crash", &err))
            _exit(4);
        _exit(0); /* not reached if the failpoint worked */
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(fds[0], out + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void test_exit_and_abort_in_child(void **state)
{
    char out[4096];
    int status = run_child("exit", out, sizeof(out));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    assert_non_null(strstr(out, "ERROR"));
    assert_non_null(strstr(out, "failpoint fp.crash: exit"));

    status = run_child("abort", out, sizeof(out));
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    assert_non_null(strstr(out, "fp.crash"));

    /* 0% never fires: the child reaches its normal end */
    status = run_child("0%exit", out, sizeof(out));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    log_set_level(LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_unarmed_passes, setup),
        cmocka_unit_test_setup(test_return_actions, setup),
        cmocka_unit_test_setup(test_sleep_action, setup),
        cmocka_unit_test_setup(test_counted, setup),
        cmocka_unit_test_setup(test_probability, setup),
        cmocka_unit_test_setup(test_parse_errors, setup),
        cmocka_unit_test_setup(test_configure_spec, setup),
        cmocka_unit_test_setup(test_configure_json, setup),
        cmocka_unit_test_setup(test_exit_and_abort_in_child, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
