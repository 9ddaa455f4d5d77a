/*  tf_store — the techfeed database (see tf_store.h).

    File format. An SQLite 3 database in WAL mode with
    PRAGMA application_id = 0x54464544 ('TFED') and PRAGMA user_version =
    the schema version (migrations below). Every table is STRICT.

    meta — facts about the file, written once at creation
    ----------------------------------------------------------------------
    key           TEXT     PRIMARY KEY
    value         ANY      'epoch': 32 lower-case hex digits (16 random bytes)
                           'created_ms': Unix ms of creation

    A write transaction appends to `changes` (and `replies`) only. The
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
    reads them first.

    sector_heads — last change per sector, as of `applied`; survives
    trimming the log
    ----------------------------------------------------------------------
    sector        INTEGER  PRIMARY KEY
    seq           INTEGER  last sequence in that sector

    replies — idempotency cache, appended in the transaction of the
    request's changes (schema 2; schema 1 had a `requests` table keyed by
    request id, a random-key insert per request)
    ----------------------------------------------------------------------
    n             INTEGER  PRIMARY KEY, 1, 2, ... in order of writing
    request_id    TEXT     the request's id
    created_ms    INTEGER  Unix ms
    reply         BLOB     packed IngestReply

    In memory, loaded at open: id -> (revision, sector) of every stored
    record and request id -> reply row, so the write path looks nothing up
    in SQLite. Changes to them inside a transaction are journaled and undone
    when it (or a savepoint) rolls back.
*/
#include "tf_store.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tf_columns.h"
#include "tf_index.h"
#include "tf_wire.h"

#define TF_STORE_APPLICATION_ID 0x54464544 /* 'TFED' */
#define TF_STORE_SCHEMA 2                  /* highest migration below */
#define TF_STORE_BUSY_MS 5000
#define TF_STORE_SECTORS 11 /* sector_heads index 0..TF_SECTOR_MAX */

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
    migration runs in the open transaction; s_migrate sets user_version
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
static const char *s_schema_2 =
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

/*  Prepared once at open, kept for the life of the store. */
enum {
    ST_UPSERT,     /* insert or replace a records row */
    ST_REMOVE,     /* delete a records row */
    ST_APPEND,     /* append to the change log */
    ST_HEAD_SET,   /* set the last sequence of a sector */
    ST_STATE_GET,  /* record_count, digest, applied */
    ST_STATE_SET,  /* write them */
    ST_UNAPPLIED,  /* changes past `applied`, in order */
    ST_GET,        /* body of an id in records */
    ST_GET_TAIL,   /* latest unapplied change of an id */
    ST_REQ_GET,    /* cached reply by row */
    ST_REQ_PUT,    /* cache a reply */
    ST_REQ_EXPIRE, /* forget old request ids */
    ST_TRIM,       /* delete old changes */
    ST_COUNT
};

static const char *s_sql[ST_COUNT] = {
    [ST_UPSERT] = TF_COLUMNS_UPSERT,
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
    [ST_REQ_GET] = "SELECT reply FROM replies WHERE n = ?1",
    [ST_REQ_PUT] = "INSERT INTO replies (n, request_id, created_ms, reply) VALUES (?1, ?2, ?3, ?4)",
    [ST_REQ_EXPIRE] =
        "DELETE FROM replies WHERE created_ms < ?1 OR n <= ?2 RETURNING n, request_id",
    //  Only applied changes go: `records` must never need a trimmed one.
    [ST_TRIM] =
        "DELETE FROM changes WHERE seq <= ?3 AND ((?1 > 0 AND seq <= ?4 - ?1) OR ts_ms < ?2)",
};

// --------------------------------------------------------------- types

/*  The figures every change moves: kept in memory while a transaction is
    open and written (state row, sector_heads) once, just before COMMIT,
    instead of read and rewritten by every put. */
typedef struct {
    uint64_t count;                   /* records */
    uint64_t digest;                  /* tf_digest_item sum */
    uint64_t head;                    /* last sequence given */
    uint64_t replies;                 /* last replies row */
    uint64_t heads[TF_STORE_SECTORS]; /* last sequence per sector */
} s_figures_t;

/*  One change to an in-memory index, to undo it on rollback. */
typedef struct {
    tf_index_t *index;
    char *key;
    bool existed;           /* else the key was absent */
    tf_index_value_t value; /* before the change */
} s_undo_t;

#define TF_STORE_DEPTH_MAX 8 /* nested savepoints */

struct _tf_store_t {
    sqlite3 *db;                           /* the one writer connection */
    char *path;                            /* database file, for cursors */
    char epoch[33];                        /* meta 'epoch' */
    int depth;                             /* open savepoints sp1..spN */
    s_figures_t committed;                 /* figures as last committed */
    s_figures_t working;                   /* figures of the open transaction */
    s_figures_t saved[TF_STORE_DEPTH_MAX]; /* working at each open savepoint */
    size_t saved_undo[TF_STORE_DEPTH_MAX]; /* undo journal length at each savepoint */
    bool savepoint_began;                  /* sp1 began the transaction (RELEASE commits) */
    _Atomic uint64_t applied;              /* last change copied into records */
    s_figures_t at_applied;                /* figures as of `applied` (state row) */
    _Atomic uint64_t head;                 /* committed.head, for the applier's thread */
    pthread_mutex_t lock;                  /* the connection: writer's thread or applier's */
    sqlite3 *reader;                       /* the applier reads the log here, unlocked */
    sqlite3_stmt *reader_unapplied;        /* ST_UNAPPLIED on it */
    bool holding;                          /* the writer's thread holds `lock` */
    int calls;                             /* nesting of the writer's calls into the store */
    tf_index_t *ids;                       /* id -> (revision, sector) */
    tf_index_t *requests;                  /* request id -> (replies row, created_ms) */
    s_undo_t *undo;                        /* index changes of the open transaction */
    uint8_t *last_body;                    /* the last put's stored bytes (tf_change_t) */
    size_t undo_len, undo_cap;
    _Atomic int wal_pages;        /* WAL size after the last commit (wal hook) */
    sqlite3_stmt *stmt[ST_COUNT]; /* prepared statements, see s_sql */
    char errstr[1024];            /* last error */
};

/*  A change of the log past `applied`, read back. */
typedef struct {
    uint64_t seq;
    int kind;
    char *id;
    uint8_t *body;
    size_t size;
    int sector;
    uint64_t revision;           /* after the change (a delete: the deleted one) */
    Techfeed__Milestone *record; /* a put's body decoded (s_decode_pending) */
    tf_columns_json_t json;      /* and its list columns */
    bool visible;                /* snapshot tail: a put that matches the filter */
} s_pending_t;

struct _tf_store_cursor_t {
    sqlite3 *db;        /* own read-only connection */
    sqlite3_stmt *stmt; /* the records or changes query */
    bool changes;       /* a catch-up cursor, else a snapshot */
    bool done;          /* the query has ended */
    bool row_held;      /* snapshot: stmt's row not handed out yet */
    s_pending_t *tail;  /* snapshot: latest unapplied change per id, by id */
    size_t tail_len, tail_next;
    char epoch[33];                   /* copied into every event */
    uint64_t sequence;                /* head as of the read transaction */
    uint64_t heads[TF_STORE_SECTORS]; /* sector heads, same transaction */
    char errstr[512];                 /* last error */
};

/*  Where the log stands, read in one transaction. */
typedef struct {
    uint64_t head;                    /* last sequence ever, 0 if none */
    uint64_t applied;                 /* last change in records */
    uint64_t first;                   /* oldest retained, head+1 if empty */
    uint64_t heads[TF_STORE_SECTORS]; /* per sector */
} s_position_t;

/*  Growing SQL text (only placeholders and fixed words go in). */
typedef struct {
    char *text; /* NUL-terminated */
    size_t len; /* bytes used */
    size_t cap; /* bytes allocated */
} s_sql_t;

// --------------------------------------------------------------- helpers

static void s_oom (void)
{
    fputs ("tf_store: out of memory\n", stderr);
    abort ();
}

static void *s_alloc (size_t size)
{
    void *p = calloc (1, size ? size : 1);
    if (!p)
        s_oom ();
    return p;
}

static char *s_strdup (const char *s)
{
    char *copy = strdup (s);
    if (!copy)
        s_oom ();
    return copy;
}

static void s_sql_add (s_sql_t *sql, const char *fmt, ...)
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
            s_oom ();
    }
    va_start (ap, fmt);
    vsnprintf (sql->text + sql->len, sql->cap - sql->len, fmt, ap);
    va_end (ap);
    sql->len += (size_t) n;
}

/*  Sequence-like column (never negative when written by us). */
static uint64_t s_column_seq (sqlite3_stmt *stmt, int column)
{
    int64_t v = sqlite3_column_int64 (stmt, column);
    return v > 0 ? (uint64_t) v : 0;
}

/*  Writes "context: sqlite message" to buf and returns TF_STORE_FULL for a
    full disk or database, else TF_STORE_ERROR. */
static int s_sql_error (char *buf, size_t size, sqlite3 *db, int rc, const char *fmt, ...)
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
static int s_fail (tf_store_t *self, int code, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (self->errstr, sizeof self->errstr, fmt, ap);
    va_end (ap);
    return code;
}

/*  Steps a statement that returns no rows and resets it; errors into err. */
static int s_step_done (sqlite3 *db, sqlite3_stmt *stmt, char *err, size_t errlen,
                        const char *context)
{
    int rc = sqlite3_step (stmt);
    int result = 0;
    if (rc != SQLITE_DONE)
        result = s_sql_error (err, errlen, db, rc, "%s", context);
    sqlite3_reset (stmt);
    return result;
}

static int s_exec_on (sqlite3 *db, const char *sql, char *err, size_t errlen, const char *context)
{
    int rc = sqlite3_exec (db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : s_sql_error (err, errlen, db, rc, "%s", context);
}

/*  The same on the writer connection, errors into errstr. */
static int s_run (tf_store_t *self, sqlite3_stmt *stmt, const char *context)
{
    return s_step_done (self->db, stmt, self->errstr, sizeof self->errstr, context);
}

static int s_exec (tf_store_t *self, const char *sql, const char *context)
{
    return s_exec_on (self->db, sql, self->errstr, sizeof self->errstr, context);
}

static int s_bind_text (sqlite3_stmt *stmt, int index, const char *text)
{
    if (!text)
        return sqlite3_bind_null (stmt, index);
    return sqlite3_bind_text (stmt, index, text, -1, SQLITE_STATIC);
}

/*  For a cursor's statement, which outlives the request its filter came
    from: SQLite keeps its own copy. */
static int s_bind_text_copy (sqlite3_stmt *stmt, int index, const char *text)
{
    return sqlite3_bind_text (stmt, index, text, -1, SQLITE_TRANSIENT);
}

/*  A blob never binds as NULL, even when empty. */
static int s_bind_blob (sqlite3_stmt *stmt, int index, const void *data, size_t size)
{
    return sqlite3_bind_blob64 (stmt, index, size ? data : "", size, SQLITE_STATIC);
}

/*  Settings every connection gets (writer and cursors). */
static int s_configure (sqlite3 *db)
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
static int s_query_int (sqlite3 *db, const char *sql, int64_t *value)
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
static int s_position (sqlite3 *db, s_position_t *pos)
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
        pos->applied = s_column_seq (stmt, 0);
        uint64_t last = s_column_seq (stmt, 2);
        pos->head = last > pos->applied ? last : pos->applied;
        bool empty = sqlite3_column_type (stmt, 1) == SQLITE_NULL;
        pos->first = empty ? pos->head + 1 : s_column_seq (stmt, 1);
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
        uint64_t seq = s_column_seq (stmt, 1);
        if (sector >= 0 && sector < TF_STORE_SECTORS && seq > pos->heads[sector])
            pos->heads[sector] = seq;
    }
    sqlite3_finalize (stmt);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

// --------------------------------------------------------------- open

/*  16 random bytes as 32 lower-case hex digits. */
static int s_make_epoch (char out[33], char *err, size_t errlen, const char *path)
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
static int s_check_file (tf_store_t *self, char *err, size_t errlen)
{
    const char *path = self->path;
    int64_t app_id = 0, version = 0, tables = 0;
    int rc = s_query_int (self->db, "PRAGMA application_id", &app_id);
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
        rc = s_query_int (self->db, "PRAGMA user_version", &version);
    if (rc == SQLITE_OK)
        rc = s_query_int (self->db, "SELECT count(*) FROM sqlite_schema", &tables);
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

static int s_set_wal (tf_store_t *self, char *err, size_t errlen)
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
    if (s_make_epoch (epoch, err, errlen, self->path))
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
static int s_migrate (tf_store_t *self, char *err, size_t errlen)
{
    if (sqlite3_exec (self->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf (err, errlen, "%s: cannot start the migration: %s", self->path,
                  sqlite3_errmsg (self->db));
        return -1;
    }
    //  Read again under the write lock: another process may have migrated
    int64_t version = 0;
    int result = 0;
    if (s_query_int (self->db, "PRAGMA user_version", &version) != SQLITE_OK) {
        snprintf (err, errlen, "%s: cannot read: %s", self->path, sqlite3_errmsg (self->db));
        result = -1;
    }
    for (int64_t next = version + 1; result == 0 && next <= TF_STORE_SCHEMA; next++) {
        if (next == 1)
            result = s_migrate_1 (self, err, errlen);
        if (next == 2 && sqlite3_exec (self->db, s_schema_2, NULL, NULL, NULL) != SQLITE_OK) {
            snprintf (err, errlen, "%s: cannot migrate to schema 2: %s", self->path,
                      sqlite3_errmsg (self->db));
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

static int s_load_epoch (tf_store_t *self, char *err, size_t errlen)
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

// --------------------------------------------------------------- in-memory indexes

/*  Sets or removes (`remove`) a key of one of the store's indexes,
    journaling what was there while a transaction is open. */
static void s_index_change (tf_store_t *self, tf_index_t *index, const char *key, bool remove,
                            tf_index_value_t value)
{
    if (!sqlite3_get_autocommit (self->db)) {
        if (self->undo_len == self->undo_cap) {
            self->undo_cap = self->undo_cap ? self->undo_cap * 2 : 256;
            self->undo = realloc (self->undo, self->undo_cap * sizeof *self->undo);
            if (!self->undo)
                s_oom ();
        }
        s_undo_t *entry = &self->undo[self->undo_len++];
        entry->index = index;
        entry->key = s_strdup (key);
        entry->existed = tf_index_get (index, key, &entry->value);
    }
    if (remove)
        tf_index_remove (index, key);
    else
        tf_index_set (index, key, value);
}

/*  Undoes the journal back to `mark` entries, newest first. */
static void s_undo_to (tf_store_t *self, size_t mark)
{
    while (self->undo_len > mark) {
        s_undo_t *entry = &self->undo[--self->undo_len];
        if (entry->existed)
            tf_index_set (entry->index, entry->key, entry->value);
        else
            tf_index_remove (entry->index, entry->key);
        free (entry->key);
    }
}

/*  The transaction committed: its index changes stay. */
static void s_undo_forget (tf_store_t *self)
{
    for (size_t i = 0; i < self->undo_len; i++)
        free (self->undo[i].key);
    self->undo_len = 0;
}

// --------------------------------------------------------------- transactions

/*  SQLite may end a transaction on its own after an I/O error; forget the
    savepoints, the uncommitted figures and index changes then. */
static void s_sync_depth (tf_store_t *self)
{
    if (sqlite3_get_autocommit (self->db)) {
        self->depth = 0;
        self->working = self->committed;
        s_undo_to (self, 0);
    }
}

/*  What one change does to the figures. A put's previous revision is one
    less (revisions count up from 1 after every delete), so the log alone
    says how the count and digest move. */
static void s_figures_move (s_figures_t *f, uint64_t seq, int kind, int sector, const char *id,
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

/*  Writes the figures as of `applied` (the applier's transaction): the
    state row and the sector heads that moved. The writer's commits write
    none of this: at open the log's tail moves the figures on again. */
static int s_write_applied (tf_store_t *self, const s_figures_t *now, char *err, size_t errlen)
{
    const s_figures_t *was = &self->at_applied;
    sqlite3_stmt *stmt = self->stmt[ST_STATE_SET];
    sqlite3_bind_int64 (stmt, 1, tf_columns_i64 (now->count));
    sqlite3_bind_int64 (stmt, 2, tf_columns_i64 (now->digest));
    sqlite3_bind_int64 (stmt, 3, tf_columns_i64 (now->head));
    int result = s_step_done (self->db, stmt, err, errlen, "apply: state");
    for (int sector = 0; result == 0 && sector < TF_STORE_SECTORS; sector++) {
        if (now->heads[sector] == was->heads[sector])
            continue;
        stmt = self->stmt[ST_HEAD_SET];
        sqlite3_bind_int (stmt, 1, sector);
        sqlite3_bind_int64 (stmt, 2, tf_columns_i64 (now->heads[sector]));
        result = s_step_done (self->db, stmt, err, errlen, "apply: sector head");
    }
    return result;
}

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
    tf_index_value_t value = { s_column_seq (stmt, 1), s_column_seq (stmt, 2) };
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
    uint64_t revision = s_column_seq (stmt, 2);
    if (kind == TECHFEED__CHANGE_KIND__CHANGE_DELETE)
        tf_index_remove (self->ids, id);
    else {
        tf_index_value_t value = { revision, (uint64_t) sector };
        tf_index_set (self->ids, id, value);
    }
    s_figures_move (&self->committed, s_column_seq (stmt, 4), kind, sector, id, revision);
}

static void s_load_head (tf_store_t *self, sqlite3_stmt *stmt)
{
    int64_t sector = sqlite3_column_int64 (stmt, 0);
    if (sector >= 0 && sector < TF_STORE_SECTORS)
        self->at_applied.heads[sector] = s_column_seq (stmt, 1);
}

static void s_load_request (tf_store_t *self, sqlite3_stmt *stmt)
{
    const char *request_id = (const char *) sqlite3_column_text (stmt, 1);
    tf_index_value_t value = { s_column_seq (stmt, 0),
                               tf_columns_u64 (sqlite3_column_int64 (stmt, 2)) };
    if (request_id)
        tf_index_set (self->requests, request_id, value);
    if (value.a > self->committed.replies)
        self->committed.replies = value.a;
}

/*  The committed figures and the in-memory indexes, read once at open. */
static int s_load_figures (tf_store_t *self, char *err, size_t errlen)
{
    s_figures_t *f = &self->at_applied;
    int rc = s_each_row (self->db, "SELECT sector, seq FROM sector_heads", s_load_head, self);
    sqlite3_stmt *stmt = self->stmt[ST_STATE_GET];
    if (rc == SQLITE_OK && (rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        f->count = s_column_seq (stmt, 0);
        f->digest = tf_columns_u64 (sqlite3_column_int64 (stmt, 1));
        f->head = s_column_seq (stmt, 2);
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
    if (rc == SQLITE_OK)
        rc = s_each_row (self->db, "SELECT n, request_id, created_ms FROM replies ORDER BY n",
                         s_load_request, self);
    if (rc != SQLITE_OK) {
        snprintf (err, errlen, "%s: cannot read the state: %s", self->path,
                  rc == SQLITE_CORRUPT ? "state row missing" : sqlite3_errmsg (self->db));
        return -1;
    }
    self->working = self->committed;
    atomic_store (&self->head, self->committed.head);
    return 0;
}

/*  The open transaction committed: its figures and index changes stay. */
static void s_committed (tf_store_t *self)
{
    self->committed = self->working;
    atomic_store (&self->head, self->committed.head);
    s_undo_forget (self);
}

static int s_locked_begin (tf_store_t *self)
{
    assert (self);
    s_sync_depth (self);
    if (!sqlite3_get_autocommit (self->db))
        return s_fail (self, TF_STORE_ERROR, "begin: a transaction is already open");
    self->working = self->committed;
    return s_exec (self, "BEGIN IMMEDIATE", "begin");
}

static int s_locked_commit (tf_store_t *self)
{
    assert (self);
    if (sqlite3_get_autocommit (self->db)) {
        s_sync_depth (self);
        return s_fail (self, TF_STORE_ERROR, "commit: no transaction is open");
    }
    int result = s_exec (self, "COMMIT", "commit");
    if (result == 0) {
        self->depth = 0;
        s_committed (self);
    }
    s_sync_depth (self);
    return result;
}

static int s_locked_rollback (tf_store_t *self)
{
    assert (self);
    self->depth = 0;
    self->working = self->committed;
    s_undo_to (self, 0);
    if (sqlite3_get_autocommit (self->db))
        return 0; // nothing open (SQLite may have rolled back already)
    return s_exec (self, "ROLLBACK", "rollback");
}

static int s_locked_savepoint (tf_store_t *self)
{
    assert (self);
    s_sync_depth (self);
    if (self->depth >= TF_STORE_DEPTH_MAX)
        return s_fail (self, TF_STORE_ERROR, "savepoint: more than %d nested", TF_STORE_DEPTH_MAX);
    char sql[32];
    snprintf (sql, sizeof sql, "SAVEPOINT sp%d", self->depth + 1);
    if (self->depth == 0)
        self->savepoint_began = sqlite3_get_autocommit (self->db);
    if (self->savepoint_began && self->depth == 0)
        self->working = self->committed;
    int result = s_exec (self, sql, "savepoint");
    if (result == 0) {
        self->saved_undo[self->depth] = self->undo_len;
        self->saved[self->depth++] = self->working;
    }
    return result;
}

static int s_locked_release (tf_store_t *self)
{
    assert (self);
    s_sync_depth (self);
    if (self->depth == 0)
        return s_fail (self, TF_STORE_ERROR, "release: no savepoint is open");
    char sql[32];
    snprintf (sql, sizeof sql, "RELEASE sp%d", self->depth);
    //  Releasing the outermost savepoint of a transaction it began commits.
    bool commits = self->depth == 1 && self->savepoint_began;
    int result = s_exec (self, sql, "release");
    if (result == 0) {
        self->depth--;
        if (commits)
            s_committed (self);
    }
    s_sync_depth (self);
    return result;
}

static int s_locked_rollback_to (tf_store_t *self)
{
    assert (self);
    s_sync_depth (self);
    if (self->depth == 0)
        return s_fail (self, TF_STORE_ERROR, "rollback_to: no savepoint is open");
    char sql[64];
    snprintf (sql, sizeof sql, "ROLLBACK TO sp%d; RELEASE sp%d", self->depth, self->depth);
    int result = s_exec (self, sql, "rollback_to");
    if (result == 0) {
        self->depth--;
        self->working = self->saved[self->depth];
        s_undo_to (self, self->saved_undo[self->depth]);
    }
    s_sync_depth (self);
    return result;
}

/*  The connection tf_store_apply_from reads the log on: read-only, so it
    takes no lock the writer needs. */
static int s_open_reader (tf_store_t *self, char *err, size_t errlen)
{
    int rc = sqlite3_open_v2 (self->path, &self->reader, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                              NULL);
    if (rc == SQLITE_OK)
        rc = s_configure (self->reader);
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
    tf_store_t *self = s_alloc (sizeof *self);
    self->path = s_strdup (path);
    pthread_mutex_init (&self->lock, NULL);
    self->ids = tf_index_new ();
    self->requests = tf_index_new ();
    snprintf (self->errstr, sizeof self->errstr, "no error");

    int rc = sqlite3_open_v2 (
        path, &self->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK)
        rc = s_configure (self->db);
    if (rc != SQLITE_OK) {
        snprintf (err, errlen, "%s: cannot open: %s", path,
                  self->db ? sqlite3_errmsg (self->db) : sqlite3_errstr (rc));
        goto fail;
    }
    if (s_check_file (self, err, errlen) || s_set_wal (self, err, errlen) ||
        s_migrate (self, err, errlen) || s_load_epoch (self, err, errlen))
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
    pthread_mutex_destroy (&self->lock);
    if (self->db && !sqlite3_get_autocommit (self->db))
        sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close (self->db);
    s_undo_forget (self);
    free (self->undo);
    free (self->last_body);
    tf_index_destroy (&self->ids);
    tf_index_destroy (&self->requests);
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
        return s_fail (self, TF_STORE_ERROR, "new epoch: a transaction is open");
    char epoch[33], err[512];
    if (s_make_epoch (epoch, err, sizeof err, self->path))
        return s_fail (self, TF_STORE_ERROR, "%s", err);
    sqlite3_stmt *stmt;
    int rc = sqlite3_prepare_v2 (self->db, "UPDATE meta SET value = ?1 WHERE key = 'epoch'", -1,
                                 &stmt, NULL);
    if (rc != SQLITE_OK)
        return s_sql_error (self->errstr, sizeof self->errstr, self->db, rc, "new epoch");
    sqlite3_bind_text (stmt, 1, epoch, -1, SQLITE_STATIC);
    int result = s_run (self, stmt, "new epoch");
    if (result == 0 && sqlite3_changes (self->db) != 1)
        result = s_fail (self, TF_STORE_ERROR, "new epoch: no epoch row in meta");
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
    if (rc != SQLITE_OK)
        return s_sql_error (self->errstr, sizeof self->errstr, self->db, rc, "checkpoint");
    self->wal_pages = frames - copied;
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
    s_sync_depth (self);
    //  Inside a write transaction: its own, uncommitted figures.
    const s_figures_t *f = &self->working;
    state->record_count = f->count;
    state->digest = f->digest;
    state->head_sequence = f->head;
    state->applied_sequence = atomic_load (&self->applied);
    memcpy (state->sector_heads, f->heads, sizeof state->sector_heads);
    state->index_bytes = tf_index_bytes (self->ids) + tf_index_bytes (self->requests);
    int64_t first = 0;
    int rc = s_query_int (self->db, "SELECT coalesce (min(seq), 0) FROM changes", &first);
    if (rc != SQLITE_OK)
        return s_sql_error (self->errstr, sizeof self->errstr, self->db, rc, "state");
    state->log_first_sequence = first > 0 ? (uint64_t) first : f->head + 1;
    return 0;
}

uint64_t tf_store_unapplied (tf_store_t *self)
{
    assert (self);
    return atomic_load (&self->head) - atomic_load (&self->applied);
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
    s_bind_text (stmt, 4, id);
    sqlite3_bind_int64 (stmt, 5, tf_columns_i64 (revision));
    sqlite3_bind_int64 (stmt, 6, tf_columns_i64 (prev));
    sqlite3_bind_int64 (stmt, 7, now_ms);
    if (body)
        s_bind_blob (stmt, 8, body, size);
    else
        sqlite3_bind_null (stmt, 8);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    sqlite3_clear_bindings (stmt);
    if (rc != SQLITE_DONE)
        return s_sql_error (self->errstr, sizeof self->errstr, self->db, rc,
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
    s_figures_t *f = &self->working;
    f->heads[change->sector] = change->sequence;
    f->count += (old_revision == 0) - (new_revision == 0);
    f->digest -= old_revision ? tf_digest_item (id, old_revision) : 0;
    f->digest += new_revision ? tf_digest_item (id, new_revision) : 0;
    tf_index_value_t value = { new_revision, (uint64_t) change->sector };
    s_index_change (self, self->ids, id, new_revision == 0, value);
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
    return s_fail (self, TF_STORE_CONFLICT, "%.128s: expected revision %llu, stored %llu", id,
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
        return s_fail (self, TF_STORE_IMMUTABLE, "%.128s: sector is %d, cannot change to %d", id,
                       sector, (int) record->sector);

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
        return s_fail (self, TF_STORE_NOT_FOUND, "%.128s: no such record", id);
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

static int s_locked_put (tf_store_t *self, const Techfeed__Milestone *record, bool has_expected,
                         uint64_t expected_revision, int64_t now_ms, tf_change_t *change)
{
    assert (self);
    assert (record && record->id);
    return s_item (self, record, NULL, has_expected, expected_revision, now_ms, change);
}

static int s_locked_delete (tf_store_t *self, const char *id, bool has_expected,
                            uint64_t expected_revision, int64_t now_ms, tf_change_t *change)
{
    assert (self);
    assert (id);
    return s_item (self, NULL, id, has_expected, expected_revision, now_ms, change);
}

// --------------------------------------------------------------- requests

static int s_locked_request_get (tf_store_t *self, const char *request_id, uint8_t **reply,
                                 size_t *size)
{
    assert (self);
    assert (request_id && reply && size);
    *reply = NULL;
    *size = 0;
    tf_index_value_t row;
    if (!tf_index_get (self->requests, request_id, &row))
        return TF_STORE_NOT_FOUND; // every new request: nothing to format

    sqlite3_stmt *stmt = self->stmt[ST_REQ_GET];
    sqlite3_bind_int64 (stmt, 1, tf_columns_i64 (row.a));
    int rc = sqlite3_step (stmt);
    int result = 0;
    if (rc == SQLITE_ROW) {
        size_t n = (size_t) sqlite3_column_bytes (stmt, 0);
        const void *data = sqlite3_column_blob (stmt, 0);
        *reply = s_alloc (n);
        if (n)
            memcpy (*reply, data, n);
        *size = n;
    } else if (rc == SQLITE_DONE)
        result = s_fail (self, TF_STORE_NOT_FOUND, "request %.64s: not cached", request_id);
    else
        result = s_sql_error (self->errstr, sizeof self->errstr, self->db, rc,
                              "request %.64s: read", request_id);
    sqlite3_reset (stmt);
    return result;
}

static int s_locked_request_put (tf_store_t *self, const char *request_id, const uint8_t *reply,
                                 size_t size, int64_t now_ms)
{
    assert (self);
    assert (request_id && (reply || !size));
    uint64_t n = self->working.replies + 1;
    sqlite3_stmt *stmt = self->stmt[ST_REQ_PUT];
    sqlite3_bind_int64 (stmt, 1, tf_columns_i64 (n));
    s_bind_text (stmt, 2, request_id);
    sqlite3_bind_int64 (stmt, 3, now_ms);
    s_bind_blob (stmt, 4, reply, size);
    int result = s_run (self, stmt, "request: cache reply");
    sqlite3_clear_bindings (stmt);
    if (result == 0) {
        tf_index_value_t value = { n, tf_columns_u64 (now_ms) };
        s_index_change (self, self->requests, request_id, false, value);
        self->working.replies = n;
        if (sqlite3_get_autocommit (self->db))
            self->committed.replies = n;
    }
    return result;
}

static int s_locked_request_expire (tf_store_t *self, int64_t before_ms, uint64_t keep_max)
{
    assert (self);
    if (!sqlite3_get_autocommit (self->db))
        return s_fail (self, TF_STORE_ERROR, "request expiry: a transaction is open");
    uint64_t last = self->committed.replies;
    sqlite3_stmt *stmt = self->stmt[ST_REQ_EXPIRE];
    sqlite3_bind_int64 (stmt, 1, before_ms);
    sqlite3_bind_int64 (stmt, 2,
                        keep_max && last > keep_max ? tf_columns_i64 (last - keep_max) : 0);
    //  RETURNING hands over every deleted row on the first steps; the
    //  statement's own transaction commits when it is done.
    int rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        const char *request_id = (const char *) sqlite3_column_text (stmt, 1);
        tf_index_value_t row;
        //  A later reply under the same id stays.
        if (request_id && tf_index_get (self->requests, request_id, &row) &&
            row.a == s_column_seq (stmt, 0))
            tf_index_remove (self->requests, request_id);
    }
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE)
        return s_sql_error (self->errstr, sizeof self->errstr, self->db, rc, "request: expire");
    return 0;
}

// --------------------------------------------------------------- records behind the log

/*  By id, then sequence: the last of each id's run is its latest change. */
static int s_pending_cmp (const void *a, const void *b)
{
    const s_pending_t *x = (const s_pending_t *) a, *y = (const s_pending_t *) b;
    int c = strcmp (x->id, y->id);
    return c ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

/*  Writes the records row for a stored body (revision and updated_at
    set), on the applier's connection. */
static int s_upsert (tf_store_t *self, const s_pending_t *change, char *err, size_t errlen)
{
    sqlite3_stmt *stmt = self->stmt[ST_UPSERT];
    int result = 0;
    if (tf_columns_bind_json (stmt, change->record, &change->json, change->body, change->size)) {
        snprintf (err, errlen, "%.128s: cannot bind the record's columns", change->id);
        result = TF_STORE_ERROR;
    } else
        result = s_step_done (self->db, stmt, err, errlen, "write record");
    sqlite3_clear_bindings (stmt);
    return result;
}

static int s_apply_row (tf_store_t *self, const s_pending_t *change, char *err, size_t errlen)
{
    if (change->kind != TECHFEED__CHANGE_KIND__CHANGE_DELETE)
        return s_upsert (self, change, err, errlen);
    sqlite3_stmt *stmt = self->stmt[ST_REMOVE];
    s_bind_text (stmt, 1, change->id);
    return s_step_done (self->db, stmt, err, errlen, "delete record");
}

/*  Reads up to `max` rows (seq, kind, id, body) of a bound log query into
    *out; *count of them. SQLite's code, or SQLITE_DONE when all were read. */
static int s_read_log (sqlite3_stmt *stmt, size_t max, s_pending_t **out, size_t *count)
{
    size_t n = 0, cap = max < 1024 ? max : 1024;
    s_pending_t *rows = s_alloc (cap * sizeof *rows);
    int rc = SQLITE_DONE;
    while (n < max && (rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        if (n == cap) {
            cap *= 2;
            rows = realloc (rows, cap * sizeof *rows);
            if (!rows)
                s_oom ();
        }
        s_pending_t *row = &rows[n++];
        memset (row, 0, sizeof *row);
        row->seq = s_column_seq (stmt, 0);
        row->kind = sqlite3_column_int (stmt, 1);
        const char *id = (const char *) sqlite3_column_text (stmt, 2);
        row->id = s_strdup (id ? id : "");
        row->size = (size_t) sqlite3_column_bytes (stmt, 3);
        row->sector = sqlite3_column_int (stmt, 4);
        row->revision = s_column_seq (stmt, 5);
        row->body = s_alloc (row->size);
        if (row->size)
            memcpy (row->body, sqlite3_column_blob (stmt, 3), row->size);
    }
    sqlite3_reset (stmt);
    *out = rows;
    *count = n;
    return n == max ? SQLITE_DONE : rc;
}

/*  Sorts by id and keeps the latest change of each id; returns how many. */
static size_t s_latest_per_id (s_pending_t *rows, size_t count)
{
    qsort (rows, count, sizeof *rows, s_pending_cmp);
    size_t kept = 0;
    for (size_t i = 0; i < count; i++) {
        if (i + 1 < count && strcmp (rows[i].id, rows[i + 1].id) == 0) {
            free (rows[i].id);
            free (rows[i].body);
        } else
            rows[kept++] = rows[i];
    }
    return kept;
}

static void s_pending_free (s_pending_t *rows, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free (rows[i].id);
        free (rows[i].body);
        if (rows[i].record)
            techfeed__milestone__free_unpacked (rows[i].record, NULL);
        tf_columns_json_free (&rows[i].json);
    }
    free (rows);
}

/*  Decodes the body of every put; 0, or TF_STORE_ERROR naming the change. */
static int s_decode_pending (s_pending_t *rows, size_t count, char *err, size_t errlen)
{
    for (size_t i = 0; i < count; i++) {
        if (rows[i].kind == TECHFEED__CHANGE_KIND__CHANGE_DELETE)
            continue;
        rows[i].record = techfeed__milestone__unpack (NULL, rows[i].size, rows[i].body);
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
static int s_encode_pending (s_pending_t *rows, size_t count, char *err, size_t errlen)
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
    s_pending_t *rows; /* latest change per id, decoded, JSON made */
    size_t count;
    uint64_t from;     /* applies changes past this ... */
    uint64_t last;     /* ... up to this */
    s_figures_t moved; /* from zero: count and digest moved (mod 2^64), heads reached */
} s_batch_t;

/*  Reads up to `max` changes past `from` with `stmt` (ST_UNAPPLIED on the
    writer's connection or the applier's reader) and prepares them. */
static int s_batch_read (sqlite3 *db, sqlite3_stmt *stmt, uint64_t from, size_t max,
                         s_batch_t *batch, char *err, size_t errlen)
{
    memset (batch, 0, sizeof *batch);
    batch->from = batch->last = from;
    sqlite3_bind_int64 (stmt, 1, tf_columns_i64 (from));
    sqlite3_bind_int64 (stmt, 2, (int64_t) max);
    int rc = s_read_log (stmt, max, &batch->rows, &batch->count);
    if (rc != SQLITE_DONE)
        return s_sql_error (err, errlen, db, rc, "apply: read the log");
    for (size_t i = 0; i < batch->count; i++) {
        const s_pending_t *row = &batch->rows[i];
        s_figures_move (&batch->moved, row->seq, row->kind, row->sector, row->id, row->revision);
        batch->last = row->seq;
    }
    //  Each id once, in id order: neighbouring ids share b-tree pages.
    batch->count = s_latest_per_id (batch->rows, batch->count);
    int result = s_decode_pending (batch->rows, batch->count, err, errlen);
    return result ? result : s_encode_pending (batch->rows, batch->count, err, errlen);
}

/*  Writes a prepared batch (the connection's lock held, no transaction
    open). Nothing when the records table moved past `from` meanwhile. */
static int s_batch_write (tf_store_t *self, const s_batch_t *batch, char *err, size_t errlen)
{
    if (batch->count == 0 || atomic_load (&self->applied) != batch->from)
        return 0;
    s_figures_t figures = self->at_applied;
    figures.count += batch->moved.count;
    figures.digest += batch->moved.digest;
    figures.head = batch->last;
    for (int sector = 0; sector < TF_STORE_SECTORS; sector++)
        if (batch->moved.heads[sector])
            figures.heads[sector] = batch->moved.heads[sector];
    //  No sync of its own: records are rebuilt from the log, which the
    //  writer's next commit syncs with these pages; a crash before that
    //  leaves `applied` where it was and the changes are applied again.
    int result = s_exec_on (self->db, "PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE", err, errlen,
                            "apply: begin");
    for (size_t i = 0; result == 0 && i < batch->count; i++)
        result = s_apply_row (self, &batch->rows[i], err, errlen);
    if (result == 0)
        result = s_write_applied (self, &figures, err, errlen);
    if (result == 0)
        result = s_exec_on (self->db, "COMMIT", err, errlen, "apply: commit");
    if (result == 0) {
        self->at_applied = figures;
        atomic_store (&self->applied, batch->last);
    } else if (!sqlite3_get_autocommit (self->db))
        sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
    int restored = s_exec_on (self->db, "PRAGMA synchronous = FULL", err, errlen, "apply: sync");
    return result ? result : restored;
}

/*  How many changes a batch of at most `max` (0: all) takes now. */
static size_t s_batch_size (tf_store_t *self, size_t max)
{
    uint64_t behind = atomic_load (&self->head) - atomic_load (&self->applied);
    return max == 0 || max > behind ? (size_t) behind : max;
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
                               size, &batch, err, errlen);
    if (result == 0) {
        pthread_mutex_lock (&self->lock);
        result = s_batch_write (self, &batch, err, errlen);
        pthread_mutex_unlock (&self->lock);
    }
    s_pending_free (batch.rows, batch.count);
    return result;
}

static int s_locked_apply (tf_store_t *self, size_t max)
{
    if (!sqlite3_get_autocommit (self->db))
        return s_fail (self, TF_STORE_ERROR, "apply: a transaction is open");
    size_t size = s_batch_size (self, max);
    if (size == 0)
        return 0;
    s_batch_t batch;
    int result = s_batch_read (self->db, self->stmt[ST_UNAPPLIED], atomic_load (&self->applied),
                               size, &batch, self->errstr, sizeof self->errstr);
    if (result == 0)
        result = s_batch_write (self, &batch, self->errstr, sizeof self->errstr);
    s_pending_free (batch.rows, batch.count);
    return result;
}

// --------------------------------------------------------------- trim, get

static int s_locked_trim (tf_store_t *self, uint64_t keep_count, int64_t before_ms)
{
    assert (self);
    //  Only what the records table holds goes: the applier's work stays
    //  on its thread, never on the caller's
    sqlite3_stmt *stmt = self->stmt[ST_TRIM];
    sqlite3_bind_int64 (stmt, 1, keep_count > INT64_MAX ? INT64_MAX : (int64_t) keep_count);
    sqlite3_bind_int64 (stmt, 2, before_ms > 0 ? before_ms : INT64_MIN);
    sqlite3_bind_int64 (stmt, 3, tf_columns_i64 (atomic_load (&self->applied)));
    sqlite3_bind_int64 (stmt, 4, tf_columns_i64 (self->committed.head));
    return s_run (self, stmt, "trim");
}

/*  Decodes a stored body into *record. */
static int s_decode_body (tf_store_t *self, sqlite3_stmt *stmt, int column, const char *id,
                          Techfeed__Milestone **record)
{
    const uint8_t *body = sqlite3_column_blob (stmt, column);
    size_t size = (size_t) sqlite3_column_bytes (stmt, column);
    *record = techfeed__milestone__unpack (NULL, size, body);
    return *record ? 0 : s_fail (self, TF_STORE_ERROR, "%.128s: stored body does not decode", id);
}

static int s_locked_get (tf_store_t *self, const char *id, Techfeed__Milestone **record)
{
    assert (self);
    assert (id && record);
    *record = NULL;
    //  The log's unapplied tail is newer than records.
    sqlite3_stmt *stmt = self->stmt[ST_GET_TAIL];
    sqlite3_bind_int64 (stmt, 1, tf_columns_i64 (atomic_load (&self->applied)));
    s_bind_text (stmt, 2, id);
    int rc = sqlite3_step (stmt);
    bool deleted =
        rc == SQLITE_ROW && sqlite3_column_int (stmt, 0) == TECHFEED__CHANGE_KIND__CHANGE_DELETE;
    if (rc != SQLITE_ROW || deleted) {
        sqlite3_reset (stmt);
        stmt = self->stmt[ST_GET];
        s_bind_text (stmt, 1, id);
        rc = deleted ? SQLITE_DONE : sqlite3_step (stmt);
    }
    int result = 0;
    if (rc == SQLITE_ROW)
        result = s_decode_body (self, stmt, stmt == self->stmt[ST_GET] ? 0 : 1, id, record);
    else if (rc == SQLITE_DONE)
        result = s_fail (self, TF_STORE_NOT_FOUND, "%.128s: no such record", id);
    else
        result = s_sql_error (self->errstr, sizeof self->errstr, self->db, rc, "get %.128s", id);
    sqlite3_reset (stmt);
    return result;
}

// --------------------------------------------------------------- cursors

/*  Opens the read-only connection and its read transaction; the first
    SELECT (s_position) fixes the snapshot. */
static tf_store_cursor_t *s_cursor_new (tf_store_t *self, bool changes, s_position_t *pos)
{
    tf_store_cursor_t *cursor = s_alloc (sizeof *cursor);
    cursor->changes = changes;
    memcpy (cursor->epoch, self->epoch, sizeof cursor->epoch);
    snprintf (cursor->errstr, sizeof cursor->errstr, "no error");
    int rc =
        sqlite3_open_v2 (self->path, &cursor->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK)
        rc = s_configure (cursor->db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec (cursor->db, "BEGIN", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = s_position (cursor->db, pos);
    if (rc != SQLITE_OK) {
        s_sql_error (self->errstr, sizeof self->errstr, cursor->db, rc, "%s: open cursor",
                     self->path);
        tf_store_cursor_destroy (&cursor);
        return NULL;
    }
    cursor->sequence = pos->head;
    memcpy (cursor->heads, pos->heads, sizeof cursor->heads);
    return cursor;
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
static int s_cursor_read_tail (tf_store_t *self, tf_store_cursor_t *cursor, const s_position_t *pos,
                               const Techfeed__Filter *filter)
{
    sqlite3_stmt *stmt;
    int rc = sqlite3_prepare_v2 (
        cursor->db, "SELECT seq, kind, id, body FROM changes WHERE seq > ?1 ORDER BY seq", -1,
        &stmt, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64 (stmt, 1, tf_columns_i64 (pos->applied));
        rc = s_read_log (stmt, (size_t) (pos->head - pos->applied), &cursor->tail,
                         &cursor->tail_len);
        sqlite3_finalize (stmt);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    if (rc != SQLITE_OK)
        return s_sql_error (self->errstr, sizeof self->errstr, cursor->db, rc,
                            "%s: snapshot: read the log", self->path);
    cursor->tail_len = s_latest_per_id (cursor->tail, cursor->tail_len);
    if (s_decode_pending (cursor->tail, cursor->tail_len, self->errstr, sizeof self->errstr))
        return TF_STORE_ERROR;
    for (size_t i = 0; i < cursor->tail_len; i++) {
        s_pending_t *change = &cursor->tail[i];
        change->visible = change->record && s_filter_match (filter, change->record);
    }
    return 0;
}

/*  " AND sector IN (?n, ...)" for a non-empty sector list; *next is the
    next parameter number. */
static void s_sectors_sql (s_sql_t *sql, const Techfeed__Filter *filter, int *next)
{
    if (!filter || !filter->n_sectors)
        return;
    s_sql_add (sql, " AND sector IN (");
    for (size_t i = 0; i < filter->n_sectors; i++)
        s_sql_add (sql, "%s?%d", i ? ", " : "", (*next)++);
    s_sql_add (sql, ")");
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
static int s_cursor_prepare (tf_store_t *self, tf_store_cursor_t *cursor, s_sql_t *sql)
{
    int rc = sqlite3_prepare_v2 (cursor->db, sql->text, -1, &cursor->stmt, NULL);
    free (sql->text);
    sql->text = NULL;
    if (rc != SQLITE_OK)
        return s_sql_error (self->errstr, sizeof self->errstr, cursor->db, rc, "%s: prepare cursor",
                            self->path);
    return 0;
}

tf_store_cursor_t *tf_store_snapshot_open (tf_store_t *self, const Techfeed__Filter *filter)
{
    assert (self);
    //  The unapplied tail is merged, not applied first: decoding it costs a
    //  fraction of applying it, and the caller is the service's one thread.
    s_position_t pos;
    tf_store_cursor_t *cursor = s_cursor_new (self, false, &pos);
    if (!cursor)
        return NULL;
    if (pos.applied < pos.head && s_cursor_read_tail (self, cursor, &pos, filter)) {
        tf_store_cursor_destroy (&cursor);
        return NULL;
    }
    s_sql_t sql = { NULL, 0, 0 };
    int next = 1;
    s_sql_add (&sql, "SELECT id, body FROM records WHERE 1");
    s_sectors_sql (&sql, filter, &next);
    if (filter && s_given (filter->organization))
        s_sql_add (&sql,
                   " AND EXISTS (SELECT 1 FROM json_each (records.organizations)"
                   " WHERE value = ?%d)",
                   next++);
    if (filter && s_given (filter->country))
        s_sql_add (&sql, " AND country = ?%d", next++);
    if (filter && s_given (filter->date_from))
        s_sql_add (&sql, " AND date >= ?%d", next++);
    if (filter && s_given (filter->date_to)) {
        //  Prefix-inclusive: '2019-01-03' is within date_to '2019'
        s_sql_add (&sql, " AND substr (date, 1, length (?%d)) <= ?%d", next, next);
        next++;
    }
    s_sql_add (&sql, " ORDER BY id");
    if (s_cursor_prepare (self, cursor, &sql)) {
        tf_store_cursor_destroy (&cursor);
        return NULL;
    }
    next = 1;
    s_sectors_bind (cursor->stmt, filter, &next);
    if (filter && s_given (filter->organization))
        s_bind_text_copy (cursor->stmt, next++, filter->organization);
    if (filter && s_given (filter->country))
        s_bind_text_copy (cursor->stmt, next++, filter->country);
    if (filter && s_given (filter->date_from))
        s_bind_text_copy (cursor->stmt, next++, filter->date_from);
    if (filter && s_given (filter->date_to))
        s_bind_text_copy (cursor->stmt, next++, filter->date_to);
    return cursor;
}

tf_store_cursor_t *tf_store_changes_open (tf_store_t *self, uint64_t since,
                                          const Techfeed__Filter *filter, int *rc)
{
    assert (self);
    int scratch;
    if (!rc)
        rc = &scratch;
    *rc = TF_STORE_ERROR;
    s_position_t pos; // as of the cursor's read transaction
    tf_store_cursor_t *cursor = s_cursor_new (self, true, &pos);
    if (!cursor)
        return NULL;
    if (since > pos.head || (since + 1 < pos.first && since < pos.head)) {
        if (since > pos.head)
            s_fail (self, TF_STORE_TRIMMED, "position %llu is beyond head %llu",
                    (unsigned long long) since, (unsigned long long) pos.head);
        else
            s_fail (self, TF_STORE_TRIMMED,
                    "position %llu is below the retained log (oldest %llu, head %llu)",
                    (unsigned long long) since, (unsigned long long) pos.first,
                    (unsigned long long) pos.head);
        *rc = TF_STORE_TRIMMED;
        tf_store_cursor_destroy (&cursor);
        return NULL;
    }
    s_sql_t sql = { NULL, 0, 0 };
    int next = 2;
    s_sql_add (&sql, "SELECT seq, kind, sector, id, revision, sector_prev_seq, ts_ms, body"
                     " FROM changes WHERE seq > ?1");
    s_sectors_sql (&sql, filter, &next);
    s_sql_add (&sql, " ORDER BY seq");
    if (s_cursor_prepare (self, cursor, &sql)) {
        *rc = TF_STORE_ERROR;
        tf_store_cursor_destroy (&cursor);
        return NULL;
    }
    sqlite3_bind_int64 (cursor->stmt, 1, tf_columns_i64 (since));
    next = 2;
    s_sectors_bind (cursor->stmt, filter, &next);
    *rc = 0;
    return cursor;
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
    return s_sql_error (cursor->errstr, sizeof cursor->errstr, cursor->db, rc, "cursor: read");
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
        const s_pending_t *newer =
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
    event->sequence = s_column_seq (stmt, 0);
    event->kind = (Techfeed__ChangeKind) sqlite3_column_int (stmt, 1);
    event->sector = (Techfeed__Sector) sqlite3_column_int (stmt, 2);
    const char *id = (const char *) sqlite3_column_text (stmt, 3);
    event->id = (char *) (id ? id : "");
    event->revision = s_column_seq (stmt, 4);
    event->sector_prev_sequence = s_column_seq (stmt, 5);
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
    Techfeed__ChangeEvent *change = s_alloc (sizeof *change);
    *change = row;
    change->epoch = s_strdup (row.epoch);
    change->id = s_strdup (row.id);
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
    s_pending_free (cursor->tail, cursor->tail_len);
    free (cursor);
    *cursor_p = NULL;
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
        pthread_mutex_lock (&self->lock);
        self->holding = true;
    }
}

static int s_leave (tf_store_t *self, int result)
{
    if (--self->calls == 0 && self->holding && sqlite3_get_autocommit (self->db)) {
        self->holding = false;
        pthread_mutex_unlock (&self->lock);
    }
    return result;
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
    return s_leave (self, s_locked_begin (self));
}

int tf_store_commit (tf_store_t *self)
{
    assert (self);
    s_enter (self);
    return s_leave (self, s_locked_commit (self));
}

int tf_store_rollback (tf_store_t *self)
{
    assert (self);
    s_enter (self);
    return s_leave (self, s_locked_rollback (self));
}

int tf_store_savepoint (tf_store_t *self)
{
    assert (self);
    s_enter (self);
    return s_leave (self, s_locked_savepoint (self));
}

int tf_store_release (tf_store_t *self)
{
    assert (self);
    s_enter (self);
    return s_leave (self, s_locked_release (self));
}

int tf_store_rollback_to (tf_store_t *self)
{
    assert (self);
    s_enter (self);
    return s_leave (self, s_locked_rollback_to (self));
}

int tf_store_request_get (tf_store_t *self, const char *request_id, uint8_t **reply, size_t *size)
{
    assert (self);
    s_enter (self);
    return s_leave (self, s_locked_request_get (self, request_id, reply, size));
}

int tf_store_request_put (tf_store_t *self, const char *request_id, const uint8_t *reply,
                          size_t size, int64_t now_ms)
{
    assert (self);
    s_enter (self);
    return s_leave (self, s_locked_request_put (self, request_id, reply, size, now_ms));
}

int tf_store_request_expire (tf_store_t *self, int64_t before_ms, uint64_t keep_max)
{
    assert (self);
    s_enter (self);
    return s_leave (self, s_locked_request_expire (self, before_ms, keep_max));
}

int tf_store_trim (tf_store_t *self, uint64_t keep_count, int64_t before_ms)
{
    assert (self);
    s_enter (self);
    return s_leave (self, s_locked_trim (self, keep_count, before_ms));
}

int tf_store_get (tf_store_t *self, const char *id, Techfeed__Milestone **record)
{
    assert (self);
    s_enter (self);
    return s_leave (self, s_locked_get (self, id, record));
}

int tf_store_put (tf_store_t *self, const Techfeed__Milestone *record, bool has_expected,
                  uint64_t expected_revision, int64_t now_ms, tf_change_t *change)
{
    assert (self);
    s_enter (self);
    return s_leave (self,
                    s_locked_put (self, record, has_expected, expected_revision, now_ms, change));
}

int tf_store_delete (tf_store_t *self, const char *id, bool has_expected,
                     uint64_t expected_revision, int64_t now_ms, tf_change_t *change)
{
    assert (self);
    s_enter (self);
    return s_leave (self,
                    s_locked_delete (self, id, has_expected, expected_revision, now_ms, change));
}

int tf_store_apply (tf_store_t *self, size_t max)
{
    assert (self);
    s_enter (self);
    return s_leave (self, s_locked_apply (self, max));
}
