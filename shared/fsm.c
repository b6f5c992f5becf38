/*
 * fsm.c: table-driven state machines (see fsm.h): transition checks, logging, the Mermaid
 * rendering and the registry the docs test walks.
 */
#include <stdlib.h>

#include "shared/log.h"

#include "shared/fsm.h"

#define FSM_REGISTRY_MAX 64

static const FsmDef *registry[FSM_REGISTRY_MAX];
static size_t registry_len;

const char *fsm_state_name(const FsmDef *def, int state)
{
    if (state < 0 || (size_t)state >= def->n_states || def->state_names[state] == NULL)
        return "?";
    return def->state_names[state];
}

bool fsm_allowed(const FsmDef *def, int from, int to)
{
    for (size_t i = 0; i < def->n_transitions; i++) {
        if (def->transitions[i].from == from && def->transitions[i].to == to)
            return true;
    }
    return false;
}

bool fsm_transition(const FsmDef *def, int from, int to, const char *ctx)
{
    const char *sep = ctx != NULL && ctx[0] != '\0' ? " " : "";
    if (ctx == NULL)
        ctx = "";
    if (!fsm_allowed(def, from, to)) {
        log_error("%s%s%s: illegal transition %s -> %s refused", def->name, sep, ctx,
                  fsm_state_name(def, from), fsm_state_name(def, to));
        return false;
    }
    log_write(def->log_info ? LOG_INFO : LOG_DEBUG, __FILE__, __LINE__, "%s%s%s: %s -> %s",
              def->name, sep, ctx, fsm_state_name(def, from), fsm_state_name(def, to));
    return true;
}

void fsm_mermaid(const FsmDef *def, StrBuf *out)
{
    strbuf_append_str(out, "stateDiagram-v2\n");
    strbuf_printf(out, "    [*] --> %s\n", fsm_state_name(def, def->initial));
    for (size_t i = 0; i < def->n_transitions; i++) {
        const FsmTransition *t = &def->transitions[i];
        strbuf_printf(out, "    %s --> %s", fsm_state_name(def, t->from),
                      fsm_state_name(def, t->to));
        if (t->note != NULL && t->note[0] != '\0')
            strbuf_printf(out, ": %s", t->note);
        strbuf_append_str(out, "\n");
    }
    for (size_t i = 0; i < def->n_terminal; i++)
        strbuf_printf(out, "    %s --> [*]\n", fsm_state_name(def, def->terminal[i]));
}

/* fsm_register: called from constructors before main, so no lock. A full registry is a build
 * mistake (raise FSM_REGISTRY_MAX), reported at once. */
void fsm_register(const FsmDef *def)
{
    for (size_t i = 0; i < registry_len; i++) {
        if (registry[i] == def)
            return;
    }
    if (registry_len == FSM_REGISTRY_MAX) {
        log_error("fsm: registry full, %s not registered (raise FSM_REGISTRY_MAX)", def->name);
        abort();
    }
    registry[registry_len++] = def;
}

size_t fsm_registered_count(void)
{
    return registry_len;
}

const FsmDef *fsm_registered(size_t i)
{
    return i < registry_len ? registry[i] : NULL;
}
