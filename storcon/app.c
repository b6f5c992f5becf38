/*
 * app.c: the storage controller's startup phases (app.h) as a table (shared/fsm.h); the diagram
 * is in docs/state-machines.md.
 */
#include "storcon/app.h"

#include "shared/fsm.h"

static const char *const PHASE_NAMES[STORCON_PHASE_COUNT] = {
    [STORCON_PHASE_MIGRATING] = "MIGRATING",
    [STORCON_PHASE_STARTING] = "STARTING",
    [STORCON_PHASE_READY] = "READY",
    [STORCON_PHASE_STOPPING] = "STOPPING",
};

static const FsmTransition PHASE_TRANSITIONS[] = {
    {STORCON_PHASE_MIGRATING, STORCON_PHASE_STARTING, "schema up to date, service started"},
    {STORCON_PHASE_MIGRATING, STORCON_PHASE_STOPPING, "SIGTERM / SIGINT or fatal error"},
    {STORCON_PHASE_STARTING, STORCON_PHASE_READY, "service startup done"},
    {STORCON_PHASE_STARTING, STORCON_PHASE_STOPPING, "SIGTERM / SIGINT or fatal error"},
    {STORCON_PHASE_READY, STORCON_PHASE_STOPPING, "SIGTERM / SIGINT or fatal error"},
};

static const int PHASE_TERMINAL[] = {STORCON_PHASE_STOPPING};

static const FsmDef PHASE_FSM = {
    .name = "storcon_phase",
    .doc = "docs/state-machines.md",
    .state_names = PHASE_NAMES,
    .n_states = STORCON_PHASE_COUNT,
    .initial = STORCON_PHASE_MIGRATING,
    .terminal = PHASE_TERMINAL,
    .n_terminal = FSM_COUNT(PHASE_TERMINAL),
    .transitions = PHASE_TRANSITIONS,
    .n_transitions = FSM_COUNT(PHASE_TRANSITIONS),
    .log_info = true,
};
FSM_REGISTER(PHASE_FSM)

const char *storcon_phase_name(StorconPhase p)
{
    return fsm_state_name(&PHASE_FSM, (int)p);
}

void storcon_app_set_phase(StorconApp *app, StorconPhase phase)
{
    if (app->phase != phase)
        (void)fsm_set_state(&PHASE_FSM, &app->phase, phase, NULL);
}
