/* test_pageserver_slot_fsm.c: unit tests for the tenant slot state machine table of
 * pageserver/slot.c: its shape (every state reachable, no dead ends but Gone, no duplicate
 * rows), slot_transition_allowed, and that docs/pageserver.md carries exactly the diagram the table
 * generates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shared/err.h"
#include "shared/fsutil.h"
#include "shared/str.h"

#include "pageserver/slot.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

static void test_table_shape(void **state)
{
    (void)state;
    bool reached[SLOT_STATE_COUNT] = {false};
    bool leaves[SLOT_STATE_COUNT] = {false};
    reached[SLOT_INIT] = true;
    for (size_t i = 0; i < SLOT_TRANSITIONS_COUNT; i++) {
        const SlotTransition *t = &SLOT_TRANSITIONS[i];
        assert_true(t->from >= 0 && t->from < SLOT_STATE_COUNT);
        assert_true(t->to >= 0 && t->to < SLOT_STATE_COUNT);
        assert_int_not_equal(t->from, t->to);
        assert_non_null(t->why);
        reached[t->to] = true;
        leaves[t->from] = true;
        for (size_t k = i + 1; k < SLOT_TRANSITIONS_COUNT; k++)
            assert_false(SLOT_TRANSITIONS[k].from == t->from && SLOT_TRANSITIONS[k].to == t->to);
    }
    for (int s = 0; s < SLOT_STATE_COUNT; s++) {
        assert_true(reached[s]);
        if (s == SLOT_GONE)
            assert_false(leaves[s]); /* terminal */
        else
            assert_true(leaves[s]);
        assert_string_not_equal(slot_state_name((SlotState)s), "Unknown");
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
        if (slot_transition_allowed(cases[i].from, cases[i].to) != cases[i].allowed)
            fail_msg("%s -> %s: expected %s", slot_state_name(cases[i].from),
                     slot_state_name(cases[i].to), cases[i].allowed ? "allowed" : "refused");
    }
}

static void test_mermaid_lines(void **state)
{
    (void)state;
    StrBuf b = STRBUF_INIT;
    slot_fsm_mermaid(&b);
    assert_true(str_has_prefix(b.data, "stateDiagram-v2\n"));
    assert_non_null(strstr(b.data, "    Attaching --> Active: timelines loaded\n"));
    size_t lines = 0;
    for (const char *p = b.data; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, SLOT_TRANSITIONS_COUNT + 3); /* header, [*] in, [*] out */
    strbuf_finish(&b);
}

/* docs_path: docs/pageserver.md from this file's path (absolute under CMake, relative to the
 * repository root when compiled by hand from there). */
static void docs_path(char *out, size_t cap)
{
    const char *self = __FILE__;
    const char *tail = strstr(self, "tests/unit/");
    size_t root = tail ? (size_t)(tail - self) : 0;
    str_printf(out, cap, "%.*sdocs/pageserver.md", (int)root, self);
}

static void test_docs_diagram_matches_table(void **state)
{
    (void)state;
    char path[1024];
    docs_path(path, sizeof(path));
    char *text = NULL;
    size_t len = 0;
    Err err = {0};
    if (!fs_read_file(path, 1 << 20, &text, &len, &err))
        fail_msg("%s: %s", path, err.msg);
    const char *marker = strstr(text, "<!-- slot-fsm:");
    assert_non_null(marker);
    const char *start = strstr(marker, "```mermaid\n");
    assert_non_null(start);
    start += strlen("```mermaid\n");
    const char *end = strstr(start, "```");
    assert_non_null(end);
    StrBuf b = STRBUF_INIT;
    slot_fsm_mermaid(&b);
    if ((size_t)(end - start) != b.len || memcmp(start, b.data, b.len) != 0)
        fail_msg("docs/pageserver.md's slot diagram differs from SLOT_TRANSITIONS; regenerate it "
                 "with `pageserver --print-slot-fsm`:\n%s",
                 b.data);
    strbuf_finish(&b);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_shape),
        cmocka_unit_test(test_transition_allowed),
        cmocka_unit_test(test_mermaid_lines),
        cmocka_unit_test(test_docs_diagram_matches_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
