/* test_pageserver_slot_fsm.c: unit tests for the tenant slot state machine of pageserver/slot.c
 * (SLOT_FSM, shared/fsm.h): its shape (every state reachable, no dead ends but Gone, no duplicate
 * rows), which transitions fsm_allowed / fsm_set_state accept and refuse, and its rendering. The
 * docs diagram is checked by test_fsm_diagrams. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shared/fsm.h"
#include "shared/str.h"

#include "pageserver/slot.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

static void test_table_shape(void **state)
{
    (void)state;
    bool reached[SLOT_STATE_COUNT] = {false};
    bool leaves[SLOT_STATE_COUNT] = {false};
    reached[SLOT_INIT] = true;
    const FsmDef *def = &SLOT_FSM;
    assert_string_equal(def->name, "slot");
    assert_int_equal(def->n_states, SLOT_STATE_COUNT);
    assert_int_equal(def->initial, SLOT_INIT);
    assert_int_equal(def->n_terminal, 1);
    assert_int_equal(def->terminal[0], SLOT_GONE);
    for (size_t i = 0; i < def->n_transitions; i++) {
        const FsmTransition *t = &def->transitions[i];
        assert_true(t->from >= 0 && t->from < SLOT_STATE_COUNT);
        assert_true(t->to >= 0 && t->to < SLOT_STATE_COUNT);
        assert_int_not_equal(t->from, t->to);
        assert_non_null(t->note);
        reached[t->to] = true;
        leaves[t->from] = true;
        for (size_t k = i + 1; k < def->n_transitions; k++)
            assert_false(def->transitions[k].from == t->from && def->transitions[k].to == t->to);
    }
    for (int s = 0; s < SLOT_STATE_COUNT; s++) {
        assert_true(reached[s]);
        if (s == SLOT_GONE)
            assert_false(leaves[s]); /* terminal */
        else
            assert_true(leaves[s]);
        assert_string_not_equal(slot_state_name((SlotState)s), "?");
    }
}

typedef struct Case {
    SlotState from, to;
    bool allowed;
} Case;

static void test_transition_allowed(void **state)
{
    (void)state;
    static const Case cases[] = {
        {SLOT_INIT, SLOT_PERSISTING, true},     {SLOT_PERSISTING, SLOT_ATTACHING, true},
        {SLOT_ATTACHING, SLOT_ACTIVE, true},    {SLOT_ACTIVE, SLOT_STOPPING, true},
        {SLOT_STOPPING, SLOT_PERSISTING, true}, {SLOT_STOPPING, SLOT_REMOVING, true},
        {SLOT_REMOVING, SLOT_GONE, true},       {SLOT_SECONDARY, SLOT_STOPPING, true},
        {SLOT_ACTIVE, SLOT_GONE, false},        {SLOT_ACTIVE, SLOT_PERSISTING, false},
        {SLOT_ATTACHING, SLOT_STOPPING, true},  {SLOT_GONE, SLOT_INIT, false},
        {SLOT_SECONDARY, SLOT_ACTIVE, false},   {SLOT_PERSISTING, SLOT_ACTIVE, false},
        {SLOT_REMOVING, SLOT_ACTIVE, false},    {SLOT_BROKEN, SLOT_ACTIVE, false},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        if (fsm_allowed(&SLOT_FSM, cases[i].from, cases[i].to) != cases[i].allowed)
            fail_msg("%s -> %s: expected %s", slot_state_name(cases[i].from),
                     slot_state_name(cases[i].to), cases[i].allowed ? "allowed" : "refused");
        /* fsm_set_state moves the state exactly when the table allows it */
        SlotState st = cases[i].from;
        assert_int_equal(fsm_set_state(&SLOT_FSM, &st, cases[i].to, "test"), cases[i].allowed);
        assert_int_equal(st, cases[i].allowed ? cases[i].to : cases[i].from);
    }
}

static void test_mermaid_lines(void **state)
{
    (void)state;
    StrBuf b = STRBUF_INIT;
    fsm_mermaid(&SLOT_FSM, &b);
    assert_true(str_has_prefix(b.data, "stateDiagram-v2\n"));
    assert_non_null(strstr(b.data, "    Attaching --> Active: timelines loaded\n"));
    size_t lines = 0;
    for (const char *p = b.data; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, SLOT_FSM.n_transitions + 3); /* header, [*] in, [*] out */
    strbuf_finish(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_shape),
        cmocka_unit_test(test_transition_allowed),
        cmocka_unit_test(test_mermaid_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
