/*
 * migrations.h: the schema migrations embedded into the storcon binary.
 *
 * cmake/embed_migrations.cmake turns every migrations/NNNN_name.{up,down}.sql into one row of
 * MIGRATIONS (numbered 1..N without gaps, in order) at build time, so the binary carries its
 * schema and never reads SQL files at run time. storcon/schema_migrate.h applies them.
 */
#ifndef STORCON_MIGRATIONS_H
#define STORCON_MIGRATIONS_H

typedef struct Migration {
    int version;      /* 1..MIGRATIONS_COUNT; MIGRATIONS[i].version == i + 1 */
    const char *name; /* "initial" for 0001_initial */
    const char *up;   /* SQL script, possibly several statements */
    const char *down; /* SQL script that undoes `up` exactly */
} Migration;

extern const Migration MIGRATIONS[];
extern const int MIGRATIONS_COUNT;

#endif
