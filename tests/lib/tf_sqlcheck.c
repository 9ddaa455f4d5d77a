/*  tf_sqlcheck — see tf_sqlcheck.h. */
#include "tf_sqlcheck.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

/*  Runs `sql` on its own read-only connection; the first row's first
    column as text into out. SQLITE_ROW, or what went wrong. */
static int s_first (const char *path, const char *sql, char *out, size_t outlen, int64_t *value)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_open_v2 (path, &db, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        const unsigned char *text = sqlite3_column_text (stmt, 0);
        snprintf (out, outlen, "%s", text ? (const char *) text : "");
        *value = sqlite3_column_int64 (stmt, 0);
    } else
        snprintf (out, outlen, "%s: %s", path, db ? sqlite3_errmsg (db) : sqlite3_errstr (rc));
    sqlite3_finalize (stmt);
    sqlite3_close (db);
    return rc;
}

bool tf_sql_intact (const char *path, char *why, size_t whylen)
{
    int64_t unused;
    return s_first (path, "PRAGMA integrity_check", why, whylen, &unused) == SQLITE_ROW &&
           strcmp (why, "ok") == 0;
}

int tf_sql_int (const char *path, const char *sql, int64_t *value)
{
    char text[300];
    return s_first (path, sql, text, sizeof text, value) == SQLITE_ROW ? 0 : -1;
}

int tf_sql_exec (const char *path, const char *sql, char *why, size_t whylen)
{
    sqlite3 *db = NULL;
    char *message = NULL;
    int rc = sqlite3_open_v2 (path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout (db, 10000); // a running service writes the file too
        rc = sqlite3_exec (db, sql, NULL, NULL, &message);
    }
    if (rc != SQLITE_OK)
        snprintf (why, whylen, "%s",
                  message ? message
                  : db    ? sqlite3_errmsg (db)
                          : sqlite3_errstr (rc));
    sqlite3_free (message);
    sqlite3_close (db);
    return rc == SQLITE_OK ? 0 : -1;
}
