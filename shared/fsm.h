/*
 * fsm.h: one way to write a state machine: a declarative table that checks transitions, logs
 * them and renders the docs diagram.
 *
 * A machine is a `static const FsmDef` (its state names indexed by the enum, its initial and
 * terminal states, its allowed (from, to) rows each with an optional note shown in the diagram)
 * plus one FSM_REGISTER(def) line next to it. Its code changes state only through
 * fsm_set_state(), which refuses (logs an error, returns false, leaves the state) a transition
 * that is not a row of the table. Every registered machine names the docs file that carries its
 * diagram after a `<!-- fsm:NAME -->` marker; tests/unit/test_fsm_diagrams.c renders every
 * registered machine with fsm_mermaid() and fails when the docs block differs.
 */
#ifndef SHARED_FSM_H
#define SHARED_FSM_H

#include <stdbool.h>
#include <stddef.h>

#include "shared/str.h"

typedef struct FsmTransition {
    int from;
    int to;
    const char *note; /* label in the diagram; NULL = none */
} FsmTransition;

typedef struct FsmDef {
    const char *name; /* short id: log lines and the docs marker `<!-- fsm:NAME -->` */
    const char *doc;  /* docs file with the diagram, from the repository root */
    const char *const *state_names; /* n_states names, indexed by the state enum */
    size_t n_states;
    int initial;         /* drawn as [*] --> initial */
    const int *terminal; /* drawn as terminal --> [*] */
    size_t n_terminal;
    const FsmTransition *transitions;
    size_t n_transitions;
    bool log_info; /* transitions log at INFO (else DEBUG) */
} FsmDef;

#define FSM_COUNT(array) (sizeof(array) / sizeof((array)[0]))

/* fsm_state_name: the state's name, "?" when out of range. */
const char *fsm_state_name(const FsmDef *def, int state);
/* fsm_allowed: (from, to) is a row of the table. */
bool fsm_allowed(const FsmDef *def, int from, int to);
/* fsm_transition: check (from, to) and log it ("<name> <ctx>: From -> To"). An illegal one logs
 * an error and returns false (it never aborts). ctx (an id for the log line) may be NULL. */
bool fsm_transition(const FsmDef *def, int from, int to, const char *ctx);
/* fsm_set_state: *statep = to when the table allows it (see fsm_transition); works on any enum
 * lvalue. Evaluates to the bool result. */
#define fsm_set_state(def, statep, to, ctx)                                                        \
    (fsm_transition((def), (int)*(statep), (int)(to), (ctx)) ? (*(statep) = (to), true) : false)

/* fsm_mermaid: append the "stateDiagram-v2" text of the table (no code fence) to out. */
void fsm_mermaid(const FsmDef *def, StrBuf *out);

/* fsm_register: add def to the process-wide registry (def must outlive the process; registering
 * the same def twice is a no-op). Normally through FSM_REGISTER. */
void fsm_register(const FsmDef *def);
/* fsm_registered_count / fsm_registered: iterate the registry in registration order. */
size_t fsm_registered_count(void);
const FsmDef *fsm_registered(size_t i);

/* FSM_REGISTER(def): register a file-scope FsmDef before main() runs (a constructor). */
#define FSM_REGISTER(def)                                                                          \
    __attribute__((constructor)) static void fsm_register_##def(void)                              \
    {                                                                                              \
        fsm_register(&(def));                                                                      \
    }

#endif
