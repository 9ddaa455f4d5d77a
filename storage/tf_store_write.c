/*  tf_store_write — the writer's transactions: puts and deletes appended
    to the log, the in-memory indexes and their undo journal, savepoints. */
#include "tf_store_int.h"

// --------------------------------------------------------------- in-memory indexes

/*  Sets or removes (`remove`) a key of one of the store's indexes,
    journaling what was there while a transaction is open. */
void tf_st_index_change (tf_store_t *self, tf_index_t *index, const char *key, bool remove,
                         tf_index_value_t value)
{
    tf_index_value_t old = { 0, 0 };
    bool existed = remove ? tf_index_get (index, key, &old) && tf_index_remove (index, key)
                          : tf_index_swap (index, key, value, &old);
    if (sqlite3_get_autocommit (self->db))
        return;
    if (self->undo_len == self->undo_cap) {
        self->undo_cap = self->undo_cap ? self->undo_cap * 2 : 256;
        self->undo = realloc (self->undo, self->undo_cap * sizeof *self->undo);
        if (!self->undo)
            tf_st_oom ();
    }
    tf_st_undo_t *entry = &self->undo[self->undo_len++];
    entry->index = index;
    entry->key = tf_st_strdup (key);
    entry->existed = existed;
    entry->value = old;
}

/*  Undoes the journal back to `mark` entries, newest first. */
static void s_undo_to (tf_store_t *self, size_t mark)
{
    while (self->undo_len > mark) {
        tf_st_undo_t *entry = &self->undo[--self->undo_len];
        if (entry->existed)
            tf_index_set (entry->index, entry->key, entry->value);
        else
            tf_index_remove (entry->index, entry->key);
        free (entry->key);
    }
}

/*  The transaction committed: its index changes stay. */
void tf_st_undo_forget (tf_store_t *self)
{
    for (size_t i = 0; i < self->undo_len; i++)
        free (self->undo[i].key);
    self->undo_len = 0;
}

// --------------------------------------------------------------- transactions

/*  SQLite may end a transaction on its own after an I/O error; forget the
    savepoints, the uncommitted figures and index changes then. */
void tf_st_sync_depth (tf_store_t *self)
{
    if (sqlite3_get_autocommit (self->db)) {
        self->depth = 0;
        self->working = self->committed;
        s_undo_to (self, 0);
        tf_st_replies_forget (self);
    }
}

/*  What one change does to the figures. A put's previous revision is one
    less (revisions count up from 1 after every delete), so the log alone
    says how the count and digest move. */
void tf_st_figures_move (tf_st_figures_t *f, uint64_t seq, int kind, int sector, const char *id,
                         uint64_t revision)
{
    if (kind == TECHFEED__CHANGE_KIND__CHANGE_DELETE) {
        f->count--;
        f->digest -= tf_digest_item (id, revision);
    } else {
        if (revision > 1)
            f->digest -= tf_digest_item (id, revision - 1);
        else
            f->count++;
        f->digest += tf_digest_item (id, revision);
    }
    if (sector >= 0 && sector < TF_STORE_SECTORS)
        f->heads[sector] = seq;
    f->head = seq;
}

/*  The open transaction committed: its figures and index changes stay. */
static void s_committed (tf_store_t *self)
{
    self->committed = self->working;
    atomic_store (&self->head, self->committed.head);
    tf_st_undo_forget (self);
}

int tf_st_locked_begin (tf_store_t *self)
{
    assert (self);
    tf_st_sync_depth (self);
    if (!sqlite3_get_autocommit (self->db))
        return tf_st_fail (self, TF_STORE_ERROR, "begin: a transaction is already open");
    self->working = self->committed;
    return tf_st_run (self, self->stmt[ST_BEGIN], "begin");
}

int tf_st_locked_commit (tf_store_t *self)
{
    assert (self);
    if (sqlite3_get_autocommit (self->db)) {
        tf_st_sync_depth (self);
        return tf_st_fail (self, TF_STORE_ERROR, "commit: no transaction is open");
    }
    int result = tf_st_replies_flush (self);
    if (result == 0)
        result = tf_st_run (self, self->stmt[ST_COMMIT], "commit");
    if (result == 0) {
        self->depth = 0;
        s_committed (self);
    }
    tf_st_sync_depth (self);
    return result;
}

int tf_st_locked_rollback (tf_store_t *self)
{
    assert (self);
    self->depth = 0;
    self->working = self->committed;
    s_undo_to (self, 0);
    tf_st_replies_forget (self);
    if (sqlite3_get_autocommit (self->db))
        return 0; // nothing open (SQLite may have rolled back already)
    return tf_st_exec (self, "ROLLBACK", "rollback");
}

int tf_st_locked_savepoint (tf_store_t *self)
{
    assert (self);
    tf_st_sync_depth (self);
    if (self->depth >= TF_STORE_DEPTH_MAX)
        return tf_st_fail (self, TF_STORE_ERROR, "savepoint: more than %d nested",
                           TF_STORE_DEPTH_MAX);
    char sql[32];
    snprintf (sql, sizeof sql, "SAVEPOINT sp%d", self->depth + 1);
    if (self->depth == 0)
        self->savepoint_began = sqlite3_get_autocommit (self->db);
    if (self->savepoint_began && self->depth == 0)
        self->working = self->committed;
    int result = tf_st_exec (self, sql, "savepoint");
    if (result == 0) {
        self->saved_undo[self->depth] = self->undo_len;
        self->saved_group[self->depth] = self->group.len;
        self->saved[self->depth++] = self->working;
    }
    return result;
}

int tf_st_locked_release (tf_store_t *self)
{
    assert (self);
    tf_st_sync_depth (self);
    if (self->depth == 0)
        return tf_st_fail (self, TF_STORE_ERROR, "release: no savepoint is open");
    char sql[32];
    snprintf (sql, sizeof sql, "RELEASE sp%d", self->depth);
    //  Releasing the outermost savepoint of a transaction it began commits.
    bool commits = self->depth == 1 && self->savepoint_began;
    int result = commits ? tf_st_replies_flush (self) : 0;
    if (result == 0)
        result = tf_st_exec (self, sql, "release");
    if (result == 0) {
        self->depth--;
        if (commits)
            s_committed (self);
    }
    tf_st_sync_depth (self);
    return result;
}

int tf_st_locked_rollback_to (tf_store_t *self)
{
    assert (self);
    tf_st_sync_depth (self);
    if (self->depth == 0)
        return tf_st_fail (self, TF_STORE_ERROR, "rollback_to: no savepoint is open");
    char sql[64];
    snprintf (sql, sizeof sql, "ROLLBACK TO sp%d; RELEASE sp%d", self->depth, self->depth);
    int result = tf_st_exec (self, sql, "rollback_to");
    if (result == 0) {
        self->depth--;
        self->working = self->saved[self->depth];
        s_undo_to (self, self->saved_undo[self->depth]);
        self->group.len = self->saved_group[self->depth];
    }
    tf_st_sync_depth (self);
    return result;
}
// --------------------------------------------------------------- writes

/*  Appends a change row with the next sequence and moves the sector head;
    fills change->sequence and sector_prev_sequence. */
static int s_append (tf_store_t *self, int kind, const char *id, int sector, uint64_t revision,
                     int64_t now_ms, const uint8_t *body, size_t size, tf_change_t *change)
{
    uint64_t prev = self->working.heads[sector];
    uint64_t sequence = self->working.head + 1;
    sqlite3_stmt *stmt = self->stmt[ST_APPEND];
    sqlite3_bind_int64 (stmt, 1, tf_columns_i64 (sequence));
    sqlite3_bind_int (stmt, 2, kind);
    sqlite3_bind_int (stmt, 3, sector);
    tf_st_bind_text (stmt, 4, id);
    sqlite3_bind_int64 (stmt, 5, tf_columns_i64 (revision));
    sqlite3_bind_int64 (stmt, 6, tf_columns_i64 (prev));
    sqlite3_bind_int64 (stmt, 7, now_ms);
    if (body)
        tf_st_bind_blob (stmt, 8, body, size);
    else
        sqlite3_bind_null (stmt, 8);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    sqlite3_clear_bindings (stmt);
    if (rc != SQLITE_DONE)
        return tf_st_sql_error (self->errstr, sizeof self->errstr, self->db, rc,
                                "%.128s: insert change", id);
    self->working.head = sequence;
    change->sequence = sequence;
    change->sector_prev_sequence = prev;
    return 0;
}

/*  A put or delete succeeded: move the figures of the open transaction
    and the id index. */
static void s_count_change (tf_store_t *self, const tf_change_t *change, const char *id,
                            uint64_t old_revision, uint64_t new_revision)
{
    tf_st_figures_t *f = &self->working;
    f->heads[change->sector] = change->sequence;
    f->count += (old_revision == 0) - (new_revision == 0);
    f->digest -= old_revision ? tf_digest_item (id, old_revision) : 0;
    f->digest += new_revision ? tf_digest_item (id, new_revision) : 0;
    tf_index_value_t value = { new_revision, (uint64_t) change->sector };
    tf_st_index_change (self, self->ids, id, new_revision == 0, value);
}

/*  Stored revision (0 when absent) and sector of `id`, from memory. */
static void s_lookup (tf_store_t *self, const char *id, uint64_t *revision, int *sector)
{
    tf_index_value_t value = { 0, 0 };
    tf_index_get (self->ids, id, &value);
    *revision = value.a;
    *sector = (int) value.b;
}

/*  TF_STORE_CONFLICT when an expected revision does not match the stored
    one (0 when absent). */
static int s_check_expected (tf_store_t *self, const char *id, bool has_expected, uint64_t expected,
                             uint64_t stored, tf_change_t *change)
{
    if (!has_expected || expected == stored)
        return 0;
    change->current_revision = stored;
    return tf_st_fail (self, TF_STORE_CONFLICT, "%.128s: expected revision %llu, stored %llu", id,
                       (unsigned long long) expected, (unsigned long long) stored);
}

/*  put inside the open transaction. */
static int s_put (tf_store_t *self, const Techfeed__Milestone *record, bool has_expected,
                  uint64_t expected, int64_t now_ms, tf_change_t *change)
{
    const char *id = record->id;
    uint64_t stored;
    int sector;
    s_lookup (self, id, &stored, &sector);
    change->sector = stored ? sector : (int) record->sector;
    int result = s_check_expected (self, id, has_expected, expected, stored, change);
    if (result)
        return result;
    if (stored && sector != (int) record->sector)
        return tf_st_fail (self, TF_STORE_IMMUTABLE, "%.128s: sector is %d, cannot change to %d",
                           id, sector, (int) record->sector);

    Techfeed__Milestone copy = *record; // shallow: only the two server fields differ
    copy.has_revision = 1;
    copy.revision = stored + 1;
    copy.has_updated_at_ms = 1;
    copy.updated_at_ms = now_ms;
    size_t size;
    uint8_t *body = tf_wire_pack (&copy.base, &size);
    result = s_append (self, TECHFEED__CHANGE_KIND__CHANGE_PUT, id, copy.sector, copy.revision,
                       now_ms, body, size, change);
    free (self->last_body); // the caller may read the stored bytes until its next call
    self->last_body = body;
    if (result == 0) {
        change->body = body;
        change->body_size = size;
        change->revision = copy.revision;
        s_count_change (self, change, id, stored, copy.revision);
    }
    return result;
}

/*  delete inside the open transaction. */
static int s_delete (tf_store_t *self, const char *id, bool has_expected, uint64_t expected,
                     int64_t now_ms, tf_change_t *change)
{
    uint64_t stored;
    int sector;
    s_lookup (self, id, &stored, &sector);
    if (!stored)
        return tf_st_fail (self, TF_STORE_NOT_FOUND, "%.128s: no such record", id);
    change->sector = sector;
    int result = s_check_expected (self, id, has_expected, expected, stored, change);
    if (result == 0)
        result = s_append (self, TECHFEED__CHANGE_KIND__CHANGE_DELETE, id, sector, stored, now_ms,
                           NULL, 0, change);
    if (result == 0) {
        change->revision = stored;
        s_count_change (self, change, id, stored, 0);
    }
    return result;
}

/*  One put (record set) or delete (id). Inside an open transaction the
    item has no savepoint of its own: refusals (conflict, not found,
    immutable sector) are decided before anything is written, and after a
    database error the caller rolls the whole transaction back. Outside
    one, the item is a transaction by itself. */
static int s_item (tf_store_t *self, const Techfeed__Milestone *record, const char *id,
                   bool has_expected, uint64_t expected, int64_t now_ms, tf_change_t *change)
{
    tf_change_t scratch;
    if (!change)
        change = &scratch;
    memset (change, 0, sizeof *change);
    change->timestamp_ms = now_ms;
    bool own = sqlite3_get_autocommit (self->db);
    int result = own ? tf_store_begin (self) : 0;
    if (result)
        return result;
    if (record)
        result = s_put (self, record, has_expected, expected, now_ms, change);
    else
        result = s_delete (self, id, has_expected, expected, now_ms, change);
    if (own && result == 0)
        result = tf_store_commit (self);
    if (own && result != 0)
        tf_store_rollback (self);
    return result;
}

int tf_st_locked_put (tf_store_t *self, const Techfeed__Milestone *record, bool has_expected,
                      uint64_t expected_revision, int64_t now_ms, tf_change_t *change)
{
    assert (self);
    assert (record && record->id);
    return s_item (self, record, NULL, has_expected, expected_revision, now_ms, change);
}

int tf_st_locked_delete (tf_store_t *self, const char *id, bool has_expected,
                         uint64_t expected_revision, int64_t now_ms, tf_change_t *change)
{
    assert (self);
    assert (id);
    return s_item (self, NULL, id, has_expected, expected_revision, now_ms, change);
}
