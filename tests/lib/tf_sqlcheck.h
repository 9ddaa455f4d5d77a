/*  tf_sqlcheck — looks into an SQLite file the way another program would
    (its own read-only connection), for tests of files the programs write.
*/
#ifndef TF_SQLCHECK_H_INCLUDED
#define TF_SQLCHECK_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*  PRAGMA integrity_check says "ok"; otherwise false with what it says
    (or why the file does not open) in why. */
bool tf_sql_intact (const char *path, char *why, size_t whylen);

/*  The first column of the first row of `sql` as an integer: 0, or -1
    when the file does not open or the query fails or returns no row. */
int tf_sql_int (const char *path, const char *sql, int64_t *value);

/*  Runs `sql` on a read-write connection of its own (creating the file if
    need be; waiting up to 10 s for a running service's write lock), for a
    test that makes or damages a file as another program would: 0, or -1
    with SQLite's message in why. */
int tf_sql_exec (const char *path, const char *sql, char *why, size_t whylen);

#endif
