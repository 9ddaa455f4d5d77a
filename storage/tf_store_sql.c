/*  tf_store_sql — the SQL helpers of the tf_store files: allocation,
    errors into errstr, statements run and bound, the log's position. */
#include "tf_store_int.h"

void tf_st_oom (void)
{
    fputs ("tf_store: out of memory\n", stderr);
    abort ();
}

/*  CLOCK_MONOTONIC, for the connection lock's accounts. */
uint64_t tf_st_now_ns (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (uint64_t) now.tv_sec * 1000000000u + (uint64_t) now.tv_nsec;
}

void *tf_st_alloc (size_t size)
{
    void *p = calloc (1, size ? size : 1);
    if (!p)
        tf_st_oom ();
    return p;
}

char *tf_st_strdup (const char *s)
{
    char *copy = strdup (s);
    if (!copy)
        tf_st_oom ();
    return copy;
}

void tf_st_sql_add (tf_st_sql_t *sql, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    int n = vsnprintf (NULL, 0, fmt, ap);
    va_end (ap);
    assert (n >= 0);
    if (sql->len + (size_t) n + 1 > sql->cap) {
        sql->cap = (sql->len + (size_t) n + 1) * 2;
        sql->text = realloc (sql->text, sql->cap);
        if (!sql->text)
            tf_st_oom ();
    }
    va_start (ap, fmt);
    vsnprintf (sql->text + sql->len, sql->cap - sql->len, fmt, ap);
    va_end (ap);
    sql->len += (size_t) n;
}

/*  Sequence-like column (never negative when written by us). */
uint64_t tf_st_column_seq (sqlite3_stmt *stmt, int column)
{
    int64_t v = sqlite3_column_int64 (stmt, column);
    return v > 0 ? (uint64_t) v : 0;
}

/*  Writes "context: sqlite message" to buf and returns TF_STORE_FULL for a
    full disk or database, else TF_STORE_ERROR. */
int tf_st_sql_error (char *buf, size_t size, sqlite3 *db, int rc, const char *fmt, ...)
{
    char context[512];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (context, sizeof context, fmt, ap);
    va_end (ap);
    int c_errno = errno; /* before anything below can change it */
    int sys = db ? sqlite3_system_errno (db) : 0;
    //  A write past RLIMIT_FSIZE fails with EFBIG, but SQLite does not keep
    //  that errno for a failed WAL append: errno still holds it.
    if (!sys && rc == SQLITE_IOERR_WRITE && c_errno == EFBIG)
        sys = EFBIG;
    bool full = (rc & 0xff) == SQLITE_FULL ||
                ((rc & 0xff) == SQLITE_IOERR && (sys == ENOSPC || sys == EDQUOT || sys == EFBIG));
    const char *message = db ? sqlite3_errmsg (db) : sqlite3_errstr (rc);
    if ((rc & 0xff) == SQLITE_IOERR && sys)
        snprintf (buf, size, "%s: %s (%s)", context, message, strerror (sys));
    else
        snprintf (buf, size, "%s: %s", context, message);
    return full ? TF_STORE_FULL : TF_STORE_ERROR;
}

/*  Error that is not SQLite's; returns `code`. */
int tf_st_fail (tf_store_t *self, int code, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (self->errstr, sizeof self->errstr, fmt, ap);
    va_end (ap);
    return code;
}

/*  Steps a statement that returns no rows and resets it; errors into err. */
int tf_st_step_done (sqlite3 *db, sqlite3_stmt *stmt, char *err, size_t errlen, const char *context)
{
    int rc = sqlite3_step (stmt);
    int result = 0;
    if (rc != SQLITE_DONE)
        result = tf_st_sql_error (err, errlen, db, rc, "%s", context);
    sqlite3_reset (stmt);
    return result;
}

int tf_st_exec_on (sqlite3 *db, const char *sql, char *err, size_t errlen, const char *context)
{
    int rc = sqlite3_exec (db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : tf_st_sql_error (err, errlen, db, rc, "%s", context);
}

/*  The same on the writer connection, errors into errstr. */
int tf_st_run (tf_store_t *self, sqlite3_stmt *stmt, const char *context)
{
    return tf_st_step_done (self->db, stmt, self->errstr, sizeof self->errstr, context);
}

int tf_st_exec (tf_store_t *self, const char *sql, const char *context)
{
    return tf_st_exec_on (self->db, sql, self->errstr, sizeof self->errstr, context);
}

int tf_st_bind_text (sqlite3_stmt *stmt, int index, const char *text)
{
    if (!text)
        return sqlite3_bind_null (stmt, index);
    return sqlite3_bind_text (stmt, index, text, -1, SQLITE_STATIC);
}

/*  A blob never binds as NULL, even when empty. */
int tf_st_bind_blob (sqlite3_stmt *stmt, int index, const void *data, size_t size)
{
    return sqlite3_bind_blob64 (stmt, index, size ? data : "", size, SQLITE_STATIC);
}

/*  Settings every connection gets (writer and cursors). */
int tf_st_configure (sqlite3 *db)
{
    sqlite3_extended_result_codes (db, 1);
    sqlite3_busy_timeout (db, TF_STORE_BUSY_MS);
    int rc = sqlite3_db_config (db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *) NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec (db, "PRAGMA trusted_schema = OFF; PRAGMA foreign_keys = ON", NULL, NULL,
                           NULL);
    return rc;
}

/*  One integer from a single-row query. */
int tf_st_query_int (sqlite3 *db, const char *sql, int64_t *value)
{
    sqlite3_stmt *stmt;
    int rc = sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        *value = sqlite3_column_int64 (stmt, 0);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE)
        rc = SQLITE_ERROR;
    sqlite3_finalize (stmt);
    return rc;
}

/*  Head, oldest retained change and sector heads, read on `db` (inside one
    transaction when the caller wants them consistent): the state and
    sector_heads rows say them as of `applied`, the log's tail past it
    moves them on. */
int tf_st_position (sqlite3 *db, tf_st_position_t *pos)
{
    memset (pos, 0, sizeof *pos);
    sqlite3_stmt *stmt;
    int rc = sqlite3_prepare_v2 (db,
                                 "SELECT applied, (SELECT min(seq) FROM changes),"
                                 " (SELECT max(seq) FROM changes) FROM state WHERE one = 1",
                                 -1, &stmt, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        pos->applied = tf_st_column_seq (stmt, 0);
        uint64_t last = tf_st_column_seq (stmt, 2);
        pos->head = last > pos->applied ? last : pos->applied;
        bool empty = sqlite3_column_type (stmt, 1) == SQLITE_NULL;
        pos->first = empty ? pos->head + 1 : tf_st_column_seq (stmt, 1);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE)
        rc = SQLITE_CORRUPT; /* no state row */
    sqlite3_finalize (stmt);
    if (rc != SQLITE_OK)
        return rc;

    rc = sqlite3_prepare_v2 (db,
                             "SELECT sector, seq FROM sector_heads UNION ALL"
                             " SELECT sector, max(seq) FROM changes WHERE seq > ?1 GROUP BY sector",
                             -1, &stmt, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int64 (stmt, 1, tf_columns_i64 (pos->applied));
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        int64_t sector = sqlite3_column_int64 (stmt, 0);
        uint64_t seq = tf_st_column_seq (stmt, 1);
        if (sector >= 0 && sector < TF_STORE_SECTORS && seq > pos->heads[sector])
            pos->heads[sector] = seq;
    }
    sqlite3_finalize (stmt);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}
