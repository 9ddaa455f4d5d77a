/*  tf_store_apply — the records table behind the log: batches read apart
    and written under the connection lock; trimming; gets. */
#include "tf_store_int.h"

/*  Writes the figures as of `applied` (the applier's transaction): the
    state row and the sector heads that moved. The writer's commits write
    none of this: at open the log's tail moves the figures on again. */
static int s_write_applied (tf_store_t *self, const tf_st_figures_t *now, char *err, size_t errlen)
{
    const tf_st_figures_t *was = &self->at_applied;
    sqlite3_stmt *stmt = self->stmt[ST_STATE_SET];
    sqlite3_bind_int64 (stmt, 1, tf_columns_i64 (now->count));
    sqlite3_bind_int64 (stmt, 2, tf_columns_i64 (now->digest));
    sqlite3_bind_int64 (stmt, 3, tf_columns_i64 (now->head));
    int result = tf_st_step_done (self->db, stmt, err, errlen, "apply: state");
    for (int sector = 0; result == 0 && sector < TF_STORE_SECTORS; sector++) {
        if (now->heads[sector] == was->heads[sector])
            continue;
        stmt = self->stmt[ST_HEAD_SET];
        sqlite3_bind_int (stmt, 1, sector);
        sqlite3_bind_int64 (stmt, 2, tf_columns_i64 (now->heads[sector]));
        result = tf_st_step_done (self->db, stmt, err, errlen, "apply: sector head");
    }
    return result;
}
// --------------------------------------------------------------- records behind the log

/*  By id, then sequence: the last of each id's run is its latest change. */
static int s_pending_cmp (const void *a, const void *b)
{
    const tf_st_pending_t *x = (const tf_st_pending_t *) a, *y = (const tf_st_pending_t *) b;
    int c = strcmp (x->id, y->id);
    return c ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

/*  Writes the records row for a stored body (revision and updated_at
    set), on the applier's connection. */
static int s_upsert (tf_store_t *self, const tf_st_pending_t *change, char *err, size_t errlen)
{
    sqlite3_stmt *stmt = self->stmt[change->new_sector ? ST_UPSERT : ST_UPSERT_SAME_SECTOR];
    int result = 0;
    if (tf_columns_bind_json (stmt, change->record, &change->json, change->body, change->size)) {
        snprintf (err, errlen, "%.128s: cannot bind the record's columns", change->id);
        result = TF_STORE_ERROR;
    } else
        result = tf_st_step_done (self->db, stmt, err, errlen, "write record");
    sqlite3_clear_bindings (stmt);
    return result;
}

static int s_apply_row (tf_store_t *self, const tf_st_pending_t *change, char *err, size_t errlen)
{
    if (change->kind != TECHFEED__CHANGE_KIND__CHANGE_DELETE)
        return s_upsert (self, change, err, errlen);
    sqlite3_stmt *stmt = self->stmt[ST_REMOVE];
    tf_st_bind_text (stmt, 1, change->id);
    return tf_st_step_done (self->db, stmt, err, errlen, "delete record");
}

/*  Reads up to `max` rows (seq, kind, id, body) of a bound log query into
    *out, their ids and bodies in `arena`; *count of them. SQLite's code,
    or SQLITE_DONE when all were read. */
int tf_st_read_log (sqlite3_stmt *stmt, size_t max, tf_arena_t *arena, tf_st_pending_t **out,
                    size_t *count)
{
    size_t n = 0, cap = max < 1024 ? max : 1024;
    tf_st_pending_t *rows = tf_st_alloc (cap * sizeof *rows);
    int rc = SQLITE_DONE;
    while (n < max && (rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        if (n == cap) {
            cap *= 2;
            rows = realloc (rows, cap * sizeof *rows);
            if (!rows)
                tf_st_oom ();
        }
        tf_st_pending_t *row = &rows[n++];
        memset (row, 0, sizeof *row);
        row->seq = tf_st_column_seq (stmt, 0);
        row->kind = sqlite3_column_int (stmt, 1);
        const unsigned char *id = sqlite3_column_text (stmt, 2);
        row->id = tf_arena_copy (arena, id, id ? (size_t) sqlite3_column_bytes (stmt, 2) : 0);
        row->size = (size_t) sqlite3_column_bytes (stmt, 3);
        row->sector = sqlite3_column_int (stmt, 4);
        row->revision = tf_st_column_seq (stmt, 5);
        row->body = tf_arena_copy (arena, sqlite3_column_blob (stmt, 3), row->size);
    }
    sqlite3_reset (stmt);
    *out = rows;
    *count = n;
    return n == max ? SQLITE_DONE : rc;
}

/*  Sorts by id and keeps the latest change of each id, marked new_sector
    when one of that id's changes was a delete or a first put (revisions
    count from 1 again after a delete); returns how many. */
size_t tf_st_latest_per_id (tf_st_pending_t *rows, size_t count)
{
    qsort (rows, count, sizeof *rows, s_pending_cmp);
    size_t kept = 0;
    bool new_sector = false;
    for (size_t i = 0; i < count; i++) {
        new_sector = new_sector || rows[i].kind == TECHFEED__CHANGE_KIND__CHANGE_DELETE ||
                     rows[i].revision == 1;
        if (i + 1 < count && strcmp (rows[i].id, rows[i + 1].id) == 0)
            continue; // an older change of the same id
        rows[i].new_sector = new_sector;
        new_sector = false;
        rows[kept++] = rows[i];
    }
    return kept;
}

void tf_st_pending_free (tf_st_pending_t *rows, size_t count)
{
    for (size_t i = 0; i < count; i++)
        tf_columns_json_free (&rows[i].json);
    free (rows);
}

/*  Decodes the body of every put into `arena`; 0, or TF_STORE_ERROR
    naming the change. */
int tf_st_decode_pending (tf_st_pending_t *rows, size_t count, tf_arena_t *arena, char *err,
                          size_t errlen)
{
    for (size_t i = 0; i < count; i++) {
        if (rows[i].kind == TECHFEED__CHANGE_KIND__CHANGE_DELETE)
            continue;
        rows[i].record = (Techfeed__Milestone *) tf_wire_decode_in (
            arena, &techfeed__milestone__descriptor, rows[i].body, rows[i].size);
        if (!rows[i].record) {
            snprintf (err, errlen, "change %llu (%.128s): stored body does not decode",
                      (unsigned long long) rows[i].seq, rows[i].id);
            return TF_STORE_ERROR;
        }
    }
    return 0;
}

/*  Makes each put's list columns as JSON; 0, or TF_STORE_ERROR naming
    the change. */
static int s_encode_pending (tf_st_pending_t *rows, size_t count, char *err, size_t errlen)
{
    for (size_t i = 0; i < count; i++)
        if (rows[i].record && tf_columns_json (rows[i].record, &rows[i].json)) {
            snprintf (err, errlen,
                      "change %llu (%.128s): a list column cannot be JSON (not UTF-8 or not "
                      "finite)",
                      (unsigned long long) rows[i].seq, rows[i].id);
            return TF_STORE_ERROR;
        }
    return 0;
}

/*  A batch of the log read and made ready apart from the writer's
    connection: what it writes is then only the rows themselves. */
typedef struct {
    tf_st_pending_t *rows; /* latest change per id, decoded, JSON made */
    size_t count;
    uint64_t from;         /* applies changes past this ... */
    uint64_t last;         /* ... up to this */
    tf_st_figures_t moved; /* from zero: count and digest moved (mod 2^64), heads reached */
} s_batch_t;

/*  Reads up to `max` changes past `from` with `stmt` (ST_UNAPPLIED on the
    writer's connection or the applier's reader) and prepares them, their
    bytes and decoded records in `arena`. */
static int s_batch_read (sqlite3 *db, sqlite3_stmt *stmt, uint64_t from, size_t max,
                         tf_arena_t *arena, s_batch_t *batch, char *err, size_t errlen)
{
    memset (batch, 0, sizeof *batch);
    batch->from = batch->last = from;
    sqlite3_bind_int64 (stmt, 1, tf_columns_i64 (from));
    sqlite3_bind_int64 (stmt, 2, (int64_t) max);
    int rc = tf_st_read_log (stmt, max, arena, &batch->rows, &batch->count);
    if (rc != SQLITE_DONE)
        return tf_st_sql_error (err, errlen, db, rc, "apply: read the log");
    for (size_t i = 0; i < batch->count; i++) {
        const tf_st_pending_t *row = &batch->rows[i];
        tf_st_figures_move (&batch->moved, row->seq, row->kind, row->sector, row->id,
                            row->revision);
        batch->last = row->seq;
    }
    //  Each id once, in id order: neighbouring ids share b-tree pages.
    batch->count = tf_st_latest_per_id (batch->rows, batch->count);
    int result = tf_st_decode_pending (batch->rows, batch->count, arena, err, errlen);
    return result ? result : s_encode_pending (batch->rows, batch->count, err, errlen);
}

/*  Writes a prepared batch (the connection's lock held, no transaction
    open). Nothing when the records table moved past `from` meanwhile. */
static int s_batch_write (tf_store_t *self, const s_batch_t *batch, char *err, size_t errlen)
{
    if (batch->count == 0 || atomic_load (&self->applied) != batch->from)
        return 0;
    tf_st_figures_t figures = self->at_applied;
    figures.count += batch->moved.count;
    figures.digest += batch->moved.digest;
    figures.head = batch->last;
    for (int sector = 0; sector < TF_STORE_SECTORS; sector++)
        if (batch->moved.heads[sector])
            figures.heads[sector] = batch->moved.heads[sector];
    //  No sync of its own: records are rebuilt from the log, which the
    //  writer's next commit syncs with these pages; a crash before that
    //  leaves `applied` where it was and the changes are applied again.
    //  Parsed each time, unlike BEGIN and COMMIT: SQLite applies this
    //  pragma when it compiles it. Kept prepared, the first batch ran
    //  with FULL (one fdatasync more under strace).
    int result =
        tf_st_exec_on (self->db, "PRAGMA synchronous = NORMAL", err, errlen, "apply: sync");
    if (result == 0)
        result = tf_st_step_done (self->db, self->stmt[ST_BEGIN], err, errlen, "apply: begin");
    for (size_t i = 0; result == 0 && i < batch->count; i++)
        result = s_apply_row (self, &batch->rows[i], err, errlen);
    if (result == 0)
        result = s_write_applied (self, &figures, err, errlen);
    if (result == 0)
        result = tf_st_step_done (self->db, self->stmt[ST_COMMIT], err, errlen, "apply: commit");
    if (result == 0) {
        self->at_applied = figures;
        atomic_store (&self->applied, batch->last);
    } else if (!sqlite3_get_autocommit (self->db))
        sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
    int restored =
        tf_st_exec_on (self->db, "PRAGMA synchronous = FULL", err, errlen, "apply: sync");
    return result ? result : restored;
}

/*  How many changes a batch of at most `max` (0: all) takes now. */
static size_t s_batch_size (tf_store_t *self, size_t max)
{
    uint64_t behind = atomic_load (&self->head) - atomic_load (&self->applied);
    return max == 0 || max > behind ? (size_t) behind : max;
}

/*  Starts writing the WAL's dirty pages to disk without waiting. The
    applier's commits do not sync (s_batch_write), so otherwise the
    writer's next commit would write this batch's pages in its own fsync,
    holding the connection's lock meanwhile. A hint: failing changes
    nothing but the timing. */
static void s_start_writeback (tf_store_t *self)
{
#ifdef SYNC_FILE_RANGE_WRITE
    if (self->wal_fd >= 0)
        (void) sync_file_range (self->wal_fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#else
    (void) self;
#endif
}

int tf_store_apply_from (tf_store_t *self, size_t max, char *err, size_t errlen)
{
    assert (self && err && errlen);
    size_t size = s_batch_size (self, max);
    if (size == 0)
        return 0;
    //  Read and decode on the reader's connection, without the lock.
    s_batch_t batch;
    int result = s_batch_read (self->reader, self->reader_unapplied, atomic_load (&self->applied),
                               size, self->applier_arena, &batch, err, errlen);
    if (result == 0) {
        pthread_mutex_lock (&self->lock);
        uint64_t held = tf_st_now_ns ();
        result = s_batch_write (self, &batch, err, errlen);
        atomic_fetch_add (&self->applier_held_ns, tf_st_now_ns () - held);
        pthread_mutex_unlock (&self->lock);
        if (result == 0)
            s_start_writeback (self);
    }
    tf_st_pending_free (batch.rows, batch.count);
    tf_arena_reset (self->applier_arena);
    return result;
}

int tf_st_locked_apply (tf_store_t *self, size_t max)
{
    if (!sqlite3_get_autocommit (self->db))
        return tf_st_fail (self, TF_STORE_ERROR, "apply: a transaction is open");
    size_t size = s_batch_size (self, max);
    if (size == 0)
        return 0;
    //  The writer's thread: not the applier's arena
    tf_arena_t *arena = tf_arena_new (TF_STORE_BATCH_ARENA, 0);
    s_batch_t batch;
    int result = s_batch_read (self->db, self->stmt[ST_UNAPPLIED], atomic_load (&self->applied),
                               size, arena, &batch, self->errstr, sizeof self->errstr);
    if (result == 0)
        result = s_batch_write (self, &batch, self->errstr, sizeof self->errstr);
    tf_st_pending_free (batch.rows, batch.count);
    tf_arena_destroy (&arena);
    return result;
}

// --------------------------------------------------------------- trim, get

int tf_st_locked_trim (tf_store_t *self, uint64_t keep_count, int64_t before_ms)
{
    assert (self);
    //  Only what the records table holds goes: the applier's work stays
    //  on its thread, never on the caller's
    sqlite3_stmt *stmt = self->stmt[ST_TRIM];
    sqlite3_bind_int64 (stmt, 1, keep_count > INT64_MAX ? INT64_MAX : (int64_t) keep_count);
    sqlite3_bind_int64 (stmt, 2, before_ms > 0 ? before_ms : INT64_MIN);
    sqlite3_bind_int64 (stmt, 3, tf_columns_i64 (atomic_load (&self->applied)));
    sqlite3_bind_int64 (stmt, 4, tf_columns_i64 (self->committed.head));
    sqlite3_bind_int (stmt, 5, TF_STORE_STEP_ROWS);
    int result = tf_st_run (self, stmt, "trim");
    return result ? result : sqlite3_changes (self->db) == TF_STORE_STEP_ROWS;
}

/*  Decodes a stored body into *record. */
static int s_decode_body (tf_store_t *self, sqlite3_stmt *stmt, int column, const char *id,
                          Techfeed__Milestone **record)
{
    const uint8_t *body = sqlite3_column_blob (stmt, column);
    size_t size = (size_t) sqlite3_column_bytes (stmt, column);
    *record = techfeed__milestone__unpack (NULL, size, body);
    return *record ? 0
                   : tf_st_fail (self, TF_STORE_ERROR, "%.128s: stored body does not decode", id);
}

int tf_st_locked_get (tf_store_t *self, const char *id, Techfeed__Milestone **record)
{
    assert (self);
    assert (id && record);
    *record = NULL;
    //  The log's unapplied tail is newer than records.
    sqlite3_stmt *stmt = self->stmt[ST_GET_TAIL];
    sqlite3_bind_int64 (stmt, 1, tf_columns_i64 (atomic_load (&self->applied)));
    tf_st_bind_text (stmt, 2, id);
    int rc = sqlite3_step (stmt);
    bool deleted =
        rc == SQLITE_ROW && sqlite3_column_int (stmt, 0) == TECHFEED__CHANGE_KIND__CHANGE_DELETE;
    if (rc != SQLITE_ROW || deleted) {
        sqlite3_reset (stmt);
        stmt = self->stmt[ST_GET];
        tf_st_bind_text (stmt, 1, id);
        rc = deleted ? SQLITE_DONE : sqlite3_step (stmt);
    }
    int result = 0;
    if (rc == SQLITE_ROW)
        result = s_decode_body (self, stmt, stmt == self->stmt[ST_GET] ? 0 : 1, id, record);
    else if (rc == SQLITE_DONE)
        result = tf_st_fail (self, TF_STORE_NOT_FOUND, "%.128s: no such record", id);
    else
        result =
            tf_st_sql_error (self->errstr, sizeof self->errstr, self->db, rc, "get %.128s", id);
    sqlite3_reset (stmt);
    return result;
}
