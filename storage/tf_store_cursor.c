/*  tf_store_cursor — snapshot and catch-up cursors, each on a read-only
    connection of its own: made without I/O on the store's thread, begun
    (connection, read transaction, query) on any. */
#include "tf_store_int.h"

#include "tf_clone.h"

struct _tf_store_cursor_t {
    char *path;               /* the database file */
    Techfeed__Filter *filter; /* a clone, or NULL for everything */
    uint64_t since;           /* catch-up: changes after this */
    sqlite3 *db;              /* own read-only connection, once begun */
    sqlite3_stmt *stmt;       /* the records or changes query */
    bool changes;             /* a catch-up cursor, else a snapshot */
    bool done;                /* the query has ended */
    bool row_held;            /* snapshot: stmt's row not handed out yet */
    tf_st_pending_t *tail;    /* snapshot: latest unapplied change per id, by id */
    tf_arena_t *tail_arena;   /* their bytes and records */
    size_t tail_len, tail_next;
    char epoch[33];                   /* copied into every event */
    uint64_t sequence;                /* head as of the read transaction */
    uint64_t heads[TF_STORE_SECTORS]; /* sector heads, same transaction */
    char errstr[512];                 /* last error */
};
// --------------------------------------------------------------- cursors

/*  Opens the read-only connection and its read transaction; the first
    SELECT (tf_st_position) fixes the snapshot. */
static int s_cursor_connect (tf_store_cursor_t *cursor, tf_st_position_t *pos)
{
    int rc = sqlite3_open_v2 (cursor->path, &cursor->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                              NULL);
    if (rc == SQLITE_OK)
        rc = tf_st_configure (cursor->db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec (cursor->db, "BEGIN", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = tf_st_position (cursor->db, pos);
    if (rc != SQLITE_OK)
        return tf_st_sql_error (cursor->errstr, sizeof cursor->errstr, cursor->db, rc,
                                "%s: open cursor", cursor->path);
    cursor->sequence = pos->head;
    memcpy (cursor->heads, pos->heads, sizeof cursor->heads);
    return 0;
}

/*  Whether a record passes a snapshot filter: the same rules as the SQL
    of tf_store_snapshot_open, for records not in the table yet. */
static bool s_filter_match (const Techfeed__Filter *filter, const Techfeed__Milestone *record)
{
    if (!filter)
        return true;
    bool ok = filter->n_sectors == 0;
    for (size_t i = 0; !ok && i < filter->n_sectors; i++)
        ok = (int) filter->sectors[i] == (int) record->sector;
    if (ok && filter->organization && *filter->organization) {
        ok = false;
        for (size_t i = 0; !ok && i < record->n_organizations; i++)
            ok = strcmp (record->organizations[i], filter->organization) == 0;
    }
    if (ok && filter->country && *filter->country)
        ok = record->country && strcmp (record->country, filter->country) == 0;
    if (ok && filter->date_from && *filter->date_from)
        ok = record->date && strcmp (record->date, filter->date_from) >= 0;
    if (ok && filter->date_to && *filter->date_to) {
        //  Prefix-inclusive, as substr (date, 1, length (date_to)) <= date_to
        size_t n = strlen (filter->date_to);
        ok = record->date && strncmp (record->date, filter->date_to, n) <= 0;
    }
    return ok;
}

/*  The snapshot's view of the log past `applied` (what the records table
    does not have yet): the latest change of each id, by id, puts marked
    visible when they pass the filter. Merged into the records rows by
    tf_store_cursor_next_body, so a snapshot is as of the head even when
    the table could not be brought up to date (a full disk). */
static int s_cursor_read_tail (tf_store_cursor_t *cursor, const tf_st_position_t *pos)
{
    sqlite3_stmt *stmt;
    int rc = sqlite3_prepare_v2 (
        cursor->db, "SELECT seq, kind, id, body FROM changes WHERE seq > ?1 ORDER BY seq", -1,
        &stmt, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64 (stmt, 1, tf_columns_i64 (pos->applied));
        cursor->tail_arena = tf_arena_new (TF_STORE_BATCH_ARENA, 0);
        rc = tf_st_read_log (stmt, (size_t) (pos->head - pos->applied), cursor->tail_arena,
                             &cursor->tail, &cursor->tail_len);
        sqlite3_finalize (stmt);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    if (rc != SQLITE_OK)
        return tf_st_sql_error (cursor->errstr, sizeof cursor->errstr, cursor->db, rc,
                                "%s: snapshot: read the log", cursor->path);
    cursor->tail_len = tf_st_latest_per_id (cursor->tail, cursor->tail_len);
    if (tf_st_decode_pending (cursor->tail, cursor->tail_len, cursor->tail_arena, cursor->errstr,
                              sizeof cursor->errstr))
        return TF_STORE_ERROR;
    for (size_t i = 0; i < cursor->tail_len; i++) {
        tf_st_pending_t *change = &cursor->tail[i];
        change->visible = change->record && s_filter_match (cursor->filter, change->record);
    }
    return 0;
}

/*  " AND sector IN (?n, ...)" for a non-empty sector list; *next is the
    next parameter number. */
static void s_sectors_sql (tf_st_sql_t *sql, const Techfeed__Filter *filter, int *next)
{
    if (!filter || !filter->n_sectors)
        return;
    tf_st_sql_add (sql, " AND sector IN (");
    for (size_t i = 0; i < filter->n_sectors; i++)
        tf_st_sql_add (sql, "%s?%d", i ? ", " : "", (*next)++);
    tf_st_sql_add (sql, ")");
}

static void s_sectors_bind (sqlite3_stmt *stmt, const Techfeed__Filter *filter, int *next)
{
    for (size_t i = 0; filter && i < filter->n_sectors; i++)
        sqlite3_bind_int (stmt, (*next)++, filter->sectors[i]);
}

static bool s_given (const char *text)
{
    return text && *text;
}

/*  Prepares `sql` on the cursor's connection; NULL-safe on failure. */
static int s_cursor_prepare (tf_store_cursor_t *cursor, tf_st_sql_t *sql)
{
    int rc = sqlite3_prepare_v2 (cursor->db, sql->text, -1, &cursor->stmt, NULL);
    free (sql->text);
    sql->text = NULL;
    if (rc != SQLITE_OK)
        return tf_st_sql_error (cursor->errstr, sizeof cursor->errstr, cursor->db, rc,
                                "%s: prepare cursor", cursor->path);
    return 0;
}

/*  A snapshot's query: the records table, filtered, in id order. */
static int s_snapshot_begin (tf_store_cursor_t *cursor)
{
    //  The unapplied tail is merged, not applied first: decoding it costs a
    //  fraction of applying it.
    const Techfeed__Filter *filter = cursor->filter;
    tf_st_position_t pos;
    int rc = s_cursor_connect (cursor, &pos);
    if (rc == 0 && pos.applied < pos.head)
        rc = s_cursor_read_tail (cursor, &pos);
    if (rc)
        return rc;
    tf_st_sql_t sql = { NULL, 0, 0 };
    int next = 1;
    tf_st_sql_add (&sql, "SELECT id, body FROM records WHERE 1");
    s_sectors_sql (&sql, filter, &next);
    if (filter && s_given (filter->organization))
        tf_st_sql_add (&sql,
                       " AND EXISTS (SELECT 1 FROM json_each (records.organizations)"
                       " WHERE value = ?%d)",
                       next++);
    if (filter && s_given (filter->country))
        tf_st_sql_add (&sql, " AND country = ?%d", next++);
    if (filter && s_given (filter->date_from))
        tf_st_sql_add (&sql, " AND date >= ?%d", next++);
    if (filter && s_given (filter->date_to)) {
        //  Prefix-inclusive: '2019-01-03' is within date_to '2019'
        tf_st_sql_add (&sql, " AND substr (date, 1, length (?%d)) <= ?%d", next, next);
        next++;
    }
    tf_st_sql_add (&sql, " ORDER BY id");
    if ((rc = s_cursor_prepare (cursor, &sql)))
        return rc;
    next = 1;
    s_sectors_bind (cursor->stmt, filter, &next);
    if (filter && s_given (filter->organization))
        tf_st_bind_text (cursor->stmt, next++, filter->organization);
    if (filter && s_given (filter->country))
        tf_st_bind_text (cursor->stmt, next++, filter->country);
    if (filter && s_given (filter->date_from))
        tf_st_bind_text (cursor->stmt, next++, filter->date_from);
    if (filter && s_given (filter->date_to))
        tf_st_bind_text (cursor->stmt, next++, filter->date_to);
    return 0;
}

/*  A catch-up's query: the log past `since`, in the filter's sectors. */
static int s_changes_begin (tf_store_cursor_t *cursor)
{
    tf_st_position_t pos; // as of the cursor's read transaction
    int rc = s_cursor_connect (cursor, &pos);
    if (rc)
        return rc;
    uint64_t since = cursor->since;
    if (since > pos.head) {
        snprintf (cursor->errstr, sizeof cursor->errstr, "position %llu is beyond head %llu",
                  (unsigned long long) since, (unsigned long long) pos.head);
        return TF_STORE_TRIMMED;
    }
    if (since + 1 < pos.first && since < pos.head) {
        snprintf (cursor->errstr, sizeof cursor->errstr,
                  "position %llu is below the retained log (oldest %llu, head %llu)",
                  (unsigned long long) since, (unsigned long long) pos.first,
                  (unsigned long long) pos.head);
        return TF_STORE_TRIMMED;
    }
    tf_st_sql_t sql = { NULL, 0, 0 };
    int next = 2;
    tf_st_sql_add (&sql, "SELECT seq, kind, sector, id, revision, sector_prev_seq, ts_ms, body"
                         " FROM changes WHERE seq > ?1");
    s_sectors_sql (&sql, cursor->filter, &next);
    tf_st_sql_add (&sql, " ORDER BY seq");
    if ((rc = s_cursor_prepare (cursor, &sql)))
        return rc;
    sqlite3_bind_int64 (cursor->stmt, 1, tf_columns_i64 (since));
    next = 2;
    s_sectors_bind (cursor->stmt, cursor->filter, &next);
    return 0;
}

tf_store_cursor_t *tf_store_cursor_new (tf_store_t *self, bool changes, uint64_t since,
                                        const Techfeed__Filter *filter)
{
    assert (self);
    tf_store_cursor_t *cursor = tf_st_alloc (sizeof *cursor);
    cursor->path = tf_st_strdup (self->path);
    cursor->filter = filter ? (Techfeed__Filter *) tf_clone (&filter->base) : NULL;
    cursor->changes = changes;
    cursor->since = since;
    memcpy (cursor->epoch, self->epoch, sizeof cursor->epoch);
    snprintf (cursor->errstr, sizeof cursor->errstr, "no error");
    return cursor;
}

int tf_store_cursor_begin (tf_store_cursor_t *cursor)
{
    assert (cursor && !cursor->db);
    int rc = cursor->changes ? s_changes_begin (cursor) : s_snapshot_begin (cursor);
    if (rc)
        cursor->done = true;
    return rc == TF_STORE_OK || rc == TF_STORE_TRIMMED ? rc : TF_STORE_ERROR;
}

/*  New and begun on the store's thread; errors into its errstr. */
static tf_store_cursor_t *s_open (tf_store_t *self, bool changes, uint64_t since,
                                  const Techfeed__Filter *filter, int *rc)
{
    tf_store_cursor_t *cursor = tf_store_cursor_new (self, changes, since, filter);
    *rc = tf_store_cursor_begin (cursor);
    if (*rc == TF_STORE_OK)
        return cursor;
    snprintf (self->errstr, sizeof self->errstr, "%s", cursor->errstr);
    tf_store_cursor_destroy (&cursor);
    return NULL;
}

tf_store_cursor_t *tf_store_snapshot_open (tf_store_t *self, const Techfeed__Filter *filter)
{
    int rc;
    return s_open (self, false, 0, filter, &rc);
}

tf_store_cursor_t *tf_store_changes_open (tf_store_t *self, uint64_t since,
                                          const Techfeed__Filter *filter, int *rc)
{
    int scratch;
    return s_open (self, true, since, filter, rc ? rc : &scratch);
}

uint64_t tf_store_cursor_sequence (tf_store_cursor_t *cursor)
{
    assert (cursor);
    return cursor->sequence;
}

const uint64_t *tf_store_cursor_sector_heads (tf_store_cursor_t *cursor)
{
    assert (cursor);
    return cursor->heads;
}

const char *tf_store_cursor_errstr (tf_store_cursor_t *cursor)
{
    assert (cursor);
    return cursor->errstr;
}

/*  Steps the cursor's query: SQLITE_ROW, or 0 at the end, or an error. */
static int s_cursor_step (tf_store_cursor_t *cursor)
{
    if (cursor->done)
        return 0;
    int rc = sqlite3_step (cursor->stmt);
    if (rc == SQLITE_ROW)
        return SQLITE_ROW;
    cursor->done = true; // stepping after the end would restart the query
    if (rc == SQLITE_DONE)
        return 0;
    return tf_st_sql_error (cursor->errstr, sizeof cursor->errstr, cursor->db, rc, "cursor: read");
}

int tf_store_cursor_next_body (tf_store_cursor_t *cursor, const void **body, size_t *size)
{
    assert (cursor && body && size);
    assert (!cursor->changes);
    while (true) {
        if (!cursor->row_held) {
            int rc = s_cursor_step (cursor);
            if (rc < 0)
                return rc;
            cursor->row_held = rc == SQLITE_ROW;
        }
        const char *id =
            cursor->row_held ? (const char *) sqlite3_column_text (cursor->stmt, 0) : NULL;
        const tf_st_pending_t *newer =
            cursor->tail_next < cursor->tail_len ? &cursor->tail[cursor->tail_next] : NULL;
        int order = !newer ? 1 : !id ? -1 : strcmp (newer->id, id ? id : "");
        if (order <= 0) {
            //  The log's change comes first, or replaces the table's row.
            cursor->tail_next++;
            cursor->row_held = cursor->row_held && order != 0;
            if (!newer->visible)
                continue;
            *body = newer->body;
            *size = newer->size;
            return 1;
        }
        if (!id)
            return 0;
        cursor->row_held = false;
        *body = sqlite3_column_blob (cursor->stmt, 1);
        *size = (size_t) sqlite3_column_bytes (cursor->stmt, 1);
        return 1;
    }
}

int tf_store_cursor_next_record (tf_store_cursor_t *cursor, Techfeed__Milestone **record)
{
    assert (cursor && record);
    *record = NULL;
    const void *body = NULL;
    size_t size = 0;
    int rc = tf_store_cursor_next_body (cursor, &body, &size);
    if (rc != 1)
        return rc;
    *record = techfeed__milestone__unpack (NULL, size, (const uint8_t *) body);
    if (!*record) {
        snprintf (cursor->errstr, sizeof cursor->errstr, "%.128s: stored body does not decode",
                  (const char *) sqlite3_column_text (cursor->stmt, 0));
        cursor->done = true;
        return TF_STORE_ERROR;
    }
    return 1;
}

int tf_store_cursor_next_change_body (tf_store_cursor_t *cursor, Techfeed__ChangeEvent *event,
                                      const void **body, size_t *size)
{
    assert (cursor && event && body && size);
    assert (cursor->changes);
    int rc = s_cursor_step (cursor);
    if (rc != SQLITE_ROW)
        return rc;
    sqlite3_stmt *stmt = cursor->stmt;
    techfeed__change_event__init (event);
    event->epoch = cursor->epoch;
    event->has_sequence = event->has_kind = event->has_sector = event->has_revision = 1;
    event->has_sector_prev_sequence = event->has_timestamp_ms = 1;
    event->sequence = tf_st_column_seq (stmt, 0);
    event->kind = (Techfeed__ChangeKind) sqlite3_column_int (stmt, 1);
    event->sector = (Techfeed__Sector) sqlite3_column_int (stmt, 2);
    const char *id = (const char *) sqlite3_column_text (stmt, 3);
    event->id = (char *) (id ? id : "");
    event->revision = tf_st_column_seq (stmt, 4);
    event->sector_prev_sequence = tf_st_column_seq (stmt, 5);
    event->timestamp_ms = sqlite3_column_int64 (stmt, 6);
    bool put = event->kind == TECHFEED__CHANGE_KIND__CHANGE_PUT;
    *body = put ? sqlite3_column_blob (stmt, 7) : NULL;
    *size = put ? (size_t) sqlite3_column_bytes (stmt, 7) : 0;
    return 1;
}

int tf_store_cursor_next_change (tf_store_cursor_t *cursor, Techfeed__ChangeEvent **event)
{
    assert (cursor && event);
    *event = NULL;
    Techfeed__ChangeEvent row;
    const void *body = NULL;
    size_t size = 0;
    int rc = tf_store_cursor_next_change_body (cursor, &row, &body, &size);
    if (rc != 1)
        return rc;
    Techfeed__ChangeEvent *change = tf_st_alloc (sizeof *change);
    *change = row;
    change->epoch = tf_st_strdup (row.epoch);
    change->id = tf_st_strdup (row.id);
    if (body) {
        change->record = techfeed__milestone__unpack (NULL, size, (const uint8_t *) body);
        if (!change->record) {
            snprintf (cursor->errstr, sizeof cursor->errstr,
                      "change %llu: stored body does not decode",
                      (unsigned long long) change->sequence);
            techfeed__change_event__free_unpacked (change, NULL);
            cursor->done = true;
            return TF_STORE_ERROR;
        }
    }
    *event = change;
    return 1;
}

void tf_store_cursor_destroy (tf_store_cursor_t **cursor_p)
{
    assert (cursor_p);
    tf_store_cursor_t *cursor = *cursor_p;
    if (!cursor)
        return;
    sqlite3_finalize (cursor->stmt);
    sqlite3_close (cursor->db); // ends the read transaction
    tf_st_pending_free (cursor->tail, cursor->tail_len);
    tf_arena_destroy (&cursor->tail_arena);
    free (cursor->filter);
    free (cursor->path);
    free (cursor);
    *cursor_p = NULL;
}
