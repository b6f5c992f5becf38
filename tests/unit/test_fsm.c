/* test_fsm.c: unit tests for shared/fsm.c (transition checks, refusal, rendering, registry). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shared/fsm.h"
#include "shared/str.h"

typedef enum Light { LIGHT_RED, LIGHT_GREEN, LIGHT_AMBER, LIGHT_OFF, LIGHT_STATE_COUNT } Light;

static const char *const LIGHT_NAMES[LIGHT_STATE_COUNT] = {"Red", "Green", "Amber", "Off"};
static const FsmTransition LIGHT_TRANSITIONS[] = {
    {LIGHT_RED, LIGHT_GREEN, "go"},
    {LIGHT_GREEN, LIGHT_AMBER, NULL},
    {LIGHT_AMBER, LIGHT_RED, "stop"},
    {LIGHT_RED, LIGHT_OFF, "night"},
};
static const int LIGHT_TERMINAL[] = {LIGHT_OFF};
static const FsmDef LIGHT_FSM = {
    .name = "test_light",
    .doc = "docs/none.md",
    .state_names = LIGHT_NAMES,
    .n_states = LIGHT_STATE_COUNT,
    .initial = LIGHT_RED,
    .terminal = LIGHT_TERMINAL,
    .n_terminal = FSM_COUNT(LIGHT_TERMINAL),
    .transitions = LIGHT_TRANSITIONS,
    .n_transitions = FSM_COUNT(LIGHT_TRANSITIONS),
};

static void test_allowed_and_names(void **state)
{
    (void)state;
    assert_true(fsm_allowed(&LIGHT_FSM, LIGHT_RED, LIGHT_GREEN));
    assert_true(fsm_allowed(&LIGHT_FSM, LIGHT_GREEN, LIGHT_AMBER));
    assert_false(fsm_allowed(&LIGHT_FSM, LIGHT_GREEN, LIGHT_RED));
    assert_false(fsm_allowed(&LIGHT_FSM, LIGHT_OFF, LIGHT_RED));
    assert_false(fsm_allowed(&LIGHT_FSM, LIGHT_RED, LIGHT_RED));
    assert_string_equal(fsm_state_name(&LIGHT_FSM, LIGHT_AMBER), "Amber");
    assert_string_equal(fsm_state_name(&LIGHT_FSM, LIGHT_STATE_COUNT), "?");
    assert_string_equal(fsm_state_name(&LIGHT_FSM, -1), "?");
}

static void test_set_state(void **state)
{
    (void)state;
    Light l = LIGHT_RED;
    assert_true(fsm_set_state(&LIGHT_FSM, &l, LIGHT_GREEN, "corner"));
    assert_int_equal(l, LIGHT_GREEN);
    /* illegal: refused, state kept, no abort */
    assert_false(fsm_set_state(&LIGHT_FSM, &l, LIGHT_OFF, "corner"));
    assert_int_equal(l, LIGHT_GREEN);
    assert_true(fsm_set_state(&LIGHT_FSM, &l, LIGHT_AMBER, NULL));
    assert_true(fsm_set_state(&LIGHT_FSM, &l, LIGHT_RED, ""));
    assert_int_equal(l, LIGHT_RED);
}

static void test_mermaid(void **state)
{
    (void)state;
    StrBuf b;
    strbuf_init(&b);
    fsm_mermaid(&LIGHT_FSM, &b);
    assert_string_equal(b.data, "stateDiagram-v2\n"
                                "    [*] --> Red\n"
                                "    Red --> Green: go\n"
                                "    Green --> Amber\n"
                                "    Amber --> Red: stop\n"
                                "    Red --> Off: night\n"
                                "    Off --> [*]\n");
    strbuf_finish(&b);
}

static void test_registry(void **state)
{
    (void)state;
    size_t before = fsm_registered_count();
    fsm_register(&LIGHT_FSM);
    fsm_register(&LIGHT_FSM); /* twice: once */
    assert_int_equal(fsm_registered_count(), before + 1);
    assert_ptr_equal(fsm_registered(before), &LIGHT_FSM);
    assert_null(fsm_registered(before + 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allowed_and_names),
        cmocka_unit_test(test_set_state),
        cmocka_unit_test(test_mermaid),
        cmocka_unit_test(test_registry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
