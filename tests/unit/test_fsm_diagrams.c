/*
 * test_fsm_diagrams.c: every registered state machine (shared/fsm.h) has its diagram in the docs
 * file it names, right after its `<!-- fsm:NAME -->` marker, exactly as fsm_mermaid renders it.
 * The test links both daemons' libraries whole, so every FSM_REGISTER in the tree is seen.
 */
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

/* read_repo_file: a file of the repository, found from this file's path (absolute in CMake
 * builds) or the current directory. NULL when not found; the caller frees. */
static char *read_repo_file(const char *rel)
{
    char path[4096];
    const char *self = __FILE__;
    const char *cut = strstr(self, "tests/unit/");
    if (cut != NULL && !str_printf(path, sizeof(path), "%.*s%s", (int)(cut - self), self, rel))
        return NULL;
    if (cut == NULL)
        str_copy(path, sizeof(path), rel);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    StrBuf b;
    strbuf_init(&b);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        strbuf_append(&b, buf, n);
    fclose(f);
    return strbuf_detach(&b);
}

/* doc_block: the body of the ```mermaid fence that follows the machine's marker (NULL when there
 * is none); the caller frees. */
static char *doc_block(const char *doc, const char *name)
{
    char marker[128];
    if (!str_printf(marker, sizeof(marker), "<!-- fsm:%s -->\n", name))
        return NULL;
    const char *m = strstr(doc, marker);
    if (m == NULL)
        return NULL;
    const char *fence = "```mermaid\n";
    const char *start = strstr(m + strlen(marker), fence);
    /* only blank lines between the marker and the fence */
    if (start == NULL || strspn(m + strlen(marker), "\n") != (size_t)(start - m - strlen(marker)))
        return NULL;
    start += strlen(fence);
    const char *end = strstr(start, "```");
    if (end == NULL)
        return NULL;
    return xstrndup(start, (size_t)(end - start));
}

static void test_every_machine_matches_its_doc(void **state)
{
    (void)state;
    /* every machine in the tree; a new one adds its name here */
    static const char *const expected[] = {
        "reconcile",      "db_conn",    "db_pool_conn",    "db_request",     "http_call",
        "notifier_job",   "slot",       "operation",       "schema_migrate", "timeline_fanout",
        "deletion_queue", "timeline",   "daemon",          "tenant_lock",    "storcon_startup",
        "storcon_phase",  "worker_job", "node_scheduling",
    };
    for (size_t k = 0; k < sizeof(expected) / sizeof(expected[0]); k++) {
        bool found = false;
        for (size_t i = 0; i < fsm_registered_count(); i++)
            found = found || strcmp(fsm_registered(i)->name, expected[k]) == 0;
        if (!found)
            fail_msg("state machine %s is not registered", expected[k]);
    }

    int bad = 0;
    for (size_t i = 0; i < fsm_registered_count(); i++) {
        const FsmDef *def = fsm_registered(i);
        StrBuf m;
        strbuf_init(&m);
        fsm_mermaid(def, &m);
        char *doc = read_repo_file(def->doc);
        char *block = doc != NULL ? doc_block(doc, def->name) : NULL;
        if (doc == NULL) {
            print_error("%s: %s not found\n", def->name, def->doc);
            bad++;
        } else if (block == NULL) {
            print_error("%s: no \"<!-- fsm:%s -->\" marker followed by a ```mermaid block in %s; "
                        "add:\n<!-- fsm:%s -->\n```mermaid\n%s```\n",
                        def->name, def->name, def->doc, def->name, m.data);
            bad++;
        } else if (strcmp(block, m.data) != 0) {
            print_error("%s: the diagram in %s differs from the table; regenerate it:\n%s",
                        def->name, def->doc, m.data);
            bad++;
        }
        free(block);
        free(doc);
        strbuf_finish(&m);
    }
    assert_int_equal(bad, 0);
}

/* Machine names are unique (they key the docs markers). */
static void test_names_unique(void **state)
{
    (void)state;
    for (size_t i = 0; i < fsm_registered_count(); i++)
        for (size_t k = i + 1; k < fsm_registered_count(); k++)
            assert_string_not_equal(fsm_registered(i)->name, fsm_registered(k)->name);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_machine_matches_its_doc),
        cmocka_unit_test(test_names_unique),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
