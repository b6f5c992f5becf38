/*
 * pg_paths.h: where Postgres keeps things inside a data directory, by the pageserver's key fields
 * (docs/key-values.md): relation segment files `global/<rel>[_fsm|_vm|_init][.<segno>]` and
 * `base/<db>/...`, and the SLRU directories. The import reads these paths, basebackup and the
 * export write them.
 */
#ifndef SHARED_PG_PATHS_H
#define SHARED_PG_PATHS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/key.h"

#define PG_PATH_MAX 96 /* enough for any path below (base/<u32>/<u32>_init.<u32> + NUL) */

/* pg_fork_suffix: "", "_fsm", "_vm", "_init" for fork 0..3; "" for anything else. Static. */
const char *pg_fork_suffix(uint8_t fork);

/* pg_rel_dir_path: "global" for the global tablespace, else "base/<db>". */
void pg_rel_dir_path(uint32_t spc, uint32_t db, char out[PG_PATH_MAX]);

/* pg_rel_file_path: the segment file segno of a relation fork: "<dir>/<rel><suffix>" for segment
 * 0, "<dir>/<rel><suffix>.<segno>" after. */
void pg_rel_file_path(uint32_t spc, uint32_t db, uint32_t rel, uint8_t fork, uint32_t segno,
                      char out[PG_PATH_MAX]);

/* pg_slru_dir: "pg_xact", "pg_multixact/members", "pg_multixact/offsets" (static); NULL for an
 * unknown kind. */
const char *pg_slru_dir(SlruKind kind);

#endif
