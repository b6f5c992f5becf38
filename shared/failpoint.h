/*
 * failpoint.h: named points in the code that tests arm to inject faults. Compiled in always and
 * inert unless armed (one relaxed atomic load when nothing is armed anywhere).
 *
 * Actions: "off"; "return" or "return(<message>)" (the point fails with ERR_INTERNAL and that
 * message); "sleep(<ms>)"; "exit" (_exit(1) at once: a crash without cleanup); "abort". An action
 * may be prefixed with "<n>*" (fire n times, then off) or "<p>%" (fire with probability p).
 * Configured from a spec string "name=action;name2=action" (a daemon flag) or from a debug route
 * (failpoint_configure_json).
 */
#ifndef SHARED_FAILPOINT_H
#define SHARED_FAILPOINT_H

#include <stdbool.h>

#include <jansson.h>

#include "shared/err.h"

bool failpoint_set(const char *name, const char *action, Err *err) MUST_CHECK;
bool failpoint_configure(const char *spec, Err *err) MUST_CHECK;
/* failpoint_configure_json: [{"name": "...", "actions": "..."}, ...] (the debug route body). */
bool failpoint_configure_json(const json_t *body, Err *err) MUST_CHECK;
void failpoint_reset_all(void);

/* failpoint_check: evaluate the point. "return" -> false with err set; "sleep" sleeps the calling
 * thread (use failpoint_delay_ms on the event loop instead); "exit"/"abort" end the process.
 * Otherwise true. */
bool failpoint_check(const char *name, Err *err) MUST_CHECK;

/* failpoint_delay_ms: for asynchronous code: the milliseconds to delay if the point is armed with
 * sleep (consumes one firing), else 0. Other actions behave as in failpoint_check, with a "return"
 * reported through *err and a result of -1. */
long failpoint_delay_ms(const char *name, Err *err);

/* failpoint_any_armed: some point is armed (any thread; one relaxed atomic load). Code that takes
 * a shortcut around its points (the page service's reads on its own threads) checks this. */
bool failpoint_any_armed(void);

#endif
