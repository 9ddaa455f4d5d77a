/*  tf_mirror — a view's records and position in an SQLite file. See
    tf_mirror.h for the file format.
*/
#include "tf_mirror.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <sys/file.h>
#include <unistd.h>

#include "tf_columns.h"
#include "tf_validate.h"

#define TF_MIRROR_APPLICATION_ID 0x54464D52 /* 'TFMR' */
#define TF_STORE_APPLICATION_ID 0x54464544  /* 'TFED': the service's database */
#define TF_MIRROR_SCHEMA 1                  /* PRAGMA user_version written */
#define TF_MIRROR_BUSY_MS 5000              /* wait for another connection's lock */
#define TF_MIRROR_WAL_KEEP "67108864"       /* a WAL that grew behind a reader shrinks back */
#define TF_MIRROR_BODY_MAX (8u << 20)       /* decode budget of one stored body */

static const char *s_schema = TF_COLUMNS_CREATE "CREATE TABLE mirror ("
                                                "  one INTEGER PRIMARY KEY CHECK (one = 1),"
                                                "  epoch TEXT NOT NULL,"
                                                "  position INTEGER NOT NULL,"
                                                "  sectors TEXT NOT NULL,"
                                                "  updated_ms INTEGER NOT NULL) STRICT;"
                                                "CREATE TABLE mirror_last ("
                                                "  sector INTEGER PRIMARY KEY,"
                                                "  seq INTEGER NOT NULL) STRICT;";

/*  Prepared once at open. */
enum {
    ST_UPSERT,    /* a records row */
    ST_REMOVE,    /* delete a records row */
    ST_STATE_SET, /* the mirror row */
    ST_LAST_SET,  /* one mirror_last row */
    ST_COUNT
};

static const char *s_sql[ST_COUNT] = {
    [ST_UPSERT] = TF_COLUMNS_UPSERT,
    [ST_REMOVE] = "DELETE FROM records WHERE id = ?1",
    [ST_STATE_SET] = "INSERT INTO mirror (one, epoch, position, sectors, updated_ms)"
                     " VALUES (1, ?1, ?2, ?3, ?4) ON CONFLICT (one) DO UPDATE SET"
                     " epoch = excluded.epoch, position = excluded.position,"
                     " sectors = excluded.sectors, updated_ms = excluded.updated_ms",
    [ST_LAST_SET] = "INSERT INTO mirror_last (sector, seq) VALUES (?1, ?2)"
                    " ON CONFLICT (sector) DO UPDATE SET seq = excluded.seq",
};

struct _tf_mirror_t {
    sqlite3 *db;                  /* the connection */
    char *path;                   /* the file */
    bool read_only;               /* opened for reading only: no statements */
    bool in_batch;                /* a transaction is open */
    int writer_fd;                /* the file, flock'd: one mirror writes it; -1 when read-only */
    sqlite3_stmt *stmt[ST_COUNT]; /* see s_sql; NULL when read-only */
    char errstr[600];             /* last error */
};

// --------------------------------------------------------------- helpers

/*  "context: sqlite's message" into errstr; returns -1. */
static int s_fail (tf_mirror_t *self, const char *fmt, ...)
{
    char context[300];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (context, sizeof context, fmt, ap);
    va_end (ap);
    snprintf (self->errstr, sizeof self->errstr, "%s: %s: %s", self->path, context,
              sqlite3_errmsg (self->db));
    return -1;
}

static int s_exec (tf_mirror_t *self, const char *sql, const char *context)
{
    if (sqlite3_exec (self->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return s_fail (self, "%s", context);
    return 0;
}

/*  Steps a statement that returns no rows, resets it and clears it. */
static int s_run (tf_mirror_t *self, sqlite3_stmt *stmt, const char *context)
{
    int rc = sqlite3_step (stmt);
    int result = rc == SQLITE_DONE ? 0 : s_fail (self, "%s", context);
    sqlite3_reset (stmt);
    sqlite3_clear_bindings (stmt);
    return result;
}

/*  One integer of a single-row query; -1 when it fails. */
static int s_pragma (tf_mirror_t *self, const char *sql, int64_t *value)
{
    sqlite3_stmt *stmt;
    if (sqlite3_prepare_v2 (self->db, sql, -1, &stmt, NULL) != SQLITE_OK)
        return s_fail (self, "%s", sql);
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW)
        *value = sqlite3_column_int64 (stmt, 0);
    sqlite3_finalize (stmt);
    return rc == SQLITE_ROW ? 0 : s_fail (self, "%s", sql);
}

// --------------------------------------------------------------- open

/*  Settings of the connection before anything is read: the service's
    hardening; a reader writes nothing. */
static int s_configure (tf_mirror_t *self)
{
    sqlite3_extended_result_codes (self->db, 1);
    sqlite3_busy_timeout (self->db, TF_MIRROR_BUSY_MS);
    if (sqlite3_db_config (self->db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *) NULL) != SQLITE_OK)
        return s_fail (self, "defensive mode");
    if (s_exec (self, "PRAGMA trusted_schema = OFF", "trusted_schema"))
        return -1;
    if (self->read_only)
        return s_exec (self, "PRAGMA query_only = ON", "query_only");
    return 0;
}

/*  The writer's claim on the file, before it changes anything: a file it
    cannot write is refused now, not at its first batch after a snapshot,
    and one mirror writes a file at a time (a flock, apart from SQLite's
    own locks, which readers share). */
static int s_claim (tf_mirror_t *self)
{
    if (sqlite3_db_readonly (self->db, "main") == 1) {
        snprintf (self->errstr, sizeof self->errstr,
                  "%s: cannot write it (a read-only file or directory)", self->path);
        return -1;
    }
    self->writer_fd =
        open (self->path, O_RDONLY | O_CREAT | O_CLOEXEC, 0644); // SQLite makes it later
    if (self->writer_fd < 0 || flock (self->writer_fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf (self->errstr, sizeof self->errstr, "%s: %s", self->path,
                  errno == EWOULDBLOCK ? "another mirror keeps it current already (one at a time)"
                                       : strerror (errno));
        return -1;
    }
    return 0;
}

/*  The writer's journal, once the file is known to be a mirror's: WAL,
    and FULL, so that a batch is durable when its COMMIT returns (NORMAL
    would keep the file consistent too, records and position committing
    together, but a power loss could take back batches reported applied). */
static int s_journal (tf_mirror_t *self)
{
    return s_exec (self,
                   "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
                   " PRAGMA journal_size_limit = " TF_MIRROR_WAL_KEEP,
                   "WAL mode");
}

/*  Creates the schema of a new (empty) file, or checks an existing one. */
static int s_schema_check (tf_mirror_t *self)
{
    int64_t app_id, version, objects;
    if (s_pragma (self, "PRAGMA application_id", &app_id) ||
        s_pragma (self, "PRAGMA user_version", &version) ||
        s_pragma (self, "SELECT count(*) FROM sqlite_schema", &objects))
        return -1;
    if (app_id == TF_STORE_APPLICATION_ID) {
        snprintf (self->errstr, sizeof self->errstr,
                  "%s is a techfeed-ingestd database, not a mirror file", self->path);
        return -1;
    }
    if (app_id == 0 && version == 0 && objects == 0) {
        if (self->read_only) {
            snprintf (self->errstr, sizeof self->errstr, "%s: not a mirror file (empty)",
                      self->path);
            return -1;
        }
        char sql[200];
        snprintf (sql, sizeof sql, "PRAGMA application_id = %d; PRAGMA user_version = %d;",
                  TF_MIRROR_APPLICATION_ID, TF_MIRROR_SCHEMA);
        if (s_exec (self, "BEGIN IMMEDIATE", "begin") || s_exec (self, s_schema, "create tables") ||
            s_exec (self, sql, "set the file's id") || s_exec (self, "COMMIT", "commit")) {
            sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
        return 0;
    }
    if (app_id != TF_MIRROR_APPLICATION_ID) {
        snprintf (self->errstr, sizeof self->errstr,
                  "%s is not a techfeed mirror file (application_id %#llx)", self->path,
                  (unsigned long long) app_id);
        return -1;
    }
    if (version != TF_MIRROR_SCHEMA) {
        snprintf (self->errstr, sizeof self->errstr,
                  "%s has mirror schema %lld; this library reads %d", self->path,
                  (long long) version, TF_MIRROR_SCHEMA);
        return -1;
    }
    sqlite3_stmt *stmt;
    if (sqlite3_prepare_v2 (self->db, "PRAGMA quick_check", -1, &stmt, NULL) != SQLITE_OK)
        return s_fail (self, "quick_check");
    int rc = sqlite3_step (stmt);
    const char *verdict = rc == SQLITE_ROW ? (const char *) sqlite3_column_text (stmt, 0) : NULL;
    if (!verdict || strcmp (verdict, "ok") != 0) {
        snprintf (self->errstr, sizeof self->errstr, "%s is damaged (quick_check: %s)", self->path,
                  verdict ? verdict : sqlite3_errmsg (self->db));
        sqlite3_finalize (stmt);
        return -1;
    }
    sqlite3_finalize (stmt);
    return 0;
}

tf_mirror_t *tf_mirror_open (const char *path, bool read_only, char *err, size_t errlen)
{
    assert (path);
    tf_mirror_t *self = (tf_mirror_t *) zmalloc (sizeof (tf_mirror_t));
    self->path = strdup (path);
    if (!self->path)
        abort ();
    self->read_only = read_only;
    self->writer_fd = -1;
    //  A reader opens read-write too, without CREATE, and writes nothing
    //  (query_only): a connection opened SQLITE_OPEN_READONLY cannot
    //  checkpoint, so when it was the last one its close would leave the
    //  -wal and -shm files behind. A write-protected file still opens,
    //  read-only.
    int flags = read_only ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    int rc = sqlite3_open_v2 (path, &self->db, flags, NULL);
    if (rc != SQLITE_OK)
        s_fail (self, "cannot open");
    else if (s_configure (self) == 0 && (read_only || s_claim (self) == 0) &&
             s_schema_check (self) == 0 && (read_only || s_journal (self) == 0)) {
        for (int i = 0; i < ST_COUNT && !read_only; i++)
            if (sqlite3_prepare_v3 (self->db, s_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                    &self->stmt[i], NULL) != SQLITE_OK) {
                s_fail (self, "prepare");
                goto failed;
            }
        return self;
    }
failed:
    snprintf (err, errlen, "%s", self->errstr);
    tf_mirror_destroy (&self);
    return NULL;
}

void tf_mirror_destroy (tf_mirror_t **self_p)
{
    assert (self_p);
    tf_mirror_t *self = *self_p;
    if (!self)
        return;
    tf_mirror_rollback (self);
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize (self->stmt[i]);
    sqlite3_close (self->db);
    if (self->writer_fd >= 0)
        close (self->writer_fd); // the flock goes with it
    free (self->path);
    free (self);
    *self_p = NULL;
}

const char *tf_mirror_errstr (tf_mirror_t *self)
{
    return self->errstr;
}

const char *tf_mirror_path (tf_mirror_t *self)
{
    return self->path;
}

// --------------------------------------------------------------- reading

/*  The state rows, on the open connection (inside the caller's read
    transaction when it wants them consistent with other reads). */
static int s_read_state (tf_mirror_t *self, tf_mirror_state_t *state)
{
    memset (state, 0, sizeof *state);
    sqlite3_stmt *stmt;
    if (sqlite3_prepare_v2 (self->db,
                            "SELECT epoch, position, sectors, updated_ms FROM mirror WHERE one = 1",
                            -1, &stmt, NULL) != SQLITE_OK)
        return s_fail (self, "read the position");
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        const char *epoch = (const char *) sqlite3_column_text (stmt, 0);
        const char *sectors = (const char *) sqlite3_column_text (stmt, 2);
        snprintf (state->epoch, sizeof state->epoch, "%s", epoch ? epoch : "");
        state->position = tf_columns_u64 (sqlite3_column_int64 (stmt, 1));
        snprintf (state->sectors, sizeof state->sectors, "%s", sectors ? sectors : "");
        state->updated_ms = sqlite3_column_int64 (stmt, 3);
    }
    sqlite3_finalize (stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return s_fail (self, "read the position");
    if (sqlite3_prepare_v2 (self->db, "SELECT sector, seq FROM mirror_last", -1, &stmt, NULL) !=
        SQLITE_OK)
        return s_fail (self, "read last[s]");
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        int64_t sector = sqlite3_column_int64 (stmt, 0);
        if (sector >= 1 && sector <= TF_SECTOR_MAX)
            state->last[sector] = tf_columns_u64 (sqlite3_column_int64 (stmt, 1));
    }
    sqlite3_finalize (stmt);
    return rc == SQLITE_DONE ? 0 : s_fail (self, "read last[s]");
}

int tf_mirror_state (tf_mirror_t *self, tf_mirror_state_t *state)
{
    return s_read_state (self, state);
}

int tf_mirror_each (tf_mirror_t *self, tf_record_fn *fn, void *arg)
{
    sqlite3_stmt *stmt;
    if (sqlite3_prepare_v2 (self->db, "SELECT id, body FROM records", -1, &stmt, NULL) != SQLITE_OK)
        return s_fail (self, "read records");
    int rc, result = 0;
    while (result == 0 && (rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        const char *id = (const char *) sqlite3_column_text (stmt, 0);
        const uint8_t *body = (const uint8_t *) sqlite3_column_blob (stmt, 1);
        size_t size = (size_t) sqlite3_column_bytes (stmt, 1);
        char err[200] = "";
        Techfeed__Milestone *record = (Techfeed__Milestone *) tf_wire_unpack (
            &techfeed__milestone__descriptor, body ? body : (const uint8_t *) "", size,
            TF_MIRROR_BODY_MAX, err, sizeof err);
        if (record &&
            (!record->id || !id || strcmp (record->id, id) != 0 || !tf_valid_id (record->id) ||
             !tf_sector_slug (record->sector) || !record->has_revision))
            snprintf (err, sizeof err, "body is not the row's record");
        if (!record || err[0]) {
            snprintf (self->errstr, sizeof self->errstr, "%s: record '%.128s': %s", self->path,
                      id ? id : "?", err);
            result = -1;
        } else if (fn (record, arg) != 0)
            result = 1; // the caller stops
        tf_wire_free (record ? &record->base : NULL);
    }
    sqlite3_finalize (stmt);
    if (result < 0)
        return -1;
    if (result == 1)
        return 0;
    return rc == SQLITE_DONE ? 0 : s_fail (self, "read records");
}

int tf_mirror_summary (tf_mirror_t *self, tf_mirror_state_t *state, uint64_t *count,
                       uint64_t *digest)
{
    if (s_exec (self, "BEGIN", "begin"))
        return -1;
    int result = s_read_state (self, state);
    *count = *digest = 0;
    sqlite3_stmt *stmt = NULL;
    if (result == 0 && sqlite3_prepare_v2 (self->db, "SELECT id, revision FROM records", -1, &stmt,
                                           NULL) != SQLITE_OK)
        result = s_fail (self, "read records");
    int rc = SQLITE_DONE;
    while (result == 0 && (rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        const char *id = (const char *) sqlite3_column_text (stmt, 0);
        *digest += tf_digest_item (id ? id : "", tf_columns_u64 (sqlite3_column_int64 (stmt, 1)));
        (*count)++;
    }
    if (result == 0 && rc != SQLITE_DONE)
        result = s_fail (self, "read records");
    sqlite3_finalize (stmt);
    sqlite3_exec (self->db, "COMMIT", NULL, NULL, NULL);
    return result;
}

// --------------------------------------------------------------- writing

static int s_begin (tf_mirror_t *self)
{
    if (self->in_batch)
        return 0;
    if (self->read_only) {
        snprintf (self->errstr, sizeof self->errstr, "%s: opened read-only", self->path);
        return -1;
    }
    if (s_exec (self, "BEGIN IMMEDIATE", "begin a batch"))
        return -1;
    self->in_batch = true;
    return 0;
}

int tf_mirror_put (tf_mirror_t *self, const Techfeed__Milestone *record)
{
    if (s_begin (self))
        return -1;
    size_t size;
    uint8_t *body = tf_wire_pack (&record->base, &size);
    sqlite3_stmt *stmt = self->stmt[ST_UPSERT];
    int result;
    if (tf_columns_bind (stmt, record, body, size) != 0) {
        sqlite3_clear_bindings (stmt);
        snprintf (self->errstr, sizeof self->errstr,
                  "%s: record '%.128s': a list column cannot be JSON", self->path, record->id);
        result = -1;
    } else
        result = s_run (self, stmt, record->id);
    free (body);
    return result;
}

int tf_mirror_delete (tf_mirror_t *self, const char *id)
{
    if (s_begin (self))
        return -1;
    sqlite3_stmt *stmt = self->stmt[ST_REMOVE];
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
    return s_run (self, stmt, id);
}

int tf_mirror_commit (tf_mirror_t *self, const tf_mirror_state_t *state)
{
    if (s_begin (self))
        return -1;
    sqlite3_stmt *stmt = self->stmt[ST_STATE_SET];
    sqlite3_bind_text (stmt, 1, state->epoch, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 2, tf_columns_i64 (state->position));
    sqlite3_bind_text (stmt, 3, state->sectors, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 4, zclock_time ());
    int result = s_run (self, stmt, "write the position");
    for (int s = 1; s <= TF_SECTOR_MAX && result == 0; s++) {
        stmt = self->stmt[ST_LAST_SET];
        sqlite3_bind_int (stmt, 1, s);
        sqlite3_bind_int64 (stmt, 2, tf_columns_i64 (state->last[s]));
        result = s_run (self, stmt, "write last[s]");
    }
    if (result == 0)
        result = s_exec (self, "COMMIT", "commit");
    if (result != 0) {
        tf_mirror_rollback (self);
        return -1;
    }
    self->in_batch = false;
    return 0;
}

void tf_mirror_rollback (tf_mirror_t *self)
{
    if (!self->in_batch)
        return;
    //  After a failed COMMIT SQLite may already have rolled back itself
    if (!sqlite3_get_autocommit (self->db))
        sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
    self->in_batch = false;
}

bool tf_mirror_in_batch (tf_mirror_t *self)
{
    return self->in_batch;
}
