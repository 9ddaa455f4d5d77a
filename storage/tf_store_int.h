/*  tf_store_int — shared by the tf_store*.c files, included by nothing
    else: the store's structure, its prepared statements, and the tf_st_
    functions one of them defines for the others. tf_store.c has the file
    format; each file says what it holds.
*/
#ifndef TF_STORE_INT_H_INCLUDED
#define TF_STORE_INT_H_INCLUDED

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tf_columns.h"
#include "tf_index.h"
#include "tf_store.h"
#include "tf_wire.h"

#define TF_STORE_APPLICATION_ID 0x54464544 /* 'TFED' */
#define TF_STORE_SCHEMA 4                  /* highest migration (tf_store_schema.c) */
#define TF_STORE_BUSY_MS 5000
#define TF_STORE_SECTORS 11               /* sector_heads index 0..TF_SECTOR_MAX */
#define TF_STORE_BATCH_ARENA (256u << 10) /* a batch's bytes and records decode into this, */
#define TF_STORE_BATCH_KEEP (8u << 20)    /* kept between the applier's batches, at most */

/*  Prepared once at open, kept for the life of the store. */
enum {
    ST_UPSERT,             /* insert or replace a records row */
    ST_UPSERT_SAME_SECTOR, /* the same, its sector unchanged */
    ST_REMOVE,             /* delete a records row */
    ST_APPEND,             /* append to the change log */
    ST_HEAD_SET,           /* set the last sequence of a sector */
    ST_STATE_GET,          /* record_count, digest, applied */
    ST_STATE_SET,          /* write them */
    ST_UNAPPLIED,          /* changes past `applied`, in order */
    ST_GET,                /* body of an id in records */
    ST_GET_TAIL,           /* latest unapplied change of an id */
    ST_REQ_GET,            /* a group of cached replies */
    ST_REQ_PUT,            /* write one */
    ST_REQ_EXPIRE,         /* delete old ones */
    ST_TRIM,               /* delete old changes */
    ST_BEGIN,              /* write transactions (groups, applier batches): parsed once */
    ST_COMMIT,
    ST_COUNT
};

// --------------------------------------------------------------- types

/*  The figures every change moves: kept in memory while a transaction is
    open and written (state row, sector_heads) once, just before COMMIT,
    instead of read and rewritten by every put. */
typedef struct {
    uint64_t count;                   /* records */
    uint64_t digest;                  /* tf_digest_item sum */
    uint64_t head;                    /* last sequence given */
    uint64_t replies;                 /* last cached reply's number */
    uint64_t heads[TF_STORE_SECTORS]; /* last sequence per sector */
} tf_st_figures_t;

/*  One change to an in-memory index, to undo it on rollback. */
typedef struct {
    tf_index_t *index;
    char *key;
    bool existed;           /* else the key was absent */
    tf_index_value_t value; /* before the change */
} tf_st_undo_t;

#define TF_STORE_DEPTH_MAX 8 /* nested savepoints */

/*  The open transaction's cached replies, in the format of a reply_groups
    row (tf_store.c), written as one row just before it commits. */
typedef struct {
    uint8_t *data;      /* the entries */
    size_t len;         /* bytes used, 0: no group */
    size_t cap;         /* bytes allocated */
    uint64_t first;     /* number of its first reply: the row's n */
    int64_t created_ms; /* of its newest reply */
} tf_st_group_t;

struct _tf_store_t {
    sqlite3 *db;                               /* the one writer connection */
    char *path;                                /* database file, for cursors */
    char epoch[33];                            /* meta 'epoch' */
    int depth;                                 /* open savepoints sp1..spN */
    tf_st_figures_t committed;                 /* figures as last committed */
    tf_st_figures_t working;                   /* figures of the open transaction */
    tf_st_figures_t saved[TF_STORE_DEPTH_MAX]; /* working at each open savepoint */
    size_t saved_undo[TF_STORE_DEPTH_MAX];     /* undo journal length at each savepoint */
    size_t saved_group[TF_STORE_DEPTH_MAX];    /* group.len at each savepoint */
    bool savepoint_began;                      /* sp1 began the transaction (RELEASE commits) */
    _Atomic uint64_t applied;                  /* last change copied into records */
    tf_st_figures_t at_applied;                /* figures as of `applied` (state row) */
    _Atomic uint64_t head;                     /* committed.head, for the applier's thread */
    pthread_mutex_t lock;                      /* the connection: writer's thread or applier's */
    sqlite3 *reader;                           /* the applier reads the log here, unlocked */
    sqlite3_stmt *reader_unapplied;            /* ST_UNAPPLIED on it */
    tf_arena_t *applier_arena;                 /* its batches' bytes and records */
    int wal_fd;                                /* the WAL file, read-only, for writeback (or -1) */
    bool holding;                              /* the writer's thread holds `lock` ... */
    uint64_t held_since_ns;                    /* ... since then (tf_st_now_ns) */
    _Atomic uint64_t writer_held_ns;           /* tf_store_lock_stats: held by the writer, */
    _Atomic uint64_t writer_wait_ns;           /* its waits for the applier, */
    _Atomic uint64_t applier_held_ns;          /* held by the applier */
    int calls;                                 /* nesting of the writer's calls into the store */
    tf_index_t *ids;                           /* id -> (revision, sector) */
    tf_index_t *requests;                      /* request id -> (group's n, entry's offset) */
    tf_st_group_t group;                       /* replies of the open transaction */
    tf_st_undo_t *undo;                        /* index changes of the open transaction */
    uint8_t *last_body;                        /* the last put's stored bytes (tf_change_t) */
    size_t undo_len, undo_cap;
    _Atomic int wal_pages;        /* WAL size after the last commit (wal hook) */
    sqlite3_stmt *stmt[ST_COUNT]; /* prepared statements (s_sql in tf_store.c) */
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
    Techfeed__Milestone *record; /* a put's body decoded (tf_st_decode_pending) */
    tf_columns_json_t json;      /* and its list columns */
    bool new_sector;             /* the batch deleted or created the id: its sector may change */
    bool visible;                /* snapshot tail: a put that matches the filter */
} tf_st_pending_t;

/*  Where the log stands, read in one transaction. */
typedef struct {
    uint64_t head;                    /* last sequence ever, 0 if none */
    uint64_t applied;                 /* last change in records */
    uint64_t first;                   /* oldest retained, head+1 if empty */
    uint64_t heads[TF_STORE_SECTORS]; /* per sector */
} tf_st_position_t;

/*  Growing SQL text (only placeholders and fixed words go in). */
typedef struct {
    char *text; /* NUL-terminated */
    size_t len; /* bytes used */
    size_t cap; /* bytes allocated */
} tf_st_sql_t;

// tf_store_sql.c

void tf_st_oom (void);
uint64_t tf_st_now_ns (void);
void *tf_st_alloc (size_t size);
char *tf_st_strdup (const char *s);
void tf_st_sql_add (tf_st_sql_t *sql, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
uint64_t tf_st_column_seq (sqlite3_stmt *stmt, int column);
int tf_st_sql_error (char *buf, size_t size, sqlite3 *db, int rc, const char *fmt, ...)
    __attribute__ ((format (printf, 5, 6)));
int tf_st_fail (tf_store_t *self, int code, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));
int tf_st_step_done (sqlite3 *db, sqlite3_stmt *stmt, char *err, size_t errlen,
                     const char *context);
int tf_st_exec_on (sqlite3 *db, const char *sql, char *err, size_t errlen, const char *context);
int tf_st_run (tf_store_t *self, sqlite3_stmt *stmt, const char *context);
int tf_st_exec (tf_store_t *self, const char *sql, const char *context);
int tf_st_bind_text (sqlite3_stmt *stmt, int index, const char *text);
int tf_st_bind_blob (sqlite3_stmt *stmt, int index, const void *data, size_t size);
int tf_st_configure (sqlite3 *db);
int tf_st_query_int (sqlite3 *db, const char *sql, int64_t *value);
int tf_st_position (sqlite3 *db, tf_st_position_t *pos);

// tf_store_schema.c

int tf_st_make_epoch (char out[33], char *err, size_t errlen, const char *path);
int tf_st_check_file (tf_store_t *self, char *err, size_t errlen);
int tf_st_set_wal (tf_store_t *self, char *err, size_t errlen);
int tf_st_migrate (tf_store_t *self, char *err, size_t errlen);
int tf_st_load_epoch (tf_store_t *self, char *err, size_t errlen);

// tf_store_write.c

void tf_st_index_change (tf_store_t *self, tf_index_t *index, const char *key, bool remove,
                         tf_index_value_t value);
void tf_st_undo_forget (tf_store_t *self);
void tf_st_sync_depth (tf_store_t *self);
void tf_st_figures_move (tf_st_figures_t *f, uint64_t seq, int kind, int sector, const char *id,
                         uint64_t revision);
int tf_st_locked_begin (tf_store_t *self);
int tf_st_locked_commit (tf_store_t *self);
int tf_st_locked_rollback (tf_store_t *self);
int tf_st_locked_savepoint (tf_store_t *self);
int tf_st_locked_release (tf_store_t *self);
int tf_st_locked_rollback_to (tf_store_t *self);
int tf_st_locked_put (tf_store_t *self, const Techfeed__Milestone *record, bool has_expected,
                      uint64_t expected_revision, int64_t now_ms, tf_change_t *change);
int tf_st_locked_delete (tf_store_t *self, const char *id, bool has_expected,
                         uint64_t expected_revision, int64_t now_ms, tf_change_t *change);

// tf_store_replies.c

int tf_st_replies_register (sqlite3 *db);
int tf_st_replies_load (tf_store_t *self, char *err, size_t errlen);
int tf_st_replies_flush (tf_store_t *self);
void tf_st_replies_forget (tf_store_t *self);
int tf_st_locked_request_get (tf_store_t *self, const char *request_id, uint8_t **reply,
                              size_t *size);
int tf_st_locked_request_put (tf_store_t *self, const char *request_id, const uint8_t *reply,
                              size_t size, int64_t now_ms);
int tf_st_locked_request_expire (tf_store_t *self, int64_t before_ms, uint64_t keep_max);

// tf_store_apply.c

int tf_st_read_log (sqlite3_stmt *stmt, size_t max, tf_arena_t *arena, tf_st_pending_t **out,
                    size_t *count);
size_t tf_st_latest_per_id (tf_st_pending_t *rows, size_t count);
void tf_st_pending_free (tf_st_pending_t *rows, size_t count);
int tf_st_decode_pending (tf_st_pending_t *rows, size_t count, tf_arena_t *arena, char *err,
                          size_t errlen);
int tf_st_locked_apply (tf_store_t *self, size_t max);
int tf_st_locked_trim (tf_store_t *self, uint64_t keep_count, int64_t before_ms);
int tf_st_locked_get (tf_store_t *self, const char *id, Techfeed__Milestone **record);

#endif
