/*  tf_store_schema — the database file: its identity checks, WAL mode,
    the migrations (the format is described in tf_store.c), the epoch. */
#include "tf_store_int.h"

// --------------------------------------------------------------- schema

/*  The change log's columns after seq, in both of its migrations. */
#define S_CHANGE_COLUMNS                                                                           \
    "  kind INTEGER NOT NULL CHECK (kind IN (1, 2)),"                                              \
    "  sector INTEGER NOT NULL,"                                                                   \
    "  id TEXT NOT NULL,"                                                                          \
    "  revision INTEGER NOT NULL,"                                                                 \
    "  sector_prev_seq INTEGER NOT NULL,"                                                          \
    "  ts_ms INTEGER NOT NULL,"                                                                    \
    "  body BLOB) STRICT;"

/*  Migration 1: everything (the records table is tf_columns.h's). Each
    migration runs in the open transaction; tf_st_migrate sets user_version
    after it. */
static const char *s_schema_1 =
    TF_COLUMNS_CREATE "CREATE TABLE meta ("
                      "  key TEXT PRIMARY KEY NOT NULL,"
                      "  value ANY) STRICT;"
                      "CREATE TABLE state ("
                      "  one INTEGER PRIMARY KEY CHECK (one = 1),"
                      "  record_count INTEGER NOT NULL,"
                      "  digest INTEGER NOT NULL) STRICT;"
                      "INSERT INTO state (one, record_count, digest) VALUES (1, 0, 0);"
                      "CREATE TABLE changes ("
                      "  seq INTEGER PRIMARY KEY AUTOINCREMENT," S_CHANGE_COLUMNS
                      "CREATE INDEX changes_sector ON changes (sector, seq);"
                      "CREATE TABLE sector_heads ("
                      "  sector INTEGER PRIMARY KEY,"
                      "  seq INTEGER NOT NULL) STRICT;"
                      "CREATE TABLE requests ("
                      "  request_id TEXT PRIMARY KEY NOT NULL,"
                      "  reply BLOB NOT NULL,"
                      "  created_ms INTEGER NOT NULL) STRICT;"
                      "CREATE INDEX requests_created ON requests (created_ms);";

/*  Migration 2: the write path appends only. The log gets its sequence
    from the store (no AUTOINCREMENT, whose sqlite_sequence row was
    rewritten by every insert), state keeps the head and how far `records`
    is applied, and the idempotency cache becomes an append-only table. The
    state update reads sqlite_sequence before DROP TABLE forgets it. */
static const char s_schema_2[] =
    "ALTER TABLE state ADD COLUMN applied INTEGER NOT NULL DEFAULT 0;"
    "UPDATE state SET"
    "  applied = coalesce ((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0);"
    "CREATE TABLE changes_2 ("
    "  seq INTEGER PRIMARY KEY," S_CHANGE_COLUMNS
    "INSERT INTO changes_2 SELECT seq, kind, sector, id, revision, sector_prev_seq, ts_ms, body"
    "  FROM changes ORDER BY seq;"
    "DROP TABLE changes;"
    "ALTER TABLE changes_2 RENAME TO changes;"
    "CREATE TABLE replies ("
    "  n INTEGER PRIMARY KEY,"
    "  request_id TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  reply BLOB NOT NULL) STRICT;"
    "INSERT INTO replies (request_id, created_ms, reply)"
    "  SELECT request_id, created_ms, reply FROM requests ORDER BY created_ms;"
    "DROP TABLE requests;";

/*  Migration 3: the records table loses its date index. The service never
    reads by date (a snapshot's date filter runs in id order, the primary
    key's), and it cost each row the applier writes an insert at a random
    place. Measured under the bench's concurrent puts (techfeed-bench
    --only techfeed.concurrent, 3 runs each way): without it the service
    writes 23 % fewer bytes per put and puts 10 % faster. A mirror's
    records table keeps its date index (tf_mirror.c). */
static const char s_schema_3[] = "DROP INDEX IF EXISTS records_date;";

/*  Migration 4: the idempotency cache gets a row per write transaction
    instead of one per reply, which every put appended besides its change:
    in a standalone test of the store (256 puts with their replies per
    transaction) 3.2-3.8 us per put against 3.9-4.2. Each old row becomes
    a group of one (tf_reply_entry, tf_store_replies.c). */
static const char s_schema_4[] =
    "CREATE TABLE reply_groups ("
    "  n INTEGER PRIMARY KEY,"
    "  count INTEGER NOT NULL CHECK (count > 0),"
    "  created_ms INTEGER NOT NULL,"
    "  replies BLOB NOT NULL) STRICT;"
    "INSERT INTO reply_groups (n, count, created_ms, replies)"
    "  SELECT n, 1, created_ms, tf_reply_entry (request_id, reply) FROM replies ORDER BY n;"
    "DROP TABLE replies;";

/*  The migrations after the first (plain SQL), by the version they make. */
static const char *const s_migrations[TF_STORE_SCHEMA + 1] = {
    [2] = s_schema_2,
    [3] = s_schema_3,
    [4] = s_schema_4,
};

// --------------------------------------------------------------- open

/*  16 random bytes as 32 lower-case hex digits. */
int tf_st_make_epoch (char out[33], char *err, size_t errlen, const char *path)
{
    unsigned char bytes[16];
    int fd = open ("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t got = fd >= 0 ? read (fd, bytes, sizeof bytes) : -1;
    int saved = errno;
    if (fd >= 0)
        close (fd);
    if (got != (ssize_t) sizeof bytes) {
        snprintf (err, errlen, "%s: cannot make an epoch: /dev/urandom: %s", path,
                  got < 0 ? strerror (saved) : "short read");
        return -1;
    }
    for (size_t i = 0; i < sizeof bytes; i++)
        snprintf (out + 2 * i, 3, "%02x", bytes[i]);
    return 0;
}

static bool s_is_epoch (const unsigned char *text, int size)
{
    if (!text || size != 32)
        return false;
    for (int i = 0; i < size; i++)
        if (!((text[i] >= '0' && text[i] <= '9') || (text[i] >= 'a' && text[i] <= 'f')))
            return false;
    return true;
}

/*  Message for a failure while reading a file we have not accepted yet. */
static int s_read_error (tf_store_t *self, int rc, char *err, size_t errlen)
{
    int code = rc & 0xff;
    const char *what = code == SQLITE_NOTADB    ? "not a techfeed database"
                       : code == SQLITE_CORRUPT ? "database is corrupt"
                                                : "cannot read";
    snprintf (err, errlen, "%s: %s: %s", self->path, what, sqlite3_errmsg (self->db));
    return -1;
}

/*  Refuses what is not a healthy techfeed database (or an empty file). */
int tf_st_check_file (tf_store_t *self, char *err, size_t errlen)
{
    const char *path = self->path;
    int64_t app_id = 0, version = 0, tables = 0;
    int rc = tf_st_query_int (self->db, "PRAGMA application_id", &app_id);
    if (rc != SQLITE_OK)
        return s_read_error (self, rc, err, errlen);
    //  Integrity before trusting anything else in the file
    sqlite3_stmt *stmt;
    rc = sqlite3_prepare_v2 (self->db, "PRAGMA quick_check(1)", -1, &stmt, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step (stmt);
        if (rc == SQLITE_ROW) {
            const char *verdict = (const char *) sqlite3_column_text (stmt, 0);
            if (!verdict || strcmp (verdict, "ok") != 0) {
                //  One line: drop the "*** in database main ***" heading
                const char *nl = verdict ? strrchr (verdict, '\n') : NULL;
                snprintf (err, errlen, "%s: database is corrupt (quick_check: %s)", path,
                          nl        ? nl + 1
                          : verdict ? verdict
                                    : "no verdict");
                sqlite3_finalize (stmt);
                return -1;
            }
            rc = SQLITE_OK;
        }
        sqlite3_finalize (stmt);
    }
    if (rc == SQLITE_OK)
        rc = tf_st_query_int (self->db, "PRAGMA user_version", &version);
    if (rc == SQLITE_OK)
        rc = tf_st_query_int (self->db, "SELECT count(*) FROM sqlite_schema", &tables);
    if (rc != SQLITE_OK)
        return s_read_error (self, rc, err, errlen);
    if (app_id != 0 && app_id != TF_STORE_APPLICATION_ID) {
        snprintf (err, errlen,
                  "%s: not a techfeed database (application_id 0x%08x belongs to another program)",
                  path, (unsigned) app_id);
        return -1;
    }
    if (app_id == 0 && (tables > 0 || version != 0)) {
        snprintf (err, errlen,
                  "%s: not a techfeed database (an SQLite database without the techfeed "
                  "application_id)",
                  path);
        return -1;
    }
    if (app_id == TF_STORE_APPLICATION_ID && version > TF_STORE_SCHEMA) {
        snprintf (err, errlen,
                  "%s: schema version %lld is newer than this program knows (%d); upgrade techfeed",
                  path, (long long) version, TF_STORE_SCHEMA);
        return -1;
    }
    if (app_id == TF_STORE_APPLICATION_ID && version < 1) {
        snprintf (err, errlen, "%s: damaged techfeed database (no schema version)", path);
        return -1;
    }
    return 0;
}

int tf_st_set_wal (tf_store_t *self, char *err, size_t errlen)
{
    sqlite3_stmt *stmt;
    int rc = sqlite3_prepare_v2 (self->db, "PRAGMA journal_mode = WAL", -1, &stmt, NULL);
    bool wal = false;
    if (rc == SQLITE_OK && (rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        const char *mode = (const char *) sqlite3_column_text (stmt, 0);
        wal = mode && strcmp (mode, "wal") == 0;
        rc = SQLITE_OK;
    }
    sqlite3_finalize (stmt);
    if (rc == SQLITE_OK && wal)
        //  temp_store: savepoint journals stay in memory instead of a temp
        //  file written page by page (most of the write path's syscalls).
        //  journal_size_limit: a WAL that grew under load shrinks back.
        rc = sqlite3_exec (self->db,
                           "PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY;"
                           " PRAGMA journal_size_limit = 67108864",
                           NULL, NULL, NULL);
    if (rc != SQLITE_OK || !wal) {
        snprintf (err, errlen, "%s: cannot enable WAL mode: %s", self->path,
                  rc != SQLITE_OK ? sqlite3_errmsg (self->db) : "journal_mode stayed as it was");
        return -1;
    }
    return 0;
}

/*  Migration 1 body beyond the DDL: identity of the new file. */
static int s_migrate_1 (tf_store_t *self, char *err, size_t errlen)
{
    if (sqlite3_exec (self->db, s_schema_1, NULL, NULL, NULL) != SQLITE_OK) {
        snprintf (err, errlen, "%s: cannot create the schema: %s", self->path,
                  sqlite3_errmsg (self->db));
        return -1;
    }
    char epoch[33];
    if (tf_st_make_epoch (epoch, err, errlen, self->path))
        return -1;
    sqlite3_stmt *stmt;
    int rc = sqlite3_prepare_v2 (self->db,
                                 "INSERT INTO meta (key, value) VALUES ('epoch', ?1),"
                                 " ('created_ms', ?2)",
                                 -1, &stmt, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text (stmt, 1, epoch, -1, SQLITE_STATIC);
        sqlite3_bind_int64 (stmt, 2, tf_now_ms ());
        rc = sqlite3_step (stmt);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize (stmt);
    if (rc == SQLITE_OK) {
        char sql[64];
        snprintf (sql, sizeof sql, "PRAGMA application_id = %d", TF_STORE_APPLICATION_ID);
        rc = sqlite3_exec (self->db, sql, NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        snprintf (err, errlen, "%s: cannot initialise: %s", self->path, sqlite3_errmsg (self->db));
        return -1;
    }
    return 0;
}

/*  Brings the schema to TF_STORE_SCHEMA in one transaction. */
int tf_st_migrate (tf_store_t *self, char *err, size_t errlen)
{
    if (tf_st_replies_register (self->db) != SQLITE_OK ||
        sqlite3_exec (self->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf (err, errlen, "%s: cannot start the migration: %s", self->path,
                  sqlite3_errmsg (self->db));
        return -1;
    }
    //  Read again under the write lock: another process may have migrated
    int64_t version = 0;
    int result = 0;
    if (tf_st_query_int (self->db, "PRAGMA user_version", &version) != SQLITE_OK) {
        snprintf (err, errlen, "%s: cannot read: %s", self->path, sqlite3_errmsg (self->db));
        result = -1;
    }
    for (int64_t next = version + 1; result == 0 && next <= TF_STORE_SCHEMA; next++) {
        if (next == 1)
            result = s_migrate_1 (self, err, errlen);
        else if (sqlite3_exec (self->db, s_migrations[next], NULL, NULL, NULL) != SQLITE_OK) {
            snprintf (err, errlen, "%s: cannot migrate to schema %lld: %s", self->path,
                      (long long) next, sqlite3_errmsg (self->db));
            result = -1;
        }
        if (result == 0) {
            char sql[64];
            snprintf (sql, sizeof sql, "PRAGMA user_version = %lld", (long long) next);
            if (sqlite3_exec (self->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
                snprintf (err, errlen, "%s: cannot set the schema version: %s", self->path,
                          sqlite3_errmsg (self->db));
                result = -1;
            }
        }
    }
    if (result == 0 && sqlite3_exec (self->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf (err, errlen, "%s: cannot commit the migration: %s", self->path,
                  sqlite3_errmsg (self->db));
        result = -1;
    }
    if (result != 0 && !sqlite3_get_autocommit (self->db))
        sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
    return result;
}

int tf_st_load_epoch (tf_store_t *self, char *err, size_t errlen)
{
    sqlite3_stmt *stmt;
    bool ok = false;
    int rc = sqlite3_prepare_v2 (self->db, "SELECT value FROM meta WHERE key = 'epoch'", -1, &stmt,
                                 NULL);
    if (rc == SQLITE_OK && sqlite3_step (stmt) == SQLITE_ROW) {
        const unsigned char *text = sqlite3_column_text (stmt, 0);
        if (s_is_epoch (text, sqlite3_column_bytes (stmt, 0))) {
            memcpy (self->epoch, text, 32);
            self->epoch[32] = 0;
            ok = true;
        }
    }
    sqlite3_finalize (stmt);
    if (!ok) {
        snprintf (err, errlen, "%s: damaged techfeed database (no valid epoch in meta)",
                  self->path);
        return -1;
    }
    return 0;
}
