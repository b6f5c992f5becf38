/* pg_paths.c: data directory paths of relation segment files and SLRU directories. */
#include "shared/pg_paths.h"

#include "shared/str.h"

static const char *const FORK_SUFFIX[] = {"", "_fsm", "_vm", "_init"};

static const char *const SLRU_DIRS[SLRU_KIND_COUNT] = {
    [SLRU_CLOG] = "pg_xact",
    [SLRU_MULTIXACT_MEMBERS] = "pg_multixact/members",
    [SLRU_MULTIXACT_OFFSETS] = "pg_multixact/offsets",
};

const char *pg_fork_suffix(uint8_t fork)
{
    return fork <= FORK_INIT ? FORK_SUFFIX[fork] : "";
}

void pg_rel_dir_path(uint32_t spc, uint32_t db, char out[PG_PATH_MAX])
{
    if (spc == GLOBALTABLESPACE_OID)
        (void)str_copy(out, PG_PATH_MAX, "global");
    else
        (void)str_printf(out, PG_PATH_MAX, "base/%u", db);
}

void pg_rel_file_path(uint32_t spc, uint32_t db, uint32_t rel, uint8_t fork, uint32_t segno,
                      char out[PG_PATH_MAX])
{
    char dir[PG_PATH_MAX];
    pg_rel_dir_path(spc, db, dir);
    if (segno == 0)
        (void)str_printf(out, PG_PATH_MAX, "%s/%u%s", dir, rel, pg_fork_suffix(fork));
    else
        (void)str_printf(out, PG_PATH_MAX, "%s/%u%s.%u", dir, rel, pg_fork_suffix(fork), segno);
}

const char *pg_slru_dir(SlruKind kind)
{
    return (unsigned)kind < SLRU_KIND_COUNT ? SLRU_DIRS[kind] : NULL;
}
