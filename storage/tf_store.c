/*  tf_store — the techfeed database (see tf_store.h).

    File format. An SQLite 3 database in WAL mode with
    PRAGMA application_id = 0x54464544 ('TFED') and PRAGMA user_version =
    the schema version (migrations in tf_store_schema.c). Every table is STRICT.

    meta — facts about the file, written once at creation
    ----------------------------------------------------------------------
    key           TEXT     PRIMARY KEY
    value         ANY      'epoch': 32 lower-case hex digits (16 random bytes)
                           'created_ms': Unix ms of creation

    A write transaction appends to `changes` (and `reply_groups`) only. The
    other tables are derived from the log and written behind it, in the
    applier's transactions (tf_store_apply): `records`, `sector_heads` and
    the state row say how things stood at change `applied`; at open, the
    log's changes past it bring the figures in memory up to the head.

    state — exactly one row (one = 1), as of `applied`
    ----------------------------------------------------------------------
    one           INTEGER  PRIMARY KEY, always 1
    record_count  INTEGER  records stored
    digest        INTEGER  sum of tf_digest_item(id, revision) mod 2^64,
                           the uint64 stored as its int64 bit pattern
                           (computed in C: SQL arithmetic overflows to REAL)
    applied       INTEGER  last change the derived tables reflect (schema
                           2); the head is max(applied, last seq in the
                           log), so trimming the whole log reuses none

    changes — the change log, the truth; seq is the global sequence,
    given by the store as head + 1 (an append at the end of the b-tree,
    no other index: a catch-up reads from its position on)
    ----------------------------------------------------------------------
    seq             INTEGER  PRIMARY KEY
    kind            INTEGER  1 put, 2 delete (Techfeed__ChangeKind)
    sector          INTEGER  sector of the record
    id              TEXT     record id
    revision        INTEGER  revision after the change (delete: the deleted
                           one); a put's previous revision is one less
    sector_prev_seq INTEGER  previous change in the same sector, 0 if none
    ts_ms           INTEGER  Unix ms of the change
    body            BLOB     packed record for a put, NULL for a delete

    records — one row per stored milestone, the columns of tf_columns.h
    (`body` is the truth, the other columns copy it so other services can
    query with plain SQL), as of `applied`: each batch writes each id once,
    in id order. A snapshot merges the log's changes past `applied`; a get
    reads them first. Indexes: the id (primary key) and records_sector,
    for a snapshot of some sectors; schema 3 dropped records_date, which
    no read of the service used.

    sector_heads — last change per sector, as of `applied`; survives
    trimming the log
    ----------------------------------------------------------------------
    sector        INTEGER  PRIMARY KEY
    seq           INTEGER  last sequence in that sector

    reply_groups — idempotency cache: the replies of one write transaction,
    appended as one row just before it commits (schema 4; schema 2 had a
    row per reply, schema 1 a `requests` table keyed by request id)
    ----------------------------------------------------------------------
    n             INTEGER  PRIMARY KEY: the number of its first reply
                           (replies are numbered 1, 2, ... in order of
                           writing; the row holds n .. n + count - 1)
    count         INTEGER  replies in the row, at least 1
    created_ms    INTEGER  Unix ms of its newest reply: the row expires
                           whole, when that one is due
    replies       BLOB     `count` entries, one after the other, each:
                             4 bytes   request id length L, big-endian
                             L bytes   request id (printable ASCII)
                             4 bytes   reply length R, big-endian
                             R bytes   packed IngestReply
                           Of two entries under one id, in one row or
                           two, the later one counts.

    In memory, loaded at open: id -> (revision, sector) of every stored
    record and request id -> (reply_groups row, entry's byte offset), so
    the write path looks nothing up in SQLite. Changes to them inside a transaction are journaled and undone
    when it (or a savepoint) rolls back.
*/
#include "tf_store_int.h"
#include "tf_vfs.h"

// --------------------------------------------------------------- statements

static const char *s_sql[ST_COUNT] = {
    [ST_UPSERT] = TF_COLUMNS_UPSERT,
    [ST_UPSERT_SAME_SECTOR] = TF_COLUMNS_UPSERT_SAME_SECTOR,
    [ST_REMOVE] = "DELETE FROM records WHERE id = ?1",
    [ST_APPEND] = "INSERT INTO changes (seq, kind, sector, id, revision, sector_prev_seq, ts_ms,"
                  " body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_HEAD_SET] = "INSERT INTO sector_heads (sector, seq) VALUES (?1, ?2)"
                    " ON CONFLICT (sector) DO UPDATE SET seq = excluded.seq",
    [ST_STATE_GET] = "SELECT record_count, digest, applied FROM state WHERE one = 1",
    [ST_STATE_SET] = "UPDATE state SET record_count = ?1, digest = ?2, applied = ?3 WHERE one = 1",
    [ST_UNAPPLIED] = "SELECT seq, kind, id, body, sector, revision FROM changes WHERE seq > ?1"
                     " ORDER BY seq LIMIT ?2",
    [ST_GET] = "SELECT body FROM records WHERE id = ?1",
    [ST_GET_TAIL] = "SELECT kind, body FROM changes WHERE seq > ?1 AND id = ?2"
                    " ORDER BY seq DESC LIMIT 1",
    [ST_REQ_GET] = "SELECT replies FROM reply_groups WHERE n = ?1",
    [ST_REQ_PUT] =
        "INSERT INTO reply_groups (n, count, created_ms, replies) VALUES (?1, ?2, ?3, ?4)",
    //  Housekeeping reads only the oldest rows, by key (up to ?3, or ?5
    //  rows): what is due is at the start of these append-only tables.
    [ST_REQ_EXPIRE] = "DELETE FROM reply_groups WHERE n < ?3"
                      " AND (created_ms < ?1 OR n + count - 1 <= ?2) RETURNING n, count, replies",
    //  Only applied changes go: `records` must never need a trimmed one.
    //  What goes is a prefix of the log, never a hole in it: by age, the
    //  changes before the step's first one (by seq) not older than ?2, as
    //  ts_ms is wall-clock time and may go back. The subqueries run once
    //  and read by key, the one with ts_ms at most the step's rows.
    [ST_TRIM] = "DELETE FROM changes WHERE seq < (SELECT min(seq) FROM changes) + ?5"
                " AND seq <= ?3 AND ((?1 > 0 AND seq <= ?4 - ?1) OR seq < coalesce ("
                "(SELECT seq FROM changes WHERE seq < (SELECT min(seq) FROM changes) + ?5"
                " AND ts_ms >= ?2 ORDER BY seq LIMIT 1), (SELECT min(seq) FROM changes) + ?5))",
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
};

// --------------------------------------------------------------- open, close

/*  Runs `sql` and hands every row to `row`; SQLITE_OK at the end. */
static int s_each_row (sqlite3 *db, const char *sql, void (*row) (tf_store_t *, sqlite3_stmt *),
                       tf_store_t *self)
{
    sqlite3_stmt *stmt;
    int rc = sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL);
    if (rc != SQLITE_OK)
        return rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
        row (self, stmt);
    sqlite3_finalize (stmt);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void s_load_record (tf_store_t *self, sqlite3_stmt *stmt)
{
    const char *id = (const char *) sqlite3_column_text (stmt, 0);
    tf_index_value_t value = { tf_st_column_seq (stmt, 1), tf_st_column_seq (stmt, 2) };
    if (id)
        tf_index_set (self->ids, id, value);
}

/*  A change the records table and the state row do not have yet: the
    index and the figures must know it. */
static void s_load_unapplied (tf_store_t *self, sqlite3_stmt *stmt)
{
    const char *id = (const char *) sqlite3_column_text (stmt, 0);
    if (!id)
        return;
    int kind = sqlite3_column_int (stmt, 1), sector = sqlite3_column_int (stmt, 3);
    uint64_t revision = tf_st_column_seq (stmt, 2);
    if (kind == TECHFEED__CHANGE_KIND__CHANGE_DELETE)
        tf_index_remove (self->ids, id);
    else {
        tf_index_value_t value = { revision, (uint64_t) sector };
        tf_index_set (self->ids, id, value);
    }
    tf_st_figures_move (&self->committed, tf_st_column_seq (stmt, 4), kind, sector, id, revision);
}

static void s_load_head (tf_store_t *self, sqlite3_stmt *stmt)
{
    int64_t sector = sqlite3_column_int64 (stmt, 0);
    if (sector >= 0 && sector < TF_STORE_SECTORS)
        self->at_applied.heads[sector] = tf_st_column_seq (stmt, 1);
}

/*  The committed figures and the in-memory indexes, read once at open. */
static int s_load_figures (tf_store_t *self, char *err, size_t errlen)
{
    tf_st_figures_t *f = &self->at_applied;
    int rc = s_each_row (self->db, "SELECT sector, seq FROM sector_heads", s_load_head, self);
    sqlite3_stmt *stmt = self->stmt[ST_STATE_GET];
    if (rc == SQLITE_OK && (rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        f->count = tf_st_column_seq (stmt, 0);
        f->digest = tf_columns_u64 (sqlite3_column_int64 (stmt, 1));
        f->head = tf_st_column_seq (stmt, 2);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE)
        rc = SQLITE_CORRUPT;
    sqlite3_reset (stmt);
    atomic_store (&self->applied, f->head);
    self->committed = *f;
    if (rc == SQLITE_OK)
        rc = s_each_row (self->db, "SELECT id, revision, sector FROM records", s_load_record, self);
    if (rc == SQLITE_OK) {
        char sql[160];
        snprintf (sql, sizeof sql,
                  "SELECT id, kind, revision, sector, seq FROM changes WHERE seq > %llu"
                  " ORDER BY seq",
                  (unsigned long long) self->applied);
        rc = s_each_row (self->db, sql, s_load_unapplied, self);
    }
    if (rc != SQLITE_OK) {
        snprintf (err, errlen, "%s: cannot read the state: %s", self->path,
                  rc == SQLITE_CORRUPT ? "state row missing" : sqlite3_errmsg (self->db));
        return -1;
    }
    if (tf_st_replies_load (self, err, errlen))
        return -1;
    self->working = self->committed;
    atomic_store (&self->head, self->committed.head);
    return 0;
}

/*  The connection tf_store_apply_from reads the log on: read-only, so it
    takes no lock the writer needs. */
static int s_open_reader (tf_store_t *self, char *err, size_t errlen)
{
    int rc = sqlite3_open_v2 (self->path, &self->reader, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                              NULL);
    if (rc == SQLITE_OK)
        rc = tf_st_configure (self->reader);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v3 (self->reader, s_sql[ST_UNAPPLIED], -1, SQLITE_PREPARE_PERSISTENT,
                                 &self->reader_unapplied, NULL);
    if (rc != SQLITE_OK) {
        snprintf (err, errlen, "%s: cannot open the applier's reader: %s", self->path,
                  self->reader ? sqlite3_errmsg (self->reader) : sqlite3_errstr (rc));
        return -1;
    }
    return 0;
}

/*  A descriptor of the WAL file, to start its writeback (tf_store_apply_from);
    -1 when it cannot be opened, which only costs that. */
static int s_open_wal (const char *path)
{
    char wal[PATH_MAX];
    if ((size_t) snprintf (wal, sizeof wal, "%s-wal", path) >= sizeof wal)
        return -1;
    return open (wal, O_RDONLY | O_CLOEXEC);
}

tf_store_t *tf_store_new (const char *path, char *err, size_t errlen)
{
    assert (path);
    char scratch[1];
    if (!err || !errlen) {
        err = scratch;
        errlen = sizeof scratch;
    }
    if (!*path || strcmp (path, ":memory:") == 0) {
        snprintf (err, errlen, "'%s': the store needs a database file", path);
        return NULL;
    }
    tf_store_t *self = tf_st_alloc (sizeof *self);
    self->path = tf_st_strdup (path);
    self->wal_fd = -1;
    pthread_mutex_init (&self->lock, NULL);
    self->ids = tf_index_new ();
    self->requests = tf_index_new ();
    self->applier_arena = tf_arena_new (TF_STORE_BATCH_ARENA, TF_STORE_BATCH_KEEP);
    snprintf (self->errstr, sizeof self->errstr, "no error");

    int rc = sqlite3_open_v2 (path, &self->db,
                              SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                              tf_vfs_name ());
    if (rc == SQLITE_OK)
        rc = tf_st_configure (self->db);
    if (rc != SQLITE_OK) {
        snprintf (err, errlen, "%s: cannot open: %s", path,
                  self->db ? sqlite3_errmsg (self->db) : sqlite3_errstr (rc));
        goto fail;
    }
    if (tf_st_check_file (self, err, errlen) || tf_st_set_wal (self, err, errlen) ||
        tf_st_migrate (self, err, errlen) || tf_st_load_epoch (self, err, errlen))
        goto fail;
    for (int i = 0; i < ST_COUNT; i++) {
        rc = sqlite3_prepare_v3 (self->db, s_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &self->stmt[i],
                                 NULL);
        if (rc != SQLITE_OK) {
            snprintf (err, errlen, "%s: cannot prepare statement %d: %s", path, i,
                      sqlite3_errmsg (self->db));
            goto fail;
        }
    }
    if (s_load_figures (self, err, errlen) || s_open_reader (self, err, errlen))
        goto fail;
    self->wal_fd = s_open_wal (path); // WAL mode made the file
    return self;

fail:
    tf_store_destroy (&self);
    return NULL;
}

void tf_store_destroy (tf_store_t **self_p)
{
    assert (self_p);
    tf_store_t *self = *self_p;
    if (!self)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize (self->stmt[i]);
    sqlite3_finalize (self->reader_unapplied);
    sqlite3_close (self->reader); // before the writer's: the last close checkpoints
    if (self->wal_fd >= 0)
        close (self->wal_fd);
    pthread_mutex_destroy (&self->lock);
    if (self->db && !sqlite3_get_autocommit (self->db))
        sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close (self->db);
    tf_st_undo_forget (self);
    free (self->undo);
    free (self->last_body);
    free (self->group.data);
    tf_index_destroy (&self->ids);
    tf_index_destroy (&self->requests);
    tf_arena_destroy (&self->applier_arena);
    free (self->path);
    free (self);
    *self_p = NULL;
}

const char *tf_store_errstr (tf_store_t *self)
{
    assert (self);
    return self->errstr;
}

const char *tf_store_path (tf_store_t *self)
{
    assert (self);
    return self->path;
}

const char *tf_store_epoch (tf_store_t *self)
{
    assert (self);
    return self->epoch;
}

static int s_locked_new_epoch (tf_store_t *self)
{
    assert (self);
    //  Inside a transaction a rollback would leave self->epoch wrong
    if (!sqlite3_get_autocommit (self->db))
        return tf_st_fail (self, TF_STORE_ERROR, "new epoch: a transaction is open");
    char epoch[33], err[512];
    if (tf_st_make_epoch (epoch, err, sizeof err, self->path))
        return tf_st_fail (self, TF_STORE_ERROR, "%s", err);
    sqlite3_stmt *stmt;
    int rc = sqlite3_prepare_v2 (self->db, "UPDATE meta SET value = ?1 WHERE key = 'epoch'", -1,
                                 &stmt, NULL);
    if (rc != SQLITE_OK)
        return tf_st_sql_error (self->errstr, sizeof self->errstr, self->db, rc, "new epoch");
    sqlite3_bind_text (stmt, 1, epoch, -1, SQLITE_STATIC);
    int result = tf_st_run (self, stmt, "new epoch");
    if (result == 0 && sqlite3_changes (self->db) != 1)
        result = tf_st_fail (self, TF_STORE_ERROR, "new epoch: no epoch row in meta");
    sqlite3_finalize (stmt);
    if (result == 0)
        memcpy (self->epoch, epoch, sizeof self->epoch);
    return result;
}

/*  Called by SQLite after each commit with the WAL's size in pages. */
static int s_wal_hook (void *arg, sqlite3 *db, const char *name, int pages)
{
    ((tf_store_t *) arg)->wal_pages = pages;
    return SQLITE_OK;
}

static int s_locked_set_autocheckpoint (tf_store_t *self, int pages)
{
    assert (self);
    sqlite3_wal_autocheckpoint (self->db, pages);
    if (pages == 0) // watch the WAL's size instead (tf_store_wal_pages)
        sqlite3_wal_hook (self->db, s_wal_hook, self);
    return 0;
}

int tf_store_wal_pages (tf_store_t *self)
{
    assert (self);
    return self->wal_pages;
}

static int s_locked_checkpoint (tf_store_t *self)
{
    assert (self);
    int frames = 0, copied = 0;
    int rc =
        sqlite3_wal_checkpoint_v2 (self->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &frames, &copied);
    if (rc == SQLITE_BUSY)
        return 0; // the checkpointer thread is copying: the WAL keeps its size, a later try
    if (rc != SQLITE_OK)
        return tf_st_sql_error (self->errstr, sizeof self->errstr, self->db, rc, "checkpoint");
    //  The WAL starts over at the next commit only when all of it was
    //  copied. Otherwise (a reader holds later frames) it keeps its size:
    //  the frames not copied would understate it, and the caller would
    //  take a short WAL for a rewound one.
    self->wal_pages = copied == frames ? 0 : frames;
    return 0;
}

static int s_locked_reserve_wal (tf_store_t *self, int64_t bytes)
{
    assert (self);
    int rc = tf_vfs_reserve_wal (self->db, bytes);
    if (rc == SQLITE_NOTFOUND)
        return tf_st_fail (self, TF_STORE_ERROR, "%s-wal: cannot write ahead: not open with tf_vfs",
                           self->path);
    if (rc != SQLITE_OK)
        return tf_st_sql_error (self->errstr, sizeof self->errstr, NULL, rc,
                                "%s-wal: cannot write %lld bytes ahead", self->path,
                                (long long) bytes);
    return 0;
}

int tf_store_schema_version (void)
{
    return TF_STORE_SCHEMA;
}

static int s_locked_state (tf_store_t *self, tf_store_state_t *state)
{
    assert (self);
    assert (state);
    memset (state, 0, sizeof *state);
    memcpy (state->epoch, self->epoch, sizeof state->epoch);
    tf_st_sync_depth (self);
    //  Inside a write transaction: its own, uncommitted figures.
    const tf_st_figures_t *f = &self->working;
    state->record_count = f->count;
    state->digest = f->digest;
    state->head_sequence = f->head;
    state->applied_sequence = atomic_load (&self->applied);
    memcpy (state->sector_heads, f->heads, sizeof state->sector_heads);
    state->index_bytes = tf_index_bytes (self->ids) + tf_index_bytes (self->requests);
    int64_t first = 0;
    int rc = tf_st_query_int (self->db, "SELECT coalesce (min(seq), 0) FROM changes", &first);
    if (rc != SQLITE_OK)
        return tf_st_sql_error (self->errstr, sizeof self->errstr, self->db, rc, "state");
    state->log_first_sequence = first > 0 ? (uint64_t) first : f->head + 1;
    return 0;
}

uint64_t tf_store_unapplied (tf_store_t *self)
{
    assert (self);
    return atomic_load (&self->head) - atomic_load (&self->applied);
}

// --------------------------------------------------------------- the connection lock

/*  The writer's thread holds the connection from its first call into the
    store until the connection is out of any transaction again, so the
    applier's batches (tf_store_apply_from, another thread) fall between
    the writer's transactions, on the same connection and page cache (a
    second writing connection would make each drop the other's cache). */
static void s_enter (tf_store_t *self)
{
    if (self->calls++ == 0 && !self->holding) {
        uint64_t asked = tf_st_now_ns ();
        pthread_mutex_lock (&self->lock);
        self->holding = true;
        self->held_since_ns = tf_st_now_ns ();
        atomic_fetch_add (&self->writer_wait_ns, self->held_since_ns - asked);
    }
}

static int s_leave (tf_store_t *self, int result)
{
    if (--self->calls == 0 && self->holding && sqlite3_get_autocommit (self->db)) {
        self->holding = false;
        atomic_fetch_add (&self->writer_held_ns, tf_st_now_ns () - self->held_since_ns);
        pthread_mutex_unlock (&self->lock);
    }
    return result;
}

void tf_store_lock_stats (tf_store_t *self, tf_store_lock_stats_t *stats)
{
    assert (self && stats);
    stats->writer_held_ns = atomic_load (&self->writer_held_ns);
    stats->writer_wait_ns = atomic_load (&self->writer_wait_ns);
    stats->applier_held_ns = atomic_load (&self->applier_held_ns);
}

int tf_store_new_epoch (tf_store_t *self)
{
    assert (self);
    s_enter (self);
    return s_leave (self, s_locked_new_epoch (self));
}

int tf_store_set_autocheckpoint (tf_store_t *self, int pages)
{
    assert (self);
    s_enter (self);
    return s_leave (self, s_locked_set_autocheckpoint (self, pages));
}

int tf_store_checkpoint (tf_store_t *self)
{
    assert (self);
    s_enter (self);
    return s_leave (self, s_locked_checkpoint (self));
}

int tf_store_reserve_wal (tf_store_t *self, int64_t bytes)
{
    assert (self);
    s_enter (self);
    return s_leave (self, s_locked_reserve_wal (self, bytes));
}

static int s_locked_probe_write (tf_store_t *self)
{
    int rc = tf_st_locked_begin (self);
    if (rc == 0)
        rc = tf_st_exec (self, "UPDATE state SET digest = digest WHERE one = 1", "probe write");
    if (rc == 0)
        rc = tf_st_locked_commit (self);
    if (rc != 0)
        tf_st_locked_rollback (self);
    return rc;
}

int tf_store_probe_write (tf_store_t *self)
{
    assert (self);
    s_enter (self);
    return s_leave (self, s_locked_probe_write (self));
}

int tf_store_state (tf_store_t *self, tf_store_state_t *state)
{
    assert (self);
    s_enter (self);
    return s_leave (self, s_locked_state (self, state));
}

int tf_store_begin (tf_store_t *self)
{
    assert (self);
    s_enter (self);
    return s_leave (self, tf_st_locked_begin (self));
}

int tf_store_commit (tf_store_t *self)
{
    assert (self);
    s_enter (self);
    return s_leave (self, tf_st_locked_commit (self));
}

int tf_store_rollback (tf_store_t *self)
{
    assert (self);
    s_enter (self);
    return s_leave (self, tf_st_locked_rollback (self));
}

int tf_store_savepoint (tf_store_t *self)
{
    assert (self);
    s_enter (self);
    return s_leave (self, tf_st_locked_savepoint (self));
}

int tf_store_release (tf_store_t *self)
{
    assert (self);
    s_enter (self);
    return s_leave (self, tf_st_locked_release (self));
}

int tf_store_rollback_to (tf_store_t *self)
{
    assert (self);
    s_enter (self);
    return s_leave (self, tf_st_locked_rollback_to (self));
}

int tf_store_request_get (tf_store_t *self, const char *request_id, uint8_t **reply, size_t *size)
{
    assert (self);
    s_enter (self);
    return s_leave (self, tf_st_locked_request_get (self, request_id, reply, size));
}

int tf_store_request_put (tf_store_t *self, const char *request_id, const uint8_t *reply,
                          size_t size, int64_t now_ms)
{
    assert (self);
    s_enter (self);
    return s_leave (self, tf_st_locked_request_put (self, request_id, reply, size, now_ms));
}

int tf_store_request_expire (tf_store_t *self, int64_t before_ms, uint64_t keep_max)
{
    assert (self);
    s_enter (self);
    return s_leave (self, tf_st_locked_request_expire (self, before_ms, keep_max));
}

int tf_store_trim (tf_store_t *self, uint64_t keep_count, int64_t before_ms)
{
    assert (self);
    s_enter (self);
    return s_leave (self, tf_st_locked_trim (self, keep_count, before_ms));
}

int tf_store_get (tf_store_t *self, const char *id, Techfeed__Milestone **record)
{
    assert (self);
    s_enter (self);
    return s_leave (self, tf_st_locked_get (self, id, record));
}

int tf_store_put (tf_store_t *self, const Techfeed__Milestone *record, bool has_expected,
                  uint64_t expected_revision, int64_t now_ms, tf_change_t *change)
{
    assert (self);
    s_enter (self);
    return s_leave (
        self, tf_st_locked_put (self, record, has_expected, expected_revision, now_ms, change));
}

int tf_store_delete (tf_store_t *self, const char *id, bool has_expected,
                     uint64_t expected_revision, int64_t now_ms, tf_change_t *change)
{
    assert (self);
    s_enter (self);
    return s_leave (
        self, tf_st_locked_delete (self, id, has_expected, expected_revision, now_ms, change));
}

int tf_store_apply (tf_store_t *self, size_t max)
{
    assert (self);
    s_enter (self);
    return s_leave (self, tf_st_locked_apply (self, max));
}
