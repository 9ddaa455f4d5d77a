/*  tf_store_replies — the idempotency cache: a transaction's replies
    gathered in memory and written as one reply_groups row just before it
    commits, read back by request id, expired oldest first, loaded at open.
    The row's format is in tf_store.c. */
#include "tf_store_int.h"
#include "tf_validate.h"

#define S_LENGTH_BYTES 4                  /* an entry's two lengths, big-endian */
#define TF_STORE_GROUP_KEEP (1024 * 1024) /* bytes of the group's buffer kept between groups */

// --------------------------------------------------------------- entries

static void s_put_length (uint8_t *at, size_t length)
{
    for (int i = S_LENGTH_BYTES - 1; i >= 0; i--, length >>= 8)
        at[i] = (uint8_t) (length & 0xff);
}

static size_t s_get_length (const uint8_t *at)
{
    size_t length = 0;
    for (int i = 0; i < S_LENGTH_BYTES; i++)
        length = length << 8 | at[i];
    return length;
}

/*  Appends one entry (request id, reply) to the group's bytes; returns
    the entry's offset. */
static size_t s_group_append (tf_st_group_t *group, const char *request_id, const uint8_t *reply,
                              size_t size)
{
    size_t id_size = strlen (request_id);
    size_t need = group->len + 2 * S_LENGTH_BYTES + id_size + size;
    if (need > group->cap) {
        group->cap = need * 2;
        group->data = realloc (group->data, group->cap);
        if (!group->data)
            tf_st_oom ();
    }
    size_t offset = group->len;
    uint8_t *at = group->data + offset;
    s_put_length (at, id_size);
    memcpy (at + S_LENGTH_BYTES, request_id, id_size);
    at += S_LENGTH_BYTES + id_size;
    s_put_length (at, size);
    if (size)
        memcpy (at + S_LENGTH_BYTES, reply, size);
    group->len = need;
    return offset;
}

/*  One entry of a group's bytes, as read back. */
typedef struct {
    char id[TF_REQUEST_ID_MAX + 1]; /* NUL-terminated copy */
    const uint8_t *reply;
    size_t size;
    size_t next; /* offset of the next entry */
} s_entry_t;

/*  The entry at `offset` of `len` bytes; false when it does not fit or
    its id is empty or longer than a request id may be. */
static bool s_entry_at (const uint8_t *data, size_t len, size_t offset, s_entry_t *entry)
{
    if (offset > len || len - offset < S_LENGTH_BYTES)
        return false;
    size_t id_size = s_get_length (data + offset);
    offset += S_LENGTH_BYTES;
    if (id_size == 0 || id_size > TF_REQUEST_ID_MAX || len - offset < id_size + S_LENGTH_BYTES)
        return false;
    memcpy (entry->id, data + offset, id_size);
    entry->id[id_size] = 0;
    offset += id_size;
    entry->size = s_get_length (data + offset);
    offset += S_LENGTH_BYTES;
    if (len - offset < entry->size)
        return false;
    entry->reply = data + offset;
    entry->next = offset + entry->size;
    return true;
}

/*  The entry's reply, malloc'd for the caller. */
static void s_entry_copy (const s_entry_t *entry, uint8_t **reply, size_t *size)
{
    *reply = tf_st_alloc (entry->size);
    if (entry->size)
        memcpy (*reply, entry->reply, entry->size);
    *size = entry->size;
}

/*  tf_reply_entry(request_id, reply): one entry as a blob, for migration 4
    (each reply row of schema 3 becomes a group of one). */
static void s_sql_entry (sqlite3_context *context, int argc, sqlite3_value **argv)
{
    (void) argc;
    const char *request_id = (const char *) sqlite3_value_text (argv[0]);
    if (!request_id || !*request_id) {
        sqlite3_result_error (context, "tf_reply_entry: no request id", -1);
        return;
    }
    tf_st_group_t one = { 0 };
    s_group_append (&one, request_id, sqlite3_value_blob (argv[1]),
                    (size_t) sqlite3_value_bytes (argv[1]));
    sqlite3_result_blob (context, one.data, (int) one.len, free);
}

int tf_st_replies_register (sqlite3 *db)
{
    return sqlite3_create_function_v2 (db, "tf_reply_entry", 2,
                                       SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY, NULL,
                                       s_sql_entry, NULL, NULL, NULL);
}

// --------------------------------------------------------------- the open transaction's group

/*  Entries the group holds: the replies numbered since its first. */
static uint64_t s_group_count (const tf_store_t *self)
{
    return self->group.len ? self->working.replies - self->group.first + 1 : 0;
}

int tf_st_replies_flush (tf_store_t *self)
{
    uint64_t count = s_group_count (self);
    if (count == 0)
        return 0;
    sqlite3_stmt *stmt = self->stmt[ST_REQ_PUT];
    sqlite3_bind_int64 (stmt, 1, tf_columns_i64 (self->group.first));
    sqlite3_bind_int64 (stmt, 2, tf_columns_i64 (count));
    sqlite3_bind_int64 (stmt, 3, self->group.created_ms);
    tf_st_bind_blob (stmt, 4, self->group.data, self->group.len);
    int result = tf_st_run (self, stmt, "request: cache the replies");
    sqlite3_clear_bindings (stmt);
    if (result == 0)
        tf_st_replies_forget (self); // read back from the row now
    return result;
}

void tf_st_replies_forget (tf_store_t *self)
{
    self->group.len = 0;
    //  A burst of large replies (bulk requests) does not stay allocated
    if (self->group.cap > TF_STORE_GROUP_KEEP) {
        free (self->group.data);
        self->group.data = NULL;
        self->group.cap = 0;
    }
}

// --------------------------------------------------------------- get, put, expire

/*  The reply of the entry at `offset` in group `n` of the file. */
static int s_read_stored (tf_store_t *self, const char *request_id, uint64_t n, size_t offset,
                          uint8_t **reply, size_t *size)
{
    sqlite3_stmt *stmt = self->stmt[ST_REQ_GET];
    sqlite3_bind_int64 (stmt, 1, tf_columns_i64 (n));
    int rc = sqlite3_step (stmt);
    int result = 0;
    s_entry_t entry;
    if (rc == SQLITE_ROW) {
        const uint8_t *data = sqlite3_column_blob (stmt, 0);
        size_t len = (size_t) sqlite3_column_bytes (stmt, 0);
        if (s_entry_at (data, len, offset, &entry) && strcmp (entry.id, request_id) == 0)
            s_entry_copy (&entry, reply, size);
        else
            result = tf_st_fail (self, TF_STORE_ERROR,
                                 "request %.64s: reply group %llu has no such entry at byte %zu",
                                 request_id, (unsigned long long) n, offset);
    } else if (rc == SQLITE_DONE)
        result = tf_st_fail (self, TF_STORE_NOT_FOUND, "request %.64s: not cached", request_id);
    else
        result = tf_st_sql_error (self->errstr, sizeof self->errstr, self->db, rc,
                                  "request %.64s: read", request_id);
    sqlite3_reset (stmt);
    return result;
}

int tf_st_locked_request_get (tf_store_t *self, const char *request_id, uint8_t **reply,
                              size_t *size)
{
    assert (self);
    assert (request_id && reply && size);
    *reply = NULL;
    *size = 0;
    tf_index_value_t at;
    if (!tf_index_get (self->requests, request_id, &at))
        return TF_STORE_NOT_FOUND; // every new request: nothing to format
    if (!(self->group.len && at.a == self->group.first))
        return s_read_stored (self, request_id, at.a, (size_t) at.b, reply, size);
    //  Put earlier in the open transaction, not written yet
    s_entry_t entry;
    bool found = s_entry_at (self->group.data, self->group.len, (size_t) at.b, &entry);
    assert (found && strcmp (entry.id, request_id) == 0);
    (void) found;
    s_entry_copy (&entry, reply, size);
    return 0;
}

int tf_st_locked_request_put (tf_store_t *self, const char *request_id, const uint8_t *reply,
                              size_t size, int64_t now_ms)
{
    assert (self);
    assert (request_id && *request_id && (reply || !size));
    if (strlen (request_id) > TF_REQUEST_ID_MAX || size > UINT32_MAX)
        return tf_st_fail (self, TF_STORE_ERROR, "request %.64s: id or reply too long to cache",
                           request_id);
    tf_st_sync_depth (self); // a transaction SQLite ended on its own leaves no group
    if (self->group.len == 0) {
        self->group.first = self->working.replies + 1;
        self->group.created_ms = now_ms;
    }
    //  The group goes when its newest reply is due: none goes early.
    if (now_ms > self->group.created_ms)
        self->group.created_ms = now_ms;
    tf_index_value_t at = { self->group.first,
                            s_group_append (&self->group, request_id, reply, size) };
    self->working.replies++;
    if (sqlite3_get_autocommit (self->db)) { // a group of one, written at once
        int result = tf_st_replies_flush (self);
        if (result) {
            self->working.replies--;
            tf_st_replies_forget (self);
            return result;
        }
        self->committed.replies = self->working.replies;
    }
    tf_st_index_change (self, self->requests, request_id, false, at);
    return 0;
}

/*  Forgets the ids of a deleted group whose index entry is still its. */
static void s_forget_group (tf_store_t *self, uint64_t n, const uint8_t *data, size_t len)
{
    s_entry_t entry;
    for (size_t offset = 0; s_entry_at (data, len, offset, &entry); offset = entry.next) {
        tf_index_value_t at;
        //  A later reply under the same id stays.
        if (tf_index_get (self->requests, entry.id, &at) && at.a == n)
            tf_index_remove (self->requests, entry.id);
    }
}

int tf_st_locked_request_expire (tf_store_t *self, int64_t before_ms, uint64_t keep_max)
{
    assert (self);
    if (!sqlite3_get_autocommit (self->db))
        return tf_st_fail (self, TF_STORE_ERROR, "request expiry: a transaction is open");
    int64_t oldest = 0;
    int rc = tf_st_query_int (self->db, "SELECT coalesce (min(n), 0) FROM reply_groups", &oldest);
    if (rc != SQLITE_OK)
        return tf_st_sql_error (self->errstr, sizeof self->errstr, self->db, rc, "request: expire");
    if (oldest <= 0)
        return 0;
    //  The step: groups starting among the oldest TF_STORE_STEP_ROWS
    //  replies, read by key from the start of this append-only table.
    uint64_t bound = (uint64_t) oldest + TF_STORE_STEP_ROWS;
    uint64_t last = self->committed.replies;
    sqlite3_stmt *stmt = self->stmt[ST_REQ_EXPIRE];
    sqlite3_bind_int64 (stmt, 1, before_ms);
    sqlite3_bind_int64 (stmt, 2,
                        keep_max && last > keep_max ? tf_columns_i64 (last - keep_max) : 0);
    sqlite3_bind_int64 (stmt, 3, tf_columns_i64 (bound));
    //  RETURNING hands over every deleted row on the first steps; the
    //  statement's own transaction commits when it is done.
    uint64_t reached = 0; /* one past the last reply deleted */
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        uint64_t n = tf_st_column_seq (stmt, 0);
        reached = n + tf_st_column_seq (stmt, 1);
        s_forget_group (self, n, sqlite3_column_blob (stmt, 2),
                        (size_t) sqlite3_column_bytes (stmt, 2));
    }
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE)
        return tf_st_sql_error (self->errstr, sizeof self->errstr, self->db, rc, "request: expire");
    return reached >= bound;
}

// --------------------------------------------------------------- open

/*  Indexes the entries of the row `stmt` is on; -1 when they do not add
    up to its count and bytes. */
static int s_load_group (tf_store_t *self, sqlite3_stmt *stmt, char *err, size_t errlen)
{
    uint64_t n = tf_st_column_seq (stmt, 0), count = tf_st_column_seq (stmt, 1), seen = 0;
    const uint8_t *data = sqlite3_column_blob (stmt, 2);
    size_t len = (size_t) sqlite3_column_bytes (stmt, 2), offset = 0;
    s_entry_t entry;
    for (; s_entry_at (data, len, offset, &entry); offset = entry.next, seen++) {
        tf_index_value_t at = { n, offset };
        tf_index_set (self->requests, entry.id, at);
    }
    if (offset != len || seen != count) {
        snprintf (err, errlen,
                  "%s: reply_groups row %llu is damaged: %llu of its %llu entries readable, "
                  "up to byte %zu of %zu",
                  self->path, (unsigned long long) n, (unsigned long long) seen,
                  (unsigned long long) count, offset, len);
        return -1;
    }
    if (n + count - 1 > self->committed.replies)
        self->committed.replies = n + count - 1;
    return 0;
}

int tf_st_replies_load (tf_store_t *self, char *err, size_t errlen)
{
    sqlite3_stmt *stmt;
    int rc = sqlite3_prepare_v2 (self->db, "SELECT n, count, replies FROM reply_groups ORDER BY n",
                                 -1, &stmt, NULL);
    int result = 0;
    if (rc == SQLITE_OK)
        while (result == 0 && (rc = sqlite3_step (stmt)) == SQLITE_ROW)
            result = s_load_group (self, stmt, err, errlen);
    sqlite3_finalize (stmt);
    if (result == 0 && rc != SQLITE_DONE) {
        snprintf (err, errlen, "%s: cannot read the cached replies: %s", self->path,
                  sqlite3_errmsg (self->db));
        result = -1;
    }
    return result;
}
